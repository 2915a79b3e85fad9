"""Snapshots: every actor's state, written atomically, read back for recovery.

A snapshot file is a stream of MessagePack values: a header ``{"format", "lsn", "seen",
"pending"}`` (message ids applied lately, sends not yet settled), one record per actor
(``actors.codec.to_record``), and a trailer ``{"end": count}``. It is written to a temporary
file, fsynced, renamed into place and the folder fsynced, so a crash leaves either the old
snapshots or the new one complete. A file without its trailer (or that fails to parse) is skipped
for the next older one.

Recovery (``recover``) loads the newest valid snapshot, replays the write-ahead log after it
through the actors, and returns them with their live timers, which the runtime re-arms (a timer
that came due while the engine was down fires once, at restart), and with the sends to hand to
the outbox again (pending at the snapshot, or produced by the replay).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

import msgpack

from actors.actor import Actor
from actors.codec import from_record, send_record, to_record
from actors.journey import Program
from actors.messages import Schedule, Send
from actors.profile import Profile
from engine.wal import WriteAheadLog, fsync_directory

FORMAT = 1


class Snapshot(NamedTuple):
    """A loaded snapshot."""

    lsn: int
    actors: dict[str, Actor]
    seen: dict[str, float]
    pending: list[Send]


class Recovered(NamedTuple):
    """What ``recover`` rebuilds from a data folder."""

    actors: dict[str, Actor]
    timers: list[tuple[str, Schedule]]
    log: WriteAheadLog
    seen: dict[str, float]
    resend: list[Send]


def write_snapshot(
    directory: Path,
    lsn: int,
    actors: Iterable[Actor],
    seen: dict[str, float] | None = None,
    pending: Iterable[Send] = (),
) -> Path:
    """Write every actor's state, the message ids applied lately (id -> when) and the sends not
    yet settled, as of log position ``lsn``; return the snapshot's path."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"snap-{lsn:016d}.msgpack"
    temporary = directory / f".{final.name}.tmp"
    packer = msgpack.Packer(use_bin_type=True)
    count = 0
    with open(temporary, "wb") as file:
        header = {"format": FORMAT, "lsn": lsn, "seen": seen or {},
                  "pending": [send_record(send) for send in pending]}
        file.write(packer.pack(header))
        for actor in actors:
            file.write(packer.pack(to_record(actor)))
            count += 1
        file.write(packer.pack({"end": count}))
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, final)
    fsync_directory(directory)
    return final


def load_latest(directory: Path, program: Program) -> Snapshot:
    """The newest complete snapshot (an empty one at position 0 if there is none)."""
    for path in sorted(directory.glob("snap-*.msgpack"), reverse=True):
        loaded = _load(path, program)
        if loaded is not None:
            return loaded
    return Snapshot(0, {}, {}, [])


def _load(path: Path, program: Program) -> Snapshot | None:
    actors: dict[str, Actor] = {}
    try:
        with open(path, "rb") as file:
            values = msgpack.Unpacker(file, raw=False, strict_map_key=False)
            header = next(values)
            if not isinstance(header, dict) or header.get("format") != FORMAT:
                return None
            for value in values:
                if isinstance(value, dict):
                    if value.get("end") != len(actors):
                        return None
                    pending = [Send(*fields) for fields in header.get("pending", [])]
                    return Snapshot(header["lsn"], actors, dict(header.get("seen", {})), pending)
                actor = from_record(value, program)
                actors[actor.customer_id] = actor
    except (ValueError, StopIteration, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
        return None
    return None  # no trailer: the file was cut short


def recover(
    data: Path, program: Program, profiles: Callable[[str], Profile] = Profile, fsync: str = "batch"
) -> Recovered:
    """Rebuild the engine's state from ``data``: the newest snapshot plus the log after it.

    ``fsync`` is the policy of the reopened log (see ``engine.wal``).

    Returns:
        The actors by id, their live timers ``(customer_id, schedule)`` to re-arm, the open log
        ready for appends, the client message ids applied (id -> when), and the sends to hand
        to the outbox again: those pending at the snapshot and those the replay produced. They
        may have gone out before the crash; their idempotency keys make a second try harmless
        at a provider that honours keys, and forgetting them is not an option.
    """
    snapshot = load_latest(data / "snapshots", program)
    actors, seen, resend = snapshot.actors, snapshot.seen, list(snapshot.pending)
    log = WriteAheadLog(data / "wal", fsync=fsync)
    for _, at, customer_id, message, message_id in log.replay(after=snapshot.lsn):
        if message_id is not None:
            seen[message_id] = at
        actor = actors.get(customer_id)
        if actor is None:
            actor = actors[customer_id] = Actor(program, profiles(customer_id))
        # the pure core rebuilds the state; of its effects only the sends matter again
        resend.extend(e for e in actor.handle(message, at) if isinstance(e, Send))
    timers = [(cid, timer) for cid, actor in actors.items() for timer in actor.live_timers()]
    return Recovered(actors, timers, log, seen, resend)

