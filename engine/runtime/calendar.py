"""The engine's own calendar: scoring passes and scheduled journey entries, in both runtimes.

A program may ask for two kinds of moments no customer causes:

- a scoring pass every ``[scores] every`` (``engine.lab.scoring``): each customer's scores go to
  their actor as a ``Scored`` message;
- a scheduled entry of a journey (``entry.schedule``: a broadcast, or a journey started for a
  segment's members on a calendar): every ``every`` from ``first``, each customer is handed the
  event ``scheduled:<journey>`` at ``at`` in their own local time; the actor decides whether they
  enter (the segment, ``skip_active``, re-entry).

``engine_wakes`` lists them between two times; a runtime keeps them in its one timer queue.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import NamedTuple

from actors.journey import Program
from actors.segments import SCHEDULED

SCORE, ENTRY = "score", "entry"


class EngineWake(NamedTuple):
    """One of the engine's own moments: a scoring pass, or a journey's scheduled entry."""

    kind: str
    journey: str = ""
    local_at: float = 0.0  # (ENTRY) seconds after local midnight

    @property
    def event(self) -> str:
        """The event a scheduled entry hands each customer."""
        return SCHEDULED + self.journey


def engine_wakes(program: Program, start: float, until: float) -> Iterator[tuple[float, EngineWake]]:
    """The program's moments from ``start`` (its first moments counted from there) to ``until``,
    in no particular order. A scheduled entry's moment is the start of its day, ``at`` each
    customer's local time being within the next day."""
    if program.scoring is not None:
        every = program.scoring[0]
        at = start + every
        while at < until:
            yield at, EngineWake(SCORE)
            at += every
    for journey in program.journeys:
        if journey.schedule is None or not journey.enabled:
            continue
        every, first, local_at = journey.schedule
        at = start + first
        while at < until and every > 0 and math.isfinite(at):
            yield at, EngineWake(ENTRY, journey.id, local_at)
            at += every
