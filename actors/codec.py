"""Snapshot codec: an actor's whole state to MessagePack bytes and back.

The layout is positional (array-like records), which is both smaller and faster than maps:

    [version, customer_id, tz_offset, reach, consent, traits, engagement, purchases, revenue,
     last_purchase_at, timeline_at, timeline_what, cooldowns, runs, in_app]

    engagement, timeline_at, cooldowns: the profile's ``array('d')`` columns as one bin each,
        little-endian doubles (``array.tobytes``): one object to pack and unpack instead of a
        float per counter
    runs:   [[journey_id, entry, entered_at, holdout, converted, step, version, due_at, context,
             sends], ...] per journey entered; ``context`` is nil when empty
    in_app: [[customer, journey, entry, step, channel, message, key, transactional], ...]

A restore builds a million of these, so decoding avoids every object it can: the profile and
runs are made with ``__new__`` and filled slot by slot (their ``__init__`` would set each field
twice), empty contexts share one dict (a run's context is replaced, never mutated), and timeline
labels and step ids are interned as they come (equal names share one string, as in a live engine).

The compiled ``Program`` is not part of a snapshot: it comes from the scenario on restore, and runs
are matched to its journeys by id. ``decode(encode(actor), program) == actor`` holds for every
state the core can reach.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Sequence
from typing import Any

import msgpack

from actors.actor import Actor, JourneyRun
from actors.errors import EngineInternalError
from actors.journey import Program
from actors.messages import Properties, Send
from actors.profile import Profile

FORMAT_VERSION = 5

_LITTLE_ENDIAN = sys.byteorder == "little"
_EMPTY_CONTEXT: Properties = {}  # shared by every restored run without a context; never mutated
_new_profile = Profile.__new__
_new_actor = Actor.__new__
_new_run = JourneyRun.__new__
_intern = sys.intern


def to_record(actor: Actor) -> tuple[Any, ...]:
    """The actor's state as a tuple of scalars, bytes, lists and dicts (what ``encode`` packs)."""
    p = actor.profile
    runs: list[tuple[Any, ...]] | None = None
    if actor.runs is not None:
        # a plain loop: at a million actors, zip(strict=True) alone costs a third of a second
        journeys, runs, index = actor.program.journeys, [], 0
        for r in actor.runs:
            if r is not None:
                runs.append((journeys[index].id, r.entry, r.entered_at, r.holdout, r.converted, r.step,
                             r.version, r.due_at, r.context or None, r.sends))
            index += 1
    in_app = None if actor.in_app is None else [send_record(s) for s in actor.in_app]
    return (
        FORMAT_VERSION, p.customer_id, p.tz_offset, p.reach, p.consent, p.traits,
        _bytes(p.engagement), p.purchases, p.revenue, p.last_purchase_at, _bytes(p.timeline_at),
        p.timeline_what, _bytes(p.cooldowns), runs, in_app,
    )


def from_record(record: Sequence[Any], program: Program) -> Actor:
    """Rebuild an actor from ``to_record`` output (lists may come back as tuples).

    Raises:
        EngineInternalError: the record is of an unknown format version, or has a run of a
            journey the program no longer has.
    """
    if record[0] != FORMAT_VERSION:
        raise EngineInternalError(f"snapshot format {record[0]!r}; this engine reads {FORMAT_VERSION}")
    profile = _new_profile(Profile)
    (_, profile.customer_id, profile.tz_offset, profile.reach, profile.consent, profile.traits,
     engagement, profile.purchases, profile.revenue, profile.last_purchase_at, timeline_at,
     timeline_what, cooldowns, runs, in_app) = record
    profile.engagement = None if engagement is None else _doubles(engagement)
    profile.timeline_at = None if timeline_at is None else _doubles(timeline_at)
    profile.timeline_what = None if timeline_what is None else list(map(_intern, timeline_what))
    profile.cooldowns = None if cooldowns is None else _doubles(cooldowns)
    actor = _new_actor(Actor)
    actor.program, actor.profile = program, profile
    actor.runs = None if runs is None else _runs(runs, program, profile.customer_id)
    actor.in_app = None if in_app is None else [Send(*fields) for fields in in_app]
    return actor


def _runs(records: Sequence[Sequence[Any]], program: Program, customer_id: str) -> list[JourneyRun | None]:
    runs: list[JourneyRun | None] = [None] * len(program.journeys)
    for fields in records:
        journey = program.by_id.get(fields[0])
        if journey is None:
            raise EngineInternalError(
                f"snapshot of {customer_id!r} has a run of journey {fields[0]!r}, which the scenario"
                " no longer has"
            )
        run = runs[journey.index] = _new_run(JourneyRun)
        (_, run.entry, run.entered_at, run.holdout, run.converted, step, run.version, run.due_at,
         context, run.sends) = fields
        run.step = None if step is None else _intern(step)
        run.context = context or _EMPTY_CONTEXT
    return runs


def _bytes(values: array[float] | None) -> bytes | None:
    """An ``array('d')`` as little-endian bytes."""
    if values is None:
        return None
    if _LITTLE_ENDIAN:
        return values.tobytes()
    swapped = array("d", values)
    swapped.byteswap()
    return swapped.tobytes()


def _doubles(data: bytes) -> array[float]:
    """An ``array('d')`` from little-endian bytes."""
    values = array("d", data)
    if not _LITTLE_ENDIAN:
        values.byteswap()
    return values


def encode(actor: Actor) -> bytes:
    """The actor's state as MessagePack bytes."""
    return msgpack.packb(to_record(actor), use_bin_type=True)  # type: ignore[no-any-return]


def decode(data: bytes, program: Program) -> Actor:
    """An actor from ``encode`` output, bound to ``program``."""
    return from_record(msgpack.unpackb(data, raw=False, use_list=False), program)


def send_record(send: Send) -> list[Any]:
    """A send's fields as a list (``Send(*record)`` rebuilds it)."""
    return [getattr(send, name) for name in send.__struct_fields__]
