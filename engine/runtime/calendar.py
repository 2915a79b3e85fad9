"""The engine's own calendar: scoring passes and scheduled journey entries, in both runtimes.

A program may ask for two kinds of moments no customer causes:

- a scoring pass every ``[scores] every`` (``engine.lab.scoring``): each customer's scores go to
  their actor as a ``Scored`` message;
- a scheduled entry of a journey (``entry.schedule``: a broadcast, or a journey started for a
  segment's members on a calendar): every ``every`` from ``first``, each customer is handed the
  event ``scheduled:<journey>`` at ``at`` in their own local time; the actor decides whether they
  enter (the segment, ``skip_active``, re-entry).

Moments count from time 0 (the simulation's start; in real time, 1970-01-01 UTC, a Thursday):
``first + k every``. ``engine_wakes`` lists them for a simulation, which keeps them in its one
timer queue. In real time ``keep_calendar`` runs beside the engine: a scoring pass at start and
at each moment, whose changed scores it submits as ``Scored`` messages (through the write-ahead
log, so a recovery replays them), and at each entry moment it arms each customer's
``scheduled:<journey>`` timer in the engine's queue (a restart re-arms those still ahead, from
the last moment).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple

import anyio
import numpy as np

from actors.durations import next_local_time
from actors.journey import Program
from actors.messages import Scored, Submission, TimerFired
from actors.segments import SCHEDULED
from engine.lab.scoring import Scoring, histories
from engine.runtime.ingest import EngineUnavailable

if TYPE_CHECKING:
    from engine.runtime.realtime import RealtimeRuntime

BATCH = 5_000  # customers between two yields to the event loop, and Scored messages per submit

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


def next_moments(program: Program, now: float) -> list[tuple[float, EngineWake]]:
    """Each kind of moment's next one after ``now`` (real time: counted from time 0)."""
    moments = []
    if program.scoring is not None:
        every = program.scoring[0]
        moments.append(((math.floor(now / every) + 1) * every, EngineWake(SCORE)))
    for journey in program.journeys:
        if journey.schedule is not None and journey.enabled:
            every, first, local_at = journey.schedule
            k = max(0, math.floor((now - first) / every) + 1)
            moments.append((first + k * every, EngineWake(ENTRY, journey.id, local_at)))
    return moments


async def keep_calendar(runtime: RealtimeRuntime, scoring: Scoring | None) -> None:
    """The engine's calendar in real time (see the module's docstring): returns at once when
    the program has none."""
    program = runtime.program
    if not next_moments(program, runtime.now()):
        return
    if scoring is not None:
        await _score(runtime, scoring)
    now = runtime.now()
    for at, wake in next_moments(program, now):  # (re)started: the last moment's timers still ahead
        schedule = program.by_id[wake.journey].schedule if wake.kind == ENTRY else None
        if schedule is not None and at - schedule[0] >= schedule[1]:
            await arm_entries(runtime, wake, at - schedule[0], only_after=now)
    pending = {wake: at for at, wake in next_moments(program, now)}  # each kind's next moment
    while True:  # (each kind is counted on from its own last moment: none is skipped when two
        # coincide, or a pass ran past the next one, which is then handled late)
        at, wake = min((at, wake) for wake, at in pending.items())
        await anyio.sleep(max(0.0, at - runtime.now()))
        if wake.kind == SCORE:
            if scoring is not None:
                await _score(runtime, scoring)
        else:
            await arm_entries(runtime, wake, at)
        pending[wake] = next(later for later, other in next_moments(program, at) if other == wake)


async def _score(runtime: RealtimeRuntime, scoring: Scoring) -> None:
    """A scoring pass; one the engine cannot take (its log cannot be written, or it is
    stopping) is left for the next moment, said on stderr."""
    try:
        await score_all(runtime, scoring)
    except EngineUnavailable as exc:
        print(f"scoring pass left for the next one: {exc}", file=sys.stderr, flush=True)


async def arm_entries(runtime: RealtimeRuntime, wake: EngineWake, at: float,
                      only_after: float = -math.inf) -> int:
    """Arm ``scheduled:<journey>`` for every customer at the first ``wake.local_at`` of their
    local time after ``at`` (only those after ``only_after``); returns how many."""
    fired = TimerFired(wake.event, 0)
    items = []
    for n, customer_id in enumerate(customer_ids(runtime)):
        actor = runtime.actors.get(customer_id) or runtime.dormant.peek(customer_id)
        if actor is None:
            continue
        due = next_local_time(at, actor.profile.zone, wake.local_at)
        if due > only_after:
            items.append((due, customer_id, fired, 0))
        if n % BATCH == BATCH - 1:
            await anyio.sleep(0)  # (the engine's loop runs between)
    runtime.timers.push_many(items)
    try:
        runtime.ingest_batch_nowait([])  # wake the engine's loop: its next timer may be sooner now
    except anyio.WouldBlock:
        pass  # (a full inbox: the loop is busy and looks at the timers soon anyway)
    return len(items)


async def score_all(runtime: RealtimeRuntime, scoring: Scoring) -> int:
    """A scoring pass over every customer who has bought; the scores that changed go to their
    actors as ``Scored`` messages, through the log. Returns how many changed. The histories are
    read in the engine's loop, a batch at a time; the fit and the scores are computed in a
    thread, so the engine goes on meanwhile."""
    now = runtime.now()
    ids, profiles, columns, start = [], [], [], 0
    for n, customer_id in enumerate(customer_ids(runtime)):
        actor = runtime.actors.get(customer_id) or runtime.dormant.peek(customer_id)
        if actor is not None and Scoring.scored(actor.profile):
            ids.append(customer_id)
            profiles.append(actor.profile)
        if n % BATCH == BATCH - 1:
            columns.append(histories(profiles[start:], now))
            start = len(profiles)
            await anyio.sleep(0)
    columns.append(histories(profiles[start:], now))
    purchases, revenue, first, last = (np.concatenate([column[i] for column in columns]) for i in range(4))
    scores = await anyio.to_thread.run_sync(scoring.score_histories, (purchases, revenue, first, last), now)
    changed = []
    for start in range(0, len(ids), BATCH):
        changed += [Submission(customer_id, Scored(values, now)) for customer_id, profile, values
                    in zip(ids[start : start + BATCH], profiles[start : start + BATCH],
                           scores[start : start + BATCH], strict=True)
                    if not _same(profile.scores, values)]
        await anyio.sleep(0)
    for start in range(0, len(changed), BATCH):
        await runtime.submit(changed[start : start + BATCH])
    return len(changed)


def customer_ids(runtime: RealtimeRuntime) -> list[str]:
    """Every customer the engine holds, awake or dormant."""
    return [*runtime.actors, *runtime.dormant.records]


def _same(old: tuple[float, ...] | None, new: tuple[float, ...]) -> bool:
    """Whether two score tuples are equal (NaN equal to NaN)."""
    return old is not None and all(a == b or (a != a and b != b) for a, b in zip(old, new, strict=True))
