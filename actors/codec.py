"""Snapshot codec: an actor's whole state to MessagePack bytes and back.

The layout is positional (array-like records), which is both smaller and faster than maps:

    [version, customer_id, tz_offset, reach, consent, traits, engagement, purchases, revenue,
     last_purchase_at, timeline_at, timeline_what, cooldowns, runs, in_app]

    engagement: [sends, delivered, opened, clicked, last_engaged_at] per channel, flat
    cooldowns:  [started_at] per policy cool-down, by position

    runs:   {journey_id: [entry, entered_at, holdout, converted, step, version, due_at, context,
             sends]}
    in_app: [[customer, journey, entry, step, channel, message, key, transactional], ...]

The compiled ``Program`` is not part of a snapshot: it comes from the scenario on restore.
``decode(encode(actor), program) == actor`` holds for every state the core can reach.
"""

from __future__ import annotations

from array import array
from typing import Any

import msgpack

from actors.actor import Actor, JourneyRun
from actors.errors import EngineInternalError
from actors.journey import Program
from actors.messages import Send
from actors.profile import Profile, label

FORMAT_VERSION = 4


def to_record(actor: Actor) -> list[Any]:
    """The actor's state as plain lists, dicts and scalars (what ``encode`` packs)."""
    p = actor.profile
    runs = None
    if actor.runs is not None:
        runs = {
            jid: [r.entry, r.entered_at, r.holdout, r.converted, r.step, r.version, r.due_at, r.context,
                  r.sends]
            for jid, r in actor.runs_by_id().items()
        }
    in_app = None if actor.in_app is None else [send_record(s) for s in actor.in_app]
    engagement = None if p.engagement is None else list(p.engagement)
    timeline_at = None if p.timeline_at is None else list(p.timeline_at)
    cooldowns = None if p.cooldowns is None else list(p.cooldowns)
    return [
        FORMAT_VERSION, p.customer_id, p.tz_offset, p.reach, p.consent, p.traits, engagement,
        p.purchases, p.revenue, p.last_purchase_at, timeline_at, p.timeline_what,
        cooldowns, runs, in_app,
    ]


def from_record(record: list[Any], program: Program) -> Actor:
    """Rebuild an actor from ``to_record`` output.

    Raises:
        EngineInternalError: the record is of an unknown format version.
    """
    if record[0] != FORMAT_VERSION:
        raise EngineInternalError(f"snapshot format {record[0]!r}; this engine reads {FORMAT_VERSION}")
    (_, cid, tz, reach, consent, traits, engagement, purchases, revenue, last_purchase,
     timeline_at, timeline_what, cooldowns, runs, in_app) = record
    profile = Profile(cid, tz_offset=tz, reach=reach, consent=consent)
    profile.traits = traits
    if engagement is not None:
        profile.engagement = array("d", engagement)
    profile.purchases = purchases
    profile.revenue = revenue
    profile.last_purchase_at = last_purchase
    if timeline_at is not None:
        profile.timeline_at = array("d", timeline_at)
        profile.timeline_what = [label(what) for what in timeline_what]
    if cooldowns is not None:
        profile.cooldowns = array("d", cooldowns)
    actor = Actor(program, profile)
    if runs is not None:
        actor.runs = [None] * len(program.journeys)
        for jid, fields in runs.items():
            journey = program.by_id.get(jid)
            if journey is None:
                raise EngineInternalError(
                    f"snapshot of {cid!r} has a run of journey {jid!r}, which the scenario no longer has"
                )
            run = JourneyRun()
            (run.entry, run.entered_at, run.holdout, run.converted, run.step, run.version,
             run.due_at, run.context, run.sends) = fields
            actor.runs[journey.index] = run
    if in_app is not None:
        actor.in_app = [Send(*fields) for fields in in_app]
    return actor


def encode(actor: Actor) -> bytes:
    """The actor's state as MessagePack bytes."""
    return msgpack.packb(to_record(actor), use_bin_type=True)  # type: ignore[no-any-return]


def decode(data: bytes, program: Program) -> Actor:
    """An actor from ``encode`` output, bound to ``program``."""
    return from_record(msgpack.unpackb(data, raw=False, strict_map_key=False), program)


def send_record(send: Send) -> list[Any]:
    """A send's fields as a list (``Send(*record)`` rebuilds it)."""
    return [getattr(send, name) for name in send.__struct_fields__]
