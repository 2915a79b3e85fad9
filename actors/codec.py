"""Snapshot codec: actors' whole state to MessagePack and back, a chunk of actors at a time.

A chunk is one MessagePack array, positional throughout (array-like records are both smaller and
faster than maps):

    [version, ids, doubles, timelines, journeys, records, timers, segments]

    ids:       the customer ids, one per record, in order
    doubles:   every ``array('d')`` column of the chunk's profiles (engagement, timeline_at,
               cooldowns, actor after actor), end to end, as one bin of little-endian doubles
    timelines: the chunk's distinct ``timeline_what`` label sequences, each a list of labels
    journeys:  the ids of the journeys of the program that wrote the chunk, in its order
    segments:  [ids, windows] of that program's segments: the segment ids in its order (a
               membership bit's position) and each window's key (a window's slot), so a state
               restored under a changed scenario follows them by id (format 9; earlier formats
               are read as written by the restoring program's own)
    records:   one per actor:

    [tz_offset, reach, consent, traits, at, engagement, purchases, revenue, last_purchase_at,
     timeline_at, timeline_what, cooldowns, runs, in_app, later]

    at: where the actor's columns start in ``doubles``
    engagement, timeline_at, cooldowns: how many doubles each column takes from there, in that
        order (nil: the profile has no such column)
    timeline_what: position in ``timelines`` (nil: no timeline)
    runs:   [[journey, entry, entered_at, holdout, converted, step, version, due_at, context,
             sends, passed], ...] per journey entered, ``journey`` a position in ``journeys``
             (nil: none ever was); ``context`` is nil when empty; ``passed`` the steps reached,
             one bit per step in the journey's file order (format 6 had no ``passed``: read as
             none reached; a scenario whose steps were reordered since reads the bits in its
             own order)
    in_app: [[customer, journey, entry, step, channel, message, key, transactional], ...]
    later:  nil, or [first_purchase_at, scores, scored_at, segments, engaged_hours] (format 8;
            earlier formats have no such field: read as none), ``scores`` a list of floats or
            nil, ``engaged_hours`` 24 counts or nil, ``segments``
            nil or [members, version, due, session, last_at, seen, without] (``SegmentState``;
            ``seen`` per window nil or [[at, session, value], ...], ``without`` per window nil
            or [at, session])
    timers: the live timer of every active run, and of every live segment timer, as columns:
            [actor, journey, version, due_at], bins of little-endian uint32 (position in
            ``ids``), uint16 (position in ``journeys``, where a segment timer's is one past the
            program's journeys: ``journeys`` then ends with ``actors.segments.SEGMENT_TIMER``),
            int64 and double

Each record reads on its own, given its chunk's shared columns: a runtime restores a chunk as
ids, raw records and timers (``read_chunk``), arms the timers, and turns a record into an actor
only when a message for that customer comes (``actor_from``). Restoring a million actors is
bound by how many objects it makes (REFERENCE.md section 8), and so it makes about two per
actor at start-up (its id and its raw record) instead of some twenty. A record not yet turned
into an actor is written to the next snapshot as it is (``rewrite_chunk``), with its chunk's
columns.

An actor is made with ``__new__`` and filled slot by slot (``__init__`` would set every field
twice); a profile's arrays are slices of the chunk's doubles, label sequences are shared by the
actors that have them (a profile replaces its tuple of labels when it changes, never changes it
in place), labels and step ids come back interned and empty contexts share one dict (a run's
context is replaced, never mutated), so a restored actor is as compact as a live one.

The compiled ``Program`` is not part of a snapshot: it comes from the scenario on restore, and runs
are matched to its journeys by id, a segment state's membership and windows to its segments and
windows by the chunk's ``segments`` table. ``decode(encode(actor), program) == actor`` holds for every
state the core can reach.
"""

from __future__ import annotations

import math
import sys
from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import msgspec

from actors.actor import Actor
from actors.errors import EngineInternalError
from actors.journey import Program
from actors.messages import Properties, Send
from actors.profile import Profile
from actors.runs import JourneyRun
from actors.segments import (
    SEGMENT_TIMER,
    SEGMENT_TIMER_PRIORITY,
    restored_state,
    segment_maps,
    segment_table,
    state_record,
)

FORMAT_VERSION = 9
_READS = (6, 7, 8, 9)  # 6: runs without ``passed``; 6 and 7: records without ``later``; 6-8: no ``segments``
_READ = " and ".join(map(str, _READS))

