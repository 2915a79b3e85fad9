"""Snapshots: every actor's state, written atomically, read back for recovery.

A snapshot file is a stream of MessagePack values: a header ``{"format", "lsn", "seen", "pending",
"aliases"}`` (message ids applied lately, sends not yet settled, merged ids), the actors in chunks
of up to ``CHUNK`` (``actors.codec``), each framed as one bin, and a trailer ``{"end": count}``.
It is written to a temporary file, fsynced, renamed into place and the folder fsynced, so a
crash leaves either the old snapshots or the new one complete. A file without its trailer (or
that fails to parse) is skipped for the next older one; a file of another format stops the load
with a ``StorageError`` (skipping it would quietly restore older state, and the log before it
may be gone).

Both directions are built for a million actors. Writing packs each chunk with msgspec (twice as
fast as msgpack, the same bytes) and writes it in one call; reading streams the chunks back with
``msgpack.Unpacker``. A load keeps each actor as its raw record (``Dormant``) and the runtime
turns it into an actor when the first message for it comes: a restore makes two objects per
actor, not twenty, and a record still dormant at the next snapshot is written back as it is.
Both run with the cyclic garbage collector off: chunks and actors are container objects by the
thousand, and the collections their allocation would trigger scan every object of the process
again and again, for nothing (actor state and records have no reference cycles: reference
counting frees them). What a complete load restored is then frozen (``gc.freeze``) into the
permanent generation, where later collections skip it: the engine keeps it for its whole life.

Recovery (``recover``) loads the newest valid snapshot, replays the write-ahead log after it
through the actors (waking those it concerns), and returns them with their live timers, which
the runtime re-arms (a timer that came due while the engine was down fires once, at restart),
and with the sends to hand to the outbox again (pending at the snapshot, or produced by the
replay).
"""

from __future__ import annotations

import ctypes
import gc
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from itertools import islice, repeat
from pathlib import Path
from typing import Any, NamedTuple

import msgpack
import msgspec

from actors.actor import Actor
from actors.codec import (
    Chunk,
    actor_from,
    actors_of,
    encode_chunk,
    read_chunk,
    rewrite_chunk,
    send_record,
    to_chunk,
)
from actors.errors import StorageError
from actors.journey import Program
from actors.messages import Schedule, Send, TimerFired
from actors.profile import Profile
from engine.runtime.identities import Aliases, apply_message
from engine.storage.wal import WriteAheadLog, fsync_directory

FORMAT = 3  # 1: one record per actor (before chunks); 2: chunks not framed, records not apart
CHUNK = 10_000  # actors packed per write


class SnapshotStatistics:
    """What the periodic and final snapshots did, for ``/metrics``."""

    def __init__(self) -> None:
        self.written = 0
        self.failed = 0
        self.last_written_at: float | None = None  # Unix time
        self.last_error: str | None = None

    def succeeded(self) -> None:
        self.written += 1
        self.last_written_at = time.time()
        self.last_error = None

    def failure(self, error: str) -> None:
        self.failed += 1
        self.last_error = error
        print(f"snapshot failed, the older snapshot and the log are kept: {error}", file=sys.stderr,
              flush=True)


