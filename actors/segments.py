"""Live segments: who a customer is now, kept as events arrive and as time passes.

A scenario declares segments by id::

    [segments.browsing_shoes]   # viewed the same category twice in one session
    behaviour = [{ event = "product_viewed", count = 2, same = "category", within = "session" }]

    [segments.loan_shopper]     # compared loans in three sessions in 30 days without applying
    behaviour = [{ event = "loan_compared", sessions = 3, within = "30d", without = "loan_applied" }]

    [segments.recent_buyer]     # purchased in the last 72 hours
    behaviour = [{ event = "purchase", within = "72h" }]

    [segments.likely_buyer]     # likelihood to purchase in the scoring horizon above 0.4
    where = [{ field = "scores.likelihood", op = ">", value = 0.4 }]

A customer is a member when every ``where`` condition holds (traits, profile, engagement,
scores) and every ``behaviour`` window does: its event (filtered by event ``where``) seen at
least ``count`` times, or in at least ``sessions`` distinct sessions, within a duration or the
current session, all with one value of the property ``same`` when given, and no ``without``
event in that same window. A segment with no conditions holds everyone.

The actor re-reads membership after each message that can change it (``stale``: a watched
event, a change to what a segment's conditions read, a customer's first message where a segment
holds everyone) and at the moments a window lets an event go (one timer per actor,
``SEGMENT_TIMER``; between messages, membership changes only then). A change is the event
``entered:<id>`` or ``left:<id>``, which journeys use as entry, exit, wait_for and goal events,
and the effect ``Segmented``; a branch reads membership as ``segment.<id>``, a journey's entry
may require it (``entry.segment``).

Sessions: one starts with ``session_start``, or with any event more than ``SESSION_GAP`` after
the previous one (web analytics' 30 minutes); it ends at the next start or ``SESSION_GAP`` after
its last event. Only the events the runtime delivers count, and a runtime delivers every event a
segment names.

Memory is bounded: a window keeps only the events that can still count (the latest ``count`` of
each value of ``same``, one per session when it counts sessions), for at most ``VALUES_KEPT``
values of ``same`` (those seen last), and the time of the latest ``without`` event.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import msgspec

from actors.conditions import sources
from actors.journey import (
    Condition,
    Program,
    _Frozen,
    all_hold,
    properties_match,
)
from actors.messages import (
    DeliveryReceipt,
    Effect,
    Event,
    Identified,
    Message,
    Properties,
    Recorded,
    Scalar,
    Schedule,
    Scored,
    Segmented,
    TimerFired,
)
from actors.profile import Profile

_encode = msgspec.msgpack.Encoder().encode

SEGMENT_TIMER = ":segments"  # the id of an actor's segment timer (no journey id holds a ':')
SEGMENT_TIMER_PRIORITY = 1 << 20  # before any journey's timer due at the same moment
SESSION_GAP = 1800.0
VALUES_KEPT = 16
ENTERED, LEFT = "entered:", "left:"
SCHEDULED = "scheduled:"  # + a journey's id: the entry event of a journey entered on a schedule

# -- compiled ----------------------------------------------------------------------------------------


class Behaviour(_Frozen, frozen=True):
    """A behaviour window (see the module's docstring); ``slot``: where an actor keeps its events."""

    event: str
    slot: int
    count: int = 1
    sessions: bool = False  # count distinct sessions, not events
    same: str | None = None
    window: float | None = None  # seconds; None: the current session
    without: str | None = None
    where: tuple[Condition, ...] = ()


class Segment(_Frozen, frozen=True):
    """A compiled segment: its bit in a membership set is ``1 << index``."""

    id: str
    index: int
    where: tuple[Condition, ...] = ()
    behaviour: tuple[Behaviour, ...] = ()


def watched_events(segments: tuple[Segment, ...]) -> frozenset[str]:
    """Every event a segment's windows record (and ``session_start`` where sessions count)."""
    names = {b.event for s in segments for b in s.behaviour}
    names |= {b.without for s in segments for b in s.behaviour if b.without is not None}
    if any(b.window is None or b.sessions for s in segments for b in s.behaviour):
        names.add("session_start")
    return frozenset(names)


def segment_reads(segments: tuple[Segment, ...]) -> frozenset[str]:
    """The condition sources the segments' ``where`` read (``traits``, ``profile``,
    ``engagement``, ``scores``): a message that changes none of them leaves membership as it was."""
    return frozenset(c.source for s in segments for c in s.where)


_WALKED = frozenset({"traits", "engagement"})  # what a journey's walk may change (update, send)
_CHANGED_BY: dict[type, frozenset[str]] = {
    DeliveryReceipt: frozenset({"engagement"}), Identified: frozenset({"traits"}),
    Recorded: frozenset({"profile"}), Scored: frozenset({"scores"}), TimerFired: frozenset(),
}


def stale(program: Program, state: SegmentState | None, message: Message, read: int, effects: int) -> bool:
    """Whether membership must be re-read after ``message`` (applied; ``effects`` since, of
    which the first ``read`` came before membership was last current): a segment timer; a
    walk that may have changed what a segment reads; a message that changes it itself; or a
    customer not yet in a segment that holds everyone."""
    reads = program.segment_reads
    if (effects > read and reads & _WALKED) or (state is None and program.segment_everyone):
        return True
    if type(message) is TimerFired:
        return message.journey == SEGMENT_TIMER
    return type(message) is not Event and bool(reads & _CHANGED_BY.get(type(message), reads))


# -- an actor's state --------------------------------------------------------------------------------

Seen = tuple[float, int, Scalar]  # (at, session, value of ``same``)


class SegmentState:
    """One customer's segments: membership, the segment timer, the session, and the windows.

    Attributes:
        members: bit set of the segments the customer is in.
        version, due: the live segment timer (``due`` infinite: none).
        session, last_at: the current session's number and the time of the latest event.
        seen: per behaviour slot, the events that can still count (oldest first), or None.
        without: per behaviour slot, ``(at, session)`` of the latest ``without`` event, or None.
    """

    __slots__ = ("members", "version", "due", "session", "last_at", "seen", "without")

    def __init__(self, slots: int) -> None:
        self.members = 0
        self.version = 0
        self.due = math.inf
        self.session = 0
        self.last_at = -math.inf
        self.seen: list[list[Seen] | None] = [None] * slots
        self.without: list[tuple[float, int] | None] = [None] * slots

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SegmentState) and all(
            getattr(self, name) == getattr(other, name) for name in self.__slots__
        )

    __hash__ = None  # type: ignore[assignment]

    def timer(self) -> Schedule:
        """The live segment timer, as the ``Schedule`` that asked for it."""
        return Schedule(self.due, SEGMENT_TIMER, self.version, SEGMENT_TIMER_PRIORITY)

    def record(self, segments: tuple[Segment, ...], name: str, props: Properties, now: float) -> None:
        """Note an event in the session count and in the windows that watch it."""
        if name == "session_start" or now - self.last_at > SESSION_GAP:
            self.session += 1
        self.last_at = max(self.last_at, now)
        for segment in segments:
            for b in segment.behaviour:
                if b.without == name:
                    self.without[b.slot] = (now, self.session)
                if b.event == name and properties_match(b.where, props):
                    self._keep(b, (now, self.session, props.get(b.same) if b.same else None))

    def _keep(self, b: Behaviour, seen: Seen) -> None:
        kept = self.seen[b.slot] or []
        if b.sessions:  # one event per session counts
            kept = [s for s in kept if not (s[1] == seen[1] and s[2] == seen[2])]
        kept.append(seen)
        values: dict[Scalar, int] = {}  # per value, how many kept so far, newest first
        keep = []
        for s in reversed(kept):
            n = values.get(s[2], 0)
            if n < b.count and (n or len(values) < VALUES_KEPT):
                values[s[2]] = n + 1
                keep.append(s)
        keep.reverse()
        self.seen[b.slot] = keep

    def holds(self, b: Behaviour, now: float) -> bool:
        """Whether a behaviour window holds at ``now``: an event counts while ``at + window >
        now`` (the very sum its timer is due at: no rounding between), or, for the current
        session, while it is open."""
        window, seen, without = b.window, self.seen[b.slot], self.without[b.slot]
        if window is None:
            if now - self.last_at > SESSION_GAP:
                return False  # (the session is over: nothing of it counts)
            session = self.session
            if without is not None and without[1] == session:
                return False
            live = [s[2] for s in seen or () if s[1] == session]
        else:
            if without is not None and without[0] + window > now:
                return False
            live = [s[2] for s in seen or () if s[0] + window > now]
        if len(live) < b.count:
            return False
        if b.same is None and not b.sessions:
            return True  # (one value for all, and no two events alike: enough of them)
        counts: dict[Scalar, int] = {}
        for value in live:
            counts[value] = counts.get(value, 0) + 1
        return any(n >= b.count for n in counts.values())

    def next_change(self, segments: tuple[Segment, ...], now: float) -> float:
        """The next moment a window lets an event go (after ``now``; infinite: none)."""
        due = math.inf
        for segment in segments:
            for b in segment.behaviour:
                if b.window is None:
                    if self.seen[b.slot] or self.without[b.slot]:
                        end = self.last_at + SESSION_GAP
                        if end >= now:
                            due = min(due, math.nextafter(end, math.inf))
                    continue
                times = [s[0] for s in self.seen[b.slot] or ()]
                if (w := self.without[b.slot]) is not None:
                    times.append(w[0])
                for at in times:
                    if at + b.window > now:
                        due = min(due, at + b.window)
        return due


