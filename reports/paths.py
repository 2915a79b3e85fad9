"""Conversion paths, as the engine sees them: per journey, how often each path of channels ended in
a conversion (and the conversions' value) or without one (a null path).

A conversion's path is ``Converted.path``: the channels of the sends the customer got since the
entry (from any journey: every touch before the conversion counts), in order. A
null path is an entry that ended without converting. In a simulation it is said by the
customer's next entry (``Entered.lapsed``), and at the end for the last entries whose goal window
closed within the run. In the real-time runtime and replay, which have no end, it is said as the
entry's goal window closes (``windows``: the tally keeps each open window, in snapshots too, and
the runtime asks for those ``due`` and reads the entry's path from the actor: ``null_path``), or
by the next entry when that comes first. Entries without a send (a holdout's) have no path and
are left out, as ChannelAttribution's tables leave them. Memory grows with the distinct paths, not
the entries (the paths are what a timeline holds, at most a few channels long), and with the
entries whose window is open.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from typing import Any

from actors.actor import Actor
from actors.messages import Converted, Entered
from reports.attribution import SEPARATOR, PathRow, attribute


class PathTally:
    """``{journey: {path: [conversions, value, nulls]}}``; with ``windows`` (each journey's goal
    window), the entries whose window is still open (module docstring)."""

    __slots__ = ("paths", "windows", "open", "_closing")

    def __init__(self, windows: dict[str, float] | None = None) -> None:
        self.paths: dict[str, dict[tuple[str, ...], list[float]]] = {}
        self.windows = windows
        self.open: dict[tuple[Any, str], tuple[int, float]] = {}  # (customer, journey) -> (entry, closes)
        self._closing: list[tuple[float, Any, str, int]] = []  # (closes, customer, journey, entry)

    def entered(self, customer: Any, effect: Entered, now: float) -> None:
        """An entry, when windows close (``windows``): the previous entry's null path counts here
        only if its window was still open (one that closed was said then), and this one's
        window opens (a holdout entry has no path: none)."""
        assert self.windows is not None
        key = (customer, effect.journey)
        if self.open.pop(key, None) is not None and effect.lapsed:
            self.lapsed(effect.journey, effect.lapsed)
        if not effect.holdout:
            closes = now + self.windows[effect.journey]
            self.open[key] = (effect.entry, closes)
            heapq.heappush(self._closing, (closes, customer, effect.journey, effect.entry))

    def converted_entry(self, customer: Any, effect: Converted) -> None:
        """A conversion closes its entry's window early: no null path will come of it."""
        key = (customer, effect.journey)
        if self.open.get(key, (None,))[0] == effect.entry:
            del self.open[key]

    def next_close(self) -> float:
        """When the next open window closes (infinity when none is open)."""
        return self._closing[0][0] if self._closing else math.inf

    def due(self, now: float) -> list[tuple[Any, str, int]]:
        """The ``(customer, journey, entry)`` whose goal window closed before ``now`` unconverted
        (a conversion at the very end of the window still counts), taken out of the open
        windows (the runtime reads each one's ``null_path``)."""
        closing, out = self._closing, []
        while closing and closing[0][0] < now:
            closes, customer, journey, entry = heapq.heappop(closing)
            if self.open.get((customer, journey)) == (entry, closes):
                del self.open[(customer, journey)]
                out.append((customer, journey, entry))
        return out

    def close_due(self, now: float, actor_of: Callable[[Any], Actor | None]) -> None:
        """Count the null paths of the entries whose goal window closed by ``now`` unconverted
        (``actor_of(customer)``: the customer's actor now)."""
        for customer, journey, entry in self.due(now):
            self.lapsed(journey, null_path(actor_of(customer), journey, entry))

    def open_state(self) -> list[list[Any]]:
        """The open windows, ``[customer, journey, entry, closes]`` each (for a snapshot)."""
        return [[who, journey, entry, closes] for (who, journey), (entry, closes) in self.open.items()]

    def restore_open(self, rows: list[list[Any]] | None) -> None:
        """Take a snapshot's open windows in place of these."""
        rows = rows or []
        self.open = {(who, journey): (entry, closes) for who, journey, entry, closes in rows}
        self._closing = [(closes, who, journey, entry) for who, journey, entry, closes in rows]
        heapq.heapify(self._closing)

    def converted(self, journey: str, path: tuple[str, ...], value: float) -> None:
        if path:
            counts = self._counts(journey, path)
            counts[0] += 1
            counts[1] += value

    def lapsed(self, journey: str, path: tuple[str, ...]) -> None:
        if path:
            self._counts(journey, path)[2] += 1

    def _counts(self, journey: str, path: tuple[str, ...]) -> list[float]:
        table = self.paths.setdefault(journey, {})
        counts = table.get(path)
        if counts is None:
            counts = table[path] = [0, 0.0, 0]
        return counts

    def rows(self, journey: str) -> list[PathRow]:
        return [PathRow(path, *counts) for path, counts in sorted(self.paths.get(journey, {}).items())]

    def to_dict(self) -> dict[str, Any]:
        """Per journey: its path table (``[path, conversions, value, nulls]`` rows) and every
        attribution model's credit on it."""
        out = {}
        for journey in sorted(self.paths):
            rows = self.rows(journey)
            out[journey] = {
                "paths": [[SEPARATOR.join(r.channels), r.conversions, round(r.value, 2), r.nulls]
                          for r in rows],
                "models": attribute(rows) if any(r.conversions for r in rows) else {},
            }
        return out

    def state(self) -> dict[str, Any]:
        return {journey: [[list(path), *counts] for path, counts in table.items()]
                for journey, table in self.paths.items()}

    def restore(self, state: dict[str, Any] | None) -> None:
        self.paths = {journey: {tuple(path): [conversions, value, nulls]
                                for path, conversions, value, nulls in rows}
                      for journey, rows in (state or {}).items()}


def null_path(actor: Actor | None, journey: str, entry: int) -> tuple[str, ...]:
    """The null path of ``actor``'s ``entry`` into ``journey`` (the channels of the sends in its
    goal window), if that entry is still its latest and ended without converting; else ()."""
    if actor is None or actor.runs is None or (found := actor.program.by_id.get(journey)) is None:
        return ()
    run = actor.runs[found.index]
    return run.null_path(actor.profile, found.goal_within) if run is not None and run.entry == entry else ()


def path_table(rows: list[list[Any]]) -> str:
    """A journey's rows (``PathTally.to_dict``'s) as a ChannelAttribution CSV."""
    lines = ["path;total_conversions;total_conversion_value;total_null"]
    lines += [f"{path};{conversions:g};{value:g};{nulls:g}" for path, conversions, value, nulls in rows]
    return "\n".join(lines) + "\n"
