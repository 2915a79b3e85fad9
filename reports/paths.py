"""Conversion paths, as the engine sees them: per journey, how often each path of channels ended in
a conversion (and the conversions' value) or without one (a null path).

A conversion's path is ``Converted.path``: the channels of the sends the customer got since the
entry (from any journey: every touch before the conversion counts), in order. A
null path is an entry that ended without converting: said by the customer's next entry
(``Entered.lapsed``), and, in a simulation, at the end for the last entries whose goal window
closed within the run. Entries without a send (a holdout's) have no path and are left out, as
ChannelAttribution's tables leave them. Memory grows with the distinct paths, not the entries:
the paths are what a timeline holds, at most a few channels long.
"""

from __future__ import annotations

from typing import Any

from reports.attribution import SEPARATOR, PathRow, attribute


class PathTally:
    """``{journey: {path: [conversions, value, nulls]}}``."""

    __slots__ = ("paths",)

    def __init__(self) -> None:
        self.paths: dict[str, dict[tuple[str, ...], list[float]]] = {}

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


def path_table(rows: list[list[Any]]) -> str:
    """A journey's rows (``PathTally.to_dict``'s) as a ChannelAttribution CSV."""
    lines = ["path;total_conversions;total_conversion_value;total_null"]
    lines += [f"{path};{conversions:g};{value:g};{nulls:g}" for path, conversions, value, nulls in rows]
    return "\n".join(lines) + "\n"
