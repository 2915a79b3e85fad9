"""What the pages and the figures share about a figure: its type, its sizes, the words for a
funnel step. No matplotlib here: the pages' helpers and the command line load without it (it is
imported when something is drawn)."""

from __future__ import annotations

from typing import Any

Figures = dict[str, bytes]  # {file name: PNG bytes}
DPI, SHOWN_DPI = 200, 100  # drawn at DPI dots per inch, shown at SHOWN_DPI CSS pixels per inch


def sends_by(row: dict[str, Any]) -> str:
    """What a funnel step sends by (``email``, ``best of push/email``), or "" when it sends nothing
    (or metrics.json is older than the channels in its funnel)."""
    channels = row.get("channels") or []
    if row.get("best") and len(channels) > 1:
        return "best of " + "/".join(channels)
    return "/".join(channels)


def step_label(row: dict[str, Any]) -> str:
    """A funnel step's name, with its channel when it sends: ``push (sends email)``."""
    channel = sends_by(row)
    return f"{row['step']} (sends {channel})" if channel else str(row["step"])
