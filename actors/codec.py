"""Snapshot codec: actors' whole state to MessagePack and back, a chunk of actors at a time.

A chunk is one MessagePack array, positional throughout (array-like records are both smaller and
faster than maps):

    [version, doubles, timelines, records]

    doubles:   every ``array('d')`` column of the chunk's profiles (engagement, timeline_at,
               cooldowns, actor after actor), end to end, as one bin of little-endian doubles
    timelines: the chunk's distinct ``timeline_what`` label sequences, each a list of labels
    records:   one per actor:

    [customer_id, tz_offset, reach, consent, traits, engagement, purchases, revenue,
     last_purchase_at, timeline_at, timeline_what, cooldowns, runs, in_app]

    engagement, timeline_at, cooldowns: how many doubles the column takes from ``doubles``
        (nil: the profile has no such column)
    timeline_what: position in ``timelines`` (nil: no timeline)
    runs:   [[journey_id, entry, entered_at, holdout, converted, step, version, due_at, context,
             sends], ...] per journey entered (nil: none ever was); ``context`` is nil when empty
    in_app: [[customer, journey, entry, step, channel, message, key, transactional], ...]

Restoring a million actors is bound by how many objects it makes (REFERENCE.md section 8), so the
layout is shaped to make few: a profile's arrays are slices of one chunk-wide array (one
allocation each, where building one from its own bytes takes two and twice the time), and label
sequences, which a few patterns cover (``cart_add`` then ``sent push cart_reminder``...), are
decoded once per chunk and shared by the actors that have them (a profile replaces its tuple of
labels when it changes, never changes it in place). Profiles, actors and runs are made with
``__new__`` and filled slot by slot (``__init__`` would set every field twice). Labels and step ids come back
interned and empty contexts share one dict (a run's context is replaced, never mutated), so a
restored engine holds its state as compactly as a live one.

The compiled ``Program`` is not part of a snapshot: it comes from the scenario on restore, and runs
are matched to its journeys by id. ``decode(encode(actor), program) == actor`` holds for every
state the core can reach.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Iterable, Sequence
from typing import Any

import msgpack
import msgspec

from actors.actor import Actor, JourneyRun
from actors.errors import EngineInternalError
from actors.journey import Program
from actors.messages import Properties, Send
from actors.profile import Profile

FORMAT_VERSION = 5

_EMPTY_CONTEXT: Properties = {}  # shared by every restored run without a context; never mutated
_LITTLE_ENDIAN = sys.byteorder == "little"
_encoder = msgspec.msgpack.Encoder()


def _bytes(values: array[float]) -> bytes:
    """An ``array('d')`` as little-endian bytes."""
    if not _LITTLE_ENDIAN:
        values = array("d", values)
        values.byteswap()
    return values.tobytes()


def _doubles(data: bytes) -> array[float]:
    """An ``array('d')`` from little-endian bytes."""
    values = array("d", data)
    if not _LITTLE_ENDIAN:
        values.byteswap()
    return values


def to_chunk(actors: Iterable[Actor]) -> tuple[Any, ...]:
    """The actors' state as one chunk: plain tuples, lists, dicts, bytes and scalars."""
    doubles: array[float] = array("d")
    timelines: dict[tuple[str, ...], int] = {}
    records = []
    # One loop, no Python call per actor: it runs a million times per snapshot.
    for actor in actors:
        p = actor.profile
        engagement, timeline_at, cooldowns, what = p.engagement, p.timeline_at, p.cooldowns, p.timeline_what
        if engagement is not None:
            doubles += engagement
        if timeline_at is not None:
            doubles += timeline_at
        if cooldowns is not None:
            doubles += cooldowns
        runs = None
        if actor.runs is not None:
            journeys, runs, index = actor.program.journeys, [], 0
            for r in actor.runs:  # zip(..., strict=True) would cost 0.3 s more per million actors
                if r is not None:
                    runs.append((journeys[index].id, r.entry, r.entered_at, r.holdout, r.converted,
                                 r.step, r.version, r.due_at, r.context or None, r.sends))
                index += 1
        records.append((
            p.customer_id, p.tz_offset, p.reach, p.consent, p.traits,
            None if engagement is None else len(engagement),
            p.purchases, p.revenue, p.last_purchase_at,
            None if timeline_at is None else len(timeline_at),
            None if what is None else timelines.setdefault(what, len(timelines)),
            None if cooldowns is None else len(cooldowns),
            runs,
            None if actor.in_app is None else [send_record(send) for send in actor.in_app],
        ))
    return FORMAT_VERSION, _bytes(doubles), list(timelines), records


def from_chunk(
    chunk: Sequence[Any], program: Program, into: dict[str, Actor] | None = None
) -> dict[str, Actor]:
    """The actors of a ``to_chunk`` chunk (whose lists may come back as tuples), by customer id:
    added to ``into`` when given (a restore fills one table, chunk by chunk), else to a new dict.

    Raises:
        EngineInternalError: the chunk is of an unknown format version, or has a run of a journey
            the program no longer has.
    """
    chunk_version, data, patterns, records = chunk
    if chunk_version != FORMAT_VERSION:
        raise EngineInternalError(
            f"snapshot format {chunk_version!r}; this engine reads {FORMAT_VERSION}"
        )
    doubles = _doubles(data)
    timelines = [tuple(map(sys.intern, labels)) for labels in patterns]
    new_profile, new_actor, new_run, intern = Profile.__new__, Actor.__new__, JourneyRun.__new__, sys.intern
    journey_count, journey_by_id = len(program.journeys), program.by_id
    actors = {} if into is None else into
    at = 0  # where the next column starts in ``doubles``
    # One loop, no Python call per actor: it runs a million times per restore.
    for (customer_id, tz_offset, reach, consent, traits, engagement, purchases, revenue,
         last_purchase_at, timeline_at, what, cooldowns, runs, in_app) in records:
        p = new_profile(Profile)
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
        at += cooldowns or 0
        p.timeline_what = None if what is None else timelines[what]
        actor = actors[customer_id] = new_actor(Actor)
        actor.program = program
        actor.profile = p
        actor.in_app = None if in_app is None else [Send(*fields) for fields in in_app]
        if runs is None:
            actor.runs = None
            continue
        by_index: list[JourneyRun | None] = [None] * journey_count
        actor.runs = by_index
        for (journey_id, entry, entered_at, holdout, converted, step, version, due_at, context,
             sends) in runs:
            journey = journey_by_id.get(journey_id)
            if journey is None:
                raise EngineInternalError(
                    f"snapshot of {customer_id!r} has a run of journey {journey_id!r}, which the"
                    " scenario no longer has"
                )
            run = by_index[journey.index] = new_run(JourneyRun)
            run.entry = entry
            run.entered_at = entered_at
            run.holdout = holdout
            run.converted = converted
            run.step = None if step is None else intern(step)
            run.version = version
            run.due_at = due_at
            run.context = context or _EMPTY_CONTEXT
            run.sends = sends
    return actors


def encode(actor: Actor) -> bytes:
    """One actor's state as MessagePack bytes (a chunk of one)."""
    return _encoder.encode(to_chunk([actor]))


def decode(data: bytes, program: Program) -> Actor:
    """An actor from ``encode`` output, bound to ``program``."""
    (actor,) = from_chunk(msgpack.unpackb(data, raw=False, use_list=False), program).values()
    return actor


def send_record(send: Send) -> list[Any]:
    """A send's fields as a list (``Send(*record)`` rebuilds it)."""
    return [getattr(send, name) for name in send.__struct_fields__]
