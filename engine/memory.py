"""This process's memory, as Linux reports it in /proc/self/status (bytes)."""

from __future__ import annotations

import resource
from pathlib import Path


def _status(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def peak_rss_bytes() -> int:
    """Peak resident set (VmHWM: unlike ru_maxrss, not inherited across exec)."""
    peak = _status("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def rss_bytes() -> int:
    """Current resident set (0 where /proc is not available)."""
    return _status("VmRSS") or 0