_EMPTY_CONTEXT: Properties = {}  # shared by every restored run without a context; never mutated
_LITTLE_ENDIAN = sys.byteorder == "little"
# The positions of the fields this module reads out of a record without decoding all of it, named
# after the layouts in the docstring above (which are the format: positional, no names on disk).
CHUNK_FIELDS = ("version", "ids", "doubles", "timelines", "journeys", "records", "timers", "segments")
RECORD_FIELDS = ("tz_offset", "reach", "consent", "traits", "at", "engagement", "purchases",
                 "revenue", "last_purchase_at", "timeline_at", "timeline_what", "cooldowns", "runs",
                 "in_app", "later")
RUN_FIELDS = ("journey", "entry", "entered_at", "holdout", "converted", "step", "version", "due_at",
              "context", "sends", "passed")
_CHUNK_VERSION = CHUNK_FIELDS.index("version")
_RECORD_RUNS = RECORD_FIELDS.index("runs")
_RUN_JOURNEY = RUN_FIELDS.index("journey")

_encoder = msgspec.msgpack.Encoder()
_Timers = tuple[bytes, bytes, bytes, bytes]
_Segments = tuple[list[str], list[str]]
_chunk_decoder = msgspec.msgpack.Decoder(  # (records stay views of the buffer: no copy)
    tuple[int, list[str], memoryview, list[list[str]], list[str], list[msgspec.Raw], _Timers, _Segments]
)
_chunk_decoder_8 = msgspec.msgpack.Decoder(  # (formats 6 to 8: no segments table)
    tuple[int, list[str], memoryview, list[list[str]], list[str], list[msgspec.Raw], _Timers]
)
_record_decoder = msgspec.msgpack.Decoder()


def _bytes(values: array[Any]) -> bytes:
    """An array as little-endian bytes."""
    if not _LITTLE_ENDIAN:
        values = array(values.typecode, values)
        values.byteswap()
    return values.tobytes()


def _array(typecode: str, data: bytes | memoryview) -> array[Any]:
    """An array of ``typecode`` from little-endian bytes."""
    values = array(typecode)
    values.frombytes(data)
    if not _LITTLE_ENDIAN:
        values.byteswap()
    return values


class Chunk:
    """A chunk as read back: the customer ids, the raw records, and the shared columns the
    records need to become actors (``actor_from``) or to be written again (``rewrite_chunk``).

    Raises:
        EngineInternalError: (on creation) the chunk is of an unknown format version, or has a
            run of a journey the program no longer has.
    """

    __slots__ = ("data", "ids", "doubles", "patterns", "timelines", "journeys", "records", "timers",
                 "program", "segments", "members_map", "slots_map")

    def __init__(self, data: bytes, program: Program) -> None:
        version, ids, doubles, patterns, journeys, records, timers, segments = _decoded(data, program)
        if version not in _READS:
            raise EngineInternalError(f"snapshot chunk format {version!r}; this engine reads {_READ}")
        for position, journey_id in enumerate(journeys):
            if journey_id in program.by_id:
                continue  # (a journey the scenario dropped is fine while no run is in it)
            holders = (ids[i] for i, position_of in _run_journeys(records) if position_of == position)
            holder = next(holders, None)
            if holder is not None:
                raise EngineInternalError(
                    f"snapshot of {holder!r} has a run of journey {journey_id!r}, which the"
                    " scenario no longer has"
                )
        self.data = data  # (its raw records are views of it)
        self.ids: list[str] = ids
        self.doubles = _array("d", doubles)  # each column of an actor is a slice of it
        self.patterns = patterns
        self.timelines = [tuple(map(sys.intern, labels)) for labels in patterns]
        self.journeys = journeys
        self.records: list[msgspec.Raw] = records
        self.timers = timers
        self.program = program
        self.segments = segments
        self.members_map, self.slots_map = segment_maps(segments, program)

    def __len__(self) -> int:
        return len(self.ids)

    def priorities(self) -> list[int]:
        """The priority of the timers of each position in ``journeys`` (a journey's, or, past
        the program's journeys, the segment timers')."""
        by_id = self.program.by_id
        return [by_id[j].priority if j in by_id else SEGMENT_TIMER_PRIORITY for j in self.journeys]

    def timer_columns(self) -> tuple[array[int], array[int], array[int], array[float]]:
        """The live timers as columns: positions of the actors, positions in ``journeys``,
        versions and due times."""
        actor_at, journey_at, versions, due = self.timers
        return _array("I", actor_at), _array("H", journey_at), _array("q", versions), _array("d", due)