class Dormant:
    """Actors restored from a snapshot and not needed since: each one's raw record, with its
    chunk, turned into an actor on first use (``wake``). A chunk is let go once all of its
    actors are awake."""

    def __init__(self) -> None:
        self.records: dict[str, tuple[Chunk, Any]] = {}  # customer id -> (chunk, raw record)
        self.chunks: dict[Chunk, int] = {}  # -> how many of its actors are still dormant

    def __len__(self) -> int:
        return len(self.records)

    def __contains__(self, customer_id: object) -> bool:
        return customer_id in self.records

    def add(self, chunk: Chunk) -> None:
        """Take a chunk's actors in, dormant."""
        self.chunks[chunk] = len(chunk)
        entries = zip(repeat(chunk), chunk.records, strict=False)  # (pairs made in C, no loop)
        self.records.update(zip(chunk.ids, entries, strict=True))

    def wake(self, customer_id: str) -> Actor | None:
        """The actor of ``customer_id``, no longer dormant (None: it is not here)."""
        entry = self.records.pop(customer_id, None)
        if entry is None:
            return None
        chunk, raw = entry
        left = self.chunks[chunk] - 1
        if left:
            self.chunks[chunk] = left
        else:
            del self.chunks[chunk]
        return actor_from(chunk, customer_id, raw)

    def wake_all(self) -> dict[str, Actor]:
        """Every dormant actor, by customer id (none stays dormant)."""
        actors: dict[str, Actor] = {}
        for chunk, left in self.chunks.items():
            if left == len(chunk):  # (the usual case, as for ``export``: all of it in one go)
                actors.update(actors_of(chunk))
        for customer_id, (chunk, raw) in self.records.items():
            if customer_id not in actors:
                actors[customer_id] = actor_from(chunk, customer_id, raw)
        self.records.clear()
        self.chunks.clear()
        return actors

    def live_timers(self) -> list[tuple[float, int, str, TimerFired]]:
        """The live timers of the dormant actors, as ``(due_at, priority, customer_id, fired)``
        for ``TimerQueue.push_many``. Equal ``TimerFired`` messages are one object (they are
        frozen): a million timers of a few journey versions make a few messages."""
        records, items = self.records, []
        messages: dict[tuple[str, int], TimerFired] = {}
        for chunk in self.chunks:
            ids, journeys, by_id = chunk.ids, chunk.journeys, chunk.program.by_id
            priorities = [by_id[journey].priority for journey in journeys]
            actor_at, journey_at, versions, due = chunk.timer_columns()
            for position, journey, version, at in zip(actor_at, journey_at, versions, due, strict=True):
                customer_id = ids[position]
                if customer_id in records:
                    fired = messages.get((journeys[journey], version))
                    if fired is None:
                        fired = messages[journeys[journey], version] = TimerFired(journeys[journey], version)
                    items.append((at, priorities[journey], customer_id, fired))
        return items

    def chunks_to_write(self) -> Iterator[tuple[Any, ...]]:
        """The dormant actors as chunks: their records and columns as they were read, or, from
        a chunk that less than half of is still dormant, made into actors and packed anew (a
        rewritten chunk carries all of its columns, so a few records must not keep a whole
        chunk's worth alive). They stay dormant here either way."""
        records, sparse = self.records, []
        for chunk in self.chunks:
            keep = []
            for position, customer_id in enumerate(chunk.ids):
                entry = records.get(customer_id)
                if entry is not None and entry[0] is chunk:
                    keep.append(position)
            if 2 * len(keep) >= len(chunk):
                yield rewrite_chunk(chunk, keep)
            else:
                sparse.extend(actor_from(chunk, chunk.ids[i], chunk.records[i]) for i in keep)
        for start in range(0, len(sparse), CHUNK):
            yield to_chunk(sparse[start : start + CHUNK])


class Snapshot(NamedTuple):
    """A loaded snapshot: its actors, woken (``actors``) or left dormant (``dormant``)."""

    lsn: int
    actors: dict[str, Actor]
    seen: dict[str, float]
    pending: list[Send]
    aliases: dict[str, str]
    dormant: Dormant


class Recovered(NamedTuple):
    """What ``recover`` rebuilds from a data folder."""

    actors: dict[str, Actor]
    timers: list[tuple[str, Schedule]]
    log: WriteAheadLog
    seen: dict[str, float]
    resend: list[Send]
    aliases: dict[str, str]
    dormant: Dormant


