"""Snapshots: the file format of every actor's state, written atomically, read back for recovery.

A snapshot file is a stream of MessagePack values: a header ``{"format", "lsn", "seen", "pending",
"aliases", "metrics"}`` (message ids applied lately, sends not yet settled, merged ids, the
running journey statistics as ``reports.metrics.RunMetrics.state`` gives them; a snapshot
without ``metrics`` restores them at zero), the actors in chunks
of up to ``CHUNK`` (``actors.codec``), each framed as one bin, and a trailer ``{"end": count}``.
It is written to a temporary file, fsynced, renamed into place and the folder fsynced, so a
crash leaves either the old snapshots or the new one complete; ``fork_snapshot`` writes it from
a forked child, so the engine pauses for the fork and not for the write. A file without its
trailer (or that fails to parse) is skipped for the next older one; a file of another format
stops the load with a ``StorageError`` (skipping it would quietly restore older state, and the
log before it may be gone).

Both directions are built for a million actors. Writing packs each chunk with msgspec (twice as
fast as msgpack, the same bytes) and writes it in one call; reading streams the chunks back with
``msgpack.Unpacker`` into the dormant store (``dormant.py``), which keeps each actor as its raw
record until a message wakes it. Both run with the cyclic garbage collector off
(``collector_paused``): chunks and actors are container objects by the thousand, and the
collections their allocation would trigger scan every object of the process again and again, for
nothing (actor state and records have no reference cycles: reference counting frees them). What
a complete load restored is then frozen (``gc.freeze``) into the permanent generation, where
later collections skip it: the engine keeps it for its whole life. Recovery, the snapshot plus
the log after it, is ``recovery.py``.
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
from itertools import islice
from pathlib import Path
from typing import Any, NamedTuple

import msgpack
import msgspec

from actors.actor import Actor
from actors.codec import encode_chunk, read_chunk, send_record, to_chunk
from actors.journey import Program
from actors.messages import Send
from engine.storage.dormant import Dormant
from engine.storage.errors import StorageError
from engine.storage.wal import fsync_directory

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


class Snapshot(NamedTuple):
    """A loaded snapshot: its actors, woken (``actors``) or left dormant (``dormant``)."""

    lsn: int
    actors: dict[str, Actor]
    seen: dict[str, float]
    pending: list[Send]
    aliases: dict[str, str]
    dormant: Dormant
    metrics: dict[str, Any]


def write_snapshot(
    directory: Path,
    lsn: int,
    actors: Iterable[Actor],
    seen: dict[str, float] | None = None,
    pending: Iterable[Send] = (),
    aliases: dict[str, str] | None = None,
    dormant: Dormant | None = None,
    metrics: dict[str, Any] | None = None,
) -> Path:
    """Write every actor's state (``actors`` and the ``dormant`` ones), the message ids applied
    lately (id -> when), the sends not yet settled, the merged ids (source -> target) and the
    running statistics (plain data), as of log position ``lsn``; return the snapshot's path.

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
                  "pending": [send_record(send) for send in pending], "aliases": aliases or {},
                  "metrics": metrics or {}}
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
        for kept in dormant.chunks_to_write(CHUNK) if dormant is not None else ():
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
    metrics: Callable[[], dict[str, Any]] | None = None,
) -> int:
    """Write a snapshot (as ``write_snapshot``) from a forked child process; return its pid.

    The child sees the state as it was at the fork, kept for it by copy-on-write, so the caller
    goes on changing its own at once: the engine pauses for the fork (tens of milliseconds at a
    million actors), not for the write (seconds). The price is memory: the pages the child
    touches while it writes (reading an object writes its reference count) are copied, up to the
    size of the state. ``seen`` (the message ids to keep) and ``metrics`` (the statistics) are
    worked out in the child too.

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
            write_snapshot(directory, lsn, actors, seen(), pending, aliases, dormant,
                           None if metrics is None else metrics())
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
    return Snapshot(0, {}, {}, [], {}, Dormant(), {})


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


def _thawed(value: Any) -> Any:
    """Plain data as written: the reader gives tuples for lists (``use_list=False``, which the
    actor chunks want); the statistics want lists back."""
    if isinstance(value, dict):
        return {key: _thawed(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [_thawed(item) for item in value]
    return value


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
                                    dict(header.get("aliases", {})), dormant,
                                    _thawed(header.get("metrics", {})))
                dormant.add(read_chunk(value, program))
    except (ValueError, StopIteration, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
        return None
    return None  # no trailer: the file was cut short