def membership(segments: tuple[Segment, ...], state: SegmentState | None, profile: Profile,
               now: float) -> int:
    """The bit set of the segments whose conditions all hold at ``now``."""
    members, lookup = 0, None
    for segment in segments:
        if segment.behaviour and state is None:
            continue
        if segment.where:
            lookup = lookup or sources(profile, now)
            if not all_hold(segment.where, lookup):
                continue
        if all(state.holds(b, now) for b in segment.behaviour):  # type: ignore[union-attr]
            members |= 1 << segment.index
    return members


def slots(segments: tuple[Segment, ...]) -> int:
    """How many behaviour windows the segments have (an actor's ``SegmentState`` size)."""
    return sum(len(s.behaviour) for s in segments)


def regroup(program: Program, profile: Profile, state: SegmentState | None, now: float,
            effects: list[Effect]) -> tuple[SegmentState | None, list[tuple[str, str]]]:
    """A customer's segments re-read at ``now`` (``Actor._regroup``): the state (made when it
    first holds anything), and the changes as ``(event, segment)``, each also said in
    ``effects`` as ``Segmented``, with the segment timer asked for anew when a window lets an
    event go sooner than the live timer would fire."""
    segments = program.segments
    members = membership(segments, state, profile, now)
    if state is None:
        if not members:
            return None, []
        state = SegmentState(slots(segments))
    changed = members ^ state.members
    state.members = members
    changes = []
    if changed:
        for segment in segments:
            if changed >> segment.index & 1:
                entered = bool(members >> segment.index & 1)
                effects.append(Segmented(segment.id, entered))
                changes.append(((ENTERED if entered else LEFT) + segment.id, segment.id))
    due = state.next_change(segments, now)
    if due < state.due:
        state.version += 1
        state.due = due
        effects.append(state.timer())
    return state, changes