def _decoded(data: bytes, program: Program) -> tuple[Any, ...]:
    """A chunk's fields; one of formats 6 to 8 (no ``segments``) with the program's own table."""
    for decoder in (_chunk_decoder, _chunk_decoder_8):
        try:
            fields: tuple[Any, ...] = decoder.decode(data)
        except msgspec.DecodeError:
            continue
        return fields if len(fields) == len(CHUNK_FIELDS) else (*fields, segment_table(program))
    decoded = _record_decoder.decode(data)  # another format? say which
    found = decoded[_CHUNK_VERSION] if isinstance(decoded, list) and decoded else None
    raise EngineInternalError(f"snapshot chunk format {found!r}; this engine reads {_READ}")


def _run_journeys(records: list[msgspec.Raw]) -> Iterator[tuple[int, int]]:
    """``(record position, journey position)`` of every run in the raw records."""
    for index, raw in enumerate(records):
        for run in _record_decoder.decode(raw)[_RECORD_RUNS] or ():
            yield index, run[_RUN_JOURNEY]


def read_chunk(data: bytes, program: Program) -> Chunk:
    """A chunk from its bytes (``encode_chunk`` output), its records left raw until needed.

    Raises:
        EngineInternalError: the chunk is of an unknown format version, or has a run of a journey
            the program no longer has.
    """
    return Chunk(data, program)


def to_chunk(actors: Iterable[Actor]) -> tuple[Any, ...]:
    """The actors' state as one chunk: plain tuples, lists, dicts, bytes and scalars."""
    actors = actors if isinstance(actors, list) else list(actors)
    ids = [actor.profile.customer_id for actor in actors]
    # the journeys table is the program's journeys in order, so a run's position is its index
    journey_ids = [journey.id for journey in actors[0].program.journeys] if actors else []
    segment_timer = len(journey_ids)  # (the segment timers' position, added when there is one)
    doubles: array[float] = array("d")
    timelines: dict[tuple[str, ...], int] = {}
    records = []
    timers: list[Any] = []  # position, journey, version, due_at, flat: sliced into columns
    # One loop, no Python call per actor: it runs a million times per snapshot.
    for position, actor in enumerate(actors):
        p = actor.profile
        engagement, timeline_at, cooldowns, what = p.engagement, p.timeline_at, p.cooldowns, p.timeline_what
        at = len(doubles)
        if engagement is not None:
            doubles += engagement
        if timeline_at is not None:
            doubles += timeline_at
        if cooldowns is not None:
            doubles += cooldowns
        runs = None
        if actor.runs is not None:
            runs, index = [], 0
            for r in actor.runs:  # zip(..., strict=True) would cost 0.3 s more per million actors
                if r is not None:
                    runs.append((index, r.entry, r.entered_at, r.holdout, r.converted,
                                 r.step, r.version, r.due_at, r.context or None, r.sends, r.passed))
                    if r.step is not None:
                        timers += (position, index, r.version, r.due_at)
                index += 1
        later = None
        if (p.first_purchase_at is not None or p.scores is not None or actor.segments is not None
                or p.engaged_hours is not None):
            later = (p.first_purchase_at, p.scores, p.scored_at, state_record(actor.segments),
                     None if p.engaged_hours is None else p.engaged_hours.tolist())
            state = actor.segments
            if state is not None and state.due < math.inf:
                timers += (position, segment_timer, state.version, state.due)
        records.append((
            p.tz_offset, p.reach, p.consent, p.traits, at,
            None if engagement is None else len(engagement),
            p.purchases, p.revenue, p.last_purchase_at,
            None if timeline_at is None else len(timeline_at),
            None if what is None else timelines.setdefault(what, len(timelines)),
            None if cooldowns is None else len(cooldowns),
            runs,
            None if actor.in_app is None else [send_record(send) for send in actor.in_app],
            later,
        ))
    if segment_timer in timers[1::4]:
        journey_ids.append(SEGMENT_TIMER)
    segments = segment_table(actors[0].program) if actors else ([], [])
    return (FORMAT_VERSION, ids, _bytes(doubles), list(timelines), journey_ids, records,
            _timer_columns(timers), segments)


def _timer_columns(timers: list[Any]) -> tuple[bytes, bytes, bytes, bytes]:
    """``position, journey, version, due_at`` four by four, as the chunk's four timer columns."""
    return (_bytes(array("I", timers[0::4])), _bytes(array("H", timers[1::4])),
            _bytes(array("q", timers[2::4])), _bytes(array("d", timers[3::4])))