def write_snapshot(
    directory: Path,
    lsn: int,
    actors: Iterable[Actor],
    seen: dict[str, float] | None = None,
    pending: Iterable[Send] = (),
    aliases: dict[str, str] | None = None,
    dormant: Dormant | None = None,
) -> Path:
    """Write every actor's state (``actors`` and the ``dormant`` ones), the message ids applied
    lately (id -> when), the sends not yet settled and the merged ids (source -> target), as of
    log position ``lsn``; return the snapshot's path.

    Raises:
        StorageError: the snapshot could not be written (a full disk, a file size limit, an I/O
            error: chained to the ``OSError``). Its temporary file is gone; the older snapshots
            and the log are as they were.
    """
    final = directory / f"snap-{lsn:016d}.msgpack"
    temporary = directory / f".{final.name}.{os.getpid()}.tmp"  # (a process's own: see fork_snapshot)
    placed = False
    try:
        directory.mkdir(parents=True, exist_ok=True)
        header = {"format": FORMAT, "lsn": lsn, "seen": seen or {},
                  "pending": [send_record(send) for send in pending], "aliases": aliases or {}}
        _write_snapshot_file(temporary, header, actors, dormant)
        os.replace(temporary, final)
        placed = True
        fsync_directory(directory)
    except BaseException as exc:
        left = _remove_temporary(temporary)
        if not isinstance(exc, OSError):
            raise
        if placed:  # complete and fsynced, in place of none or of one of the same position
            raise StorageError(f"{final}: snapshot written, but its folder could not be synced ({exc}): "
                               "a crash may lose it; the log is kept") from exc
        raise StorageError(f"{final}: snapshot not written ({exc}){left}; the older snapshots and "
                           "the log are kept") from exc
    return final


def _write_snapshot_file(
    path: Path, header: dict[str, Any], actors: Iterable[Actor], dormant: Dormant | None
) -> None:
    """Write the snapshot's header, its chunks and its trailer to ``path``, and fsync it."""
    pack = msgspec.msgpack.Encoder().encode
    remaining = iter(actors)
    count = 0
    with open(path, "wb") as file, collector_paused():
        file.write(pack(header))
        while chunk := list(islice(remaining, CHUNK)):
            file.write(pack(encode_chunk(to_chunk(chunk))))  # (framed: one bin a chunk)
            count += len(chunk)
        for kept in dormant.chunks_to_write() if dormant is not None else ():
            file.write(pack(encode_chunk(kept)))
            count += len(kept[1])
        file.write(pack({"end": count}))
        file.flush()
        os.fsync(file.fileno())


def _remove_temporary(path: Path) -> str:
    """Remove a failed snapshot's temporary file; return what kept it, for the error message."""
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        return f" (and {path.name} could not be removed: {exc})"
    return ""


def fork_snapshot(
    directory: Path,
    lsn: int,
    actors: Iterable[Actor],
    seen: Callable[[], dict[str, float]],
    pending: Iterable[Send],
    aliases: dict[str, str],
    dormant: Dormant | None = None,
) -> int:
    """Write a snapshot (as ``write_snapshot``) from a forked child process; return its pid.

    The child sees the state as it was at the fork, kept for it by copy-on-write, so the caller
    goes on changing its own at once: the engine pauses for the fork (tens of milliseconds at a
    million actors), not for the write (seconds). The price is memory: the pages the child
    touches while it writes (reading an object writes its reference count) are copied, up to the
    size of the state. ``seen`` (the message ids to keep) is worked out in the child too.

    Wait for the child with ``os.waitpid``: it exits 0 once the snapshot is in place, 1 if the
    write failed. It closes the files and sockets it inherited (a connection the parent closes
    is closed at once), dies with its parent (Linux), so a killed engine leaves no writer behind,
    and writes its own temporary file, so it cannot collide with a restarted engine's.
    """
    parent = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    status = 1
    try:  # the child: nothing of the parent's event loop, threads or files is used here
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # the parent's sockets close when it says
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent's Ctrl+C is the parent's
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if sys.platform == "linux":
            ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == parent:  # (else the parent died before the line above)
            write_snapshot(directory, lsn, actors, seen(), pending, aliases, dormant)
            status = 0
    except BaseException as exc:  # told on stderr: the parent sees the exit status only
        os.write(2, f"snapshot writer: {exc!r}\n".encode())
    finally:
        os._exit(status)