def fired(state: SegmentState | None, version: int) -> bool:
    """Whether a segment timer of ``version`` is the live one (it is then spent)."""
    if state is None or version != state.version:
        return False
    state.due = math.inf
    return True


def in_segment(state: SegmentState | None, index: int) -> bool:
    """Whether a customer with segment ``state`` is in the segment of ``index``."""
    return state is not None and bool(state.members >> index & 1)


# -- in a snapshot ----------------------------------------------------------------------------------


def state_record(state: SegmentState | None) -> list[Any] | None:
    """A ``SegmentState`` as a snapshot keeps it (``actors.codec``)."""
    if state is None:
        return None
    return [state.members, state.version, state.due, state.session, state.last_at, state.seen,
            state.without]


def segment_table(program: Program) -> tuple[list[str], list[str]]:
    """The chunk's ``segments`` field: the segment ids in order, and each window's key (its
    segment, and what it watches: a window whose count or length changed keeps its events)."""
    keys = [""] * slots(program.segments)
    for segment in program.segments:
        for b in segment.behaviour:
            watched = (segment.id, b.event, b.without, b.same, b.sessions, b.where)
            keys[b.slot] = _encode(watched).hex()
    return [segment.id for segment in program.segments], keys


def segment_maps(table: tuple[list[str], list[str]], program: Program) -> tuple[list[int], list[int]]:
    """For each membership bit and each window slot of a chunk's table, the program's own (-1:
    the scenario no longer has it)."""
    ids, keys = segment_table(program)
    bit, slot = {s: i for i, s in enumerate(ids)}, {k: i for i, k in enumerate(keys)}
    return [bit.get(s, -1) for s in table[0]], [slot.get(k, -1) for k in table[1]]


def restored_state(record: Sequence[Any] | None, members_map: list[int], slots_map: list[int],
                   program: Program) -> SegmentState | None:
    """A ``SegmentState`` from ``state_record``'s record, its membership bits and windows put
    where ``segment_maps`` says (one the scenario no longer has is dropped; a new one starts
    empty)."""
    if record is None:
        return None
    members, version, due, session, last_at, seen, without = record
    state = SegmentState(slots(program.segments))
    for old, new in enumerate(members_map):
        if new >= 0 and members >> old & 1:
            state.members |= 1 << new
    state.version, state.due, state.session, state.last_at = version, due, session, last_at
    for old, new in enumerate(slots_map[:len(seen)]):
        if new >= 0:
            state.seen[new] = None if seen[old] is None else [tuple(s) for s in seen[old]]
            state.without[new] = None if without[old] is None else (without[old][0], without[old][1])
    return state