def rewrite_chunk(chunk: Chunk, keep: Sequence[int]) -> tuple[Any, ...]:
    """The records at positions ``keep`` of a chunk read back, as a chunk again: the raw
    records and the shared columns as they were (a record is not decoded), their timers kept."""
    renumbered = {position: new for new, position in enumerate(keep)}
    timers: list[Any] = []
    for position, journey, version, due_at in zip(*chunk.timer_columns(), strict=True):
        if position in renumbered:
            timers += (renumbered[position], journey, version, due_at)
    return (FORMAT_VERSION, [chunk.ids[i] for i in keep], _bytes(chunk.doubles), chunk.patterns,
            chunk.journeys, [chunk.records[i] for i in keep], _timer_columns(timers), chunk.segments)


def actor_from(chunk: Chunk, customer_id: str, raw: msgspec.Raw) -> Actor:
    """The actor of a raw record of ``chunk``."""
    return _actor(chunk, customer_id, _record_decoder.decode(raw))


def actors_of(chunk: Chunk) -> dict[str, Actor]:
    """Every actor of ``chunk``, by customer id (its records decoded in one call)."""
    records = _record_decoder.decode(chunk.data)[CHUNK_FIELDS.index("records")]
    return {cid: _actor(chunk, cid, record) for cid, record in zip(chunk.ids, records, strict=True)}


def _actor(chunk: Chunk, customer_id: str, record: Sequence[Any]) -> Actor:
    (tz_offset, reach, consent, traits, at, engagement, purchases, revenue, last_purchase_at,
     timeline_at, what, cooldowns, runs, in_app, *later) = record
    program, doubles = chunk.program, chunk.doubles
    p = Profile.__new__(Profile)
    p.customer_id = customer_id
    p.tz_offset = tz_offset
    p.reach = reach
    p.consent = consent
    p.traits = traits
    p.purchases = purchases
    p.revenue = revenue
    p.last_purchase_at = last_purchase_at
    p.engagement = None if engagement is None else doubles[at : at + engagement]
    at += engagement or 0
    p.timeline_at = None if timeline_at is None else doubles[at : at + timeline_at]
    at += timeline_at or 0
    p.cooldowns = None if cooldowns is None else doubles[at : at + cooldowns]
    p.timeline_what = None if what is None else chunk.timelines[what]
    p.first_purchase_at = p.scores = p.scored_at = p.engaged_hours = None
    actor = Actor.__new__(Actor)
    actor.program = program
    actor.profile = p
    actor.in_app = None if in_app is None else [Send(*fields) for fields in in_app]
    actor.segments = None
    if later and later[0] is not None:
        first, scores, scored_at, segments, hours = later[0]
        p.engaged_hours = None if hours is None else array("I", hours)
        p.first_purchase_at, p.scored_at = first, scored_at
        p.scores = None if scores is None else tuple(scores)
        actor.segments = restored_state(segments, chunk.members_map, chunk.slots_map, program)
    if runs is None:
        actor.runs = None
        return actor
    by_index: list[JourneyRun | None] = [None] * len(program.journeys)
    actor.runs = by_index
    journeys, by_id, intern = chunk.journeys, program.by_id, sys.intern
    for (journey, entry, entered_at, holdout, converted, step, version, due_at, context,
         sends, *passed) in runs:
        run = by_index[by_id[journeys[journey]].index] = JourneyRun.__new__(JourneyRun)
        run.entry = entry
        run.entered_at = entered_at
        run.holdout = holdout
        run.converted = converted
        run.step = None if step is None else intern(step)
        run.version = version
        run.due_at = due_at
        run.context = context or _EMPTY_CONTEXT
        run.sends = sends
        run.passed = passed[0] if passed else 0
    return actor


def encode_chunk(chunk: tuple[Any, ...]) -> bytes:
    """A ``to_chunk`` or ``rewrite_chunk`` chunk as MessagePack bytes."""
    return _encoder.encode(chunk)


def encode(actor: Actor) -> bytes:
    """One actor's state as MessagePack bytes (a chunk of one)."""
    return encode_chunk(to_chunk([actor]))


def decode(data: bytes, program: Program) -> Actor:
    """An actor from ``encode`` output, bound to ``program``."""
    chunk = read_chunk(data, program)
    return actor_from(chunk, chunk.ids[0], chunk.records[0])


def send_record(send: Send) -> list[Any]:
    """A send's fields as a list (``Send(*record)`` rebuilds it)."""
    return [getattr(send, name) for name in send.__struct_fields__]