def load_latest(directory: Path, program: Program, wake: bool = True) -> Snapshot:
    """The newest complete snapshot (an empty one at position 0 if there is none), its actors
    woken, or, with ``wake=False``, left dormant (for a runtime to wake as messages come).

    What it restores is left frozen (``gc.freeze``): later collections do not scan it.

    Raises:
        StorageError: the newest complete snapshot is of a format this engine does not read.
    """
    for path in sorted(directory.glob("snap-*.msgpack"), reverse=True):
        loaded = _load(path, program, wake)
        if loaded is not None:
            return loaded
    return Snapshot(0, {}, {}, [], {}, Dormant())


def _load(path: Path, program: Program, wake: bool) -> Snapshot | None:
    with collector_paused():
        loaded = _read(path, program)
        if loaded is not None and wake:
            loaded.actors.update(loaded.dormant.wake_all())
        if loaded is not None:
            gc.freeze()
        return loaded


@contextmanager
def collector_paused() -> Iterator[None]:
    """Turn the cyclic garbage collector off for the block (if it was on: on again after)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def _read(path: Path, program: Program) -> Snapshot | None:
    dormant = Dormant()
    try:
        with open(path, "rb") as file:
            # max_buffer_size=0: up to 2 GiB, for a chunk of actors however large their state
            values = msgpack.Unpacker(file, raw=False, use_list=False, strict_map_key=False,
                                      read_size=1 << 20, max_buffer_size=0)
            header = next(values)
            if not isinstance(header, dict):
                return None
            if header.get("format") != FORMAT:
                raise StorageError(
                    f"{path}: snapshot format {header.get('format')!r}, this engine reads {FORMAT}; "
                    "restore it with the version that wrote it, or move it away to start from an "
                    "older snapshot"
                )
            for value in values:
                if isinstance(value, dict):
                    if value.get("end") != len(dormant):
                        return None
                    pending = [Send(*fields) for fields in header.get("pending", [])]
                    return Snapshot(header["lsn"], {}, dict(header.get("seen", {})), pending,
                                    dict(header.get("aliases", {})), dormant)
                dormant.add(read_chunk(value, program))
    except (ValueError, StopIteration, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
        return None
    return None  # no trailer: the file was cut short


def recover(
    data: Path,
    program: Program,
    profiles: Callable[[str], Profile] = Profile,
    fsync: str = "batch",
    wake: bool = True,
) -> Recovered:
    """Rebuild the engine's state from ``data``: the newest snapshot plus the log after it.

    ``fsync`` is the policy of the reopened log (see ``engine.storage.wal``). With ``wake=False``, the
    actors the log does not concern are left dormant (``Recovered.dormant``), their timers
    with them (``Dormant.live_timers``).

    Returns:
        The actors by id, their live timers ``(customer_id, schedule)`` to re-arm, the open log
        ready for appends, the client message ids applied (id -> when), and the sends to hand
        to the outbox again: those pending at the snapshot and those the replay produced. They
        may have gone out before the crash; their idempotency keys make a second try harmless
        at a provider that honours keys, and forgetting them is not an option. And the merged
        ids (source -> target), which the runtime keeps routing.
    """
    snapshot = load_latest(data / "snapshots", program, wake)
    actors, seen, resend = snapshot.actors, snapshot.seen, list(snapshot.pending)
    aliases = Aliases(snapshot.aliases)
    log = WriteAheadLog(data / "wal", fsync=fsync)

    def new_actor(customer_id: str) -> Actor:
        return Actor(program, profiles(customer_id))

    for _, at, customer_id, message, message_id in log.replay(after=snapshot.lsn):
        if message_id is not None:
            seen[message_id] = at
        # the pure core rebuilds the state, routed as the runtime routed it; of the effects only
        # the sends matter again
        _, effects = apply_message(actors, aliases, new_actor, customer_id, message, at,
                                   snapshot.dormant.wake)
        resend.extend(e for e in effects if isinstance(e, Send))
    timers = [(cid, timer) for cid, actor in actors.items() for timer in actor.live_timers()]
    return Recovered(actors, timers, log, seen, resend, aliases.of, snapshot.dormant)

