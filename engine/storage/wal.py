"""The write-ahead log: every accepted message, CRC-framed MessagePack, group-committed.

A frame is ``length (u32) | crc32 (u32) | payload``, one frame per batch, the payload
``[first_lsn, [[at, customer_id, message, message_id], ...]]`` in MessagePack (msgspec): every
message an actor is handed (events, receipts, and the timers that fired), with the time it was
handed over and the client's message id if it had one, so replaying the log through the pure core
rebuilds exactly the state the engine had, and the ids already applied. Entries are numbered from
``first_lsn`` on, one number each.

``append`` encodes a whole batch in one call and writes it with one write and, under the default
``fsync="batch"`` policy, one fsync: group commit, so a batch is durable before it is acknowledged
and the cost of framing, checksumming and fsync is shared by every message in it (REFERENCE.md
section 8: 5k fsyncs a second, 181k records a second at 100 per fsync). A batch is therefore
all-or-nothing: a crash while it is written leaves a torn tail, and none of it was acknowledged.

The log is a folder of segments named by their first sequence number. Opening it scans the last
segment: a torn tail (the last frame cut short or garbled by a crash mid-write) is truncated;
a bad frame with good data after it, or in an older segment, is corruption, and opening stops
with a ``StorageError`` naming the file and offset.

A failed append leaves nothing behind. ``append`` writes without Python's buffering (whose
leftover bytes would go out later, after the next frame: good data after a bad frame) and goes
on after a short write; on any ``OSError`` (a full disk, a file size limit, an I/O error) it cuts
the segment back to where the batch began, fsyncs, and raises a ``StorageError`` chained to the
``OSError``: the batch was not logged, its sequence numbers are given again, and once the fault
is gone the next append works. A failed fsync is a failed append too: after one, the kernel may
have dropped the batch's dirty pages and marked them clean (a later fsync then reports success
without writing them), so the batch cannot count as durable, and it must not be replayed after a
restart either, since it was never acknowledged. If the cut-back fails as well (the disk may be
failing), the log remembers where its last batch ends and cuts back there before the next
append, which raises if it still cannot: a frame is never written after garbage.
"""

from __future__ import annotations

import errno
import os
import struct
import zlib
from collections.abc import Iterator, Sequence
from io import FileIO
from pathlib import Path
from typing import NamedTuple

import msgspec

from actors.messages import Message
from engine.storage.errors import StorageError

FRAME = struct.Struct("<II")
FSYNC_POLICIES = ("batch", "none")


class Logged(msgspec.Struct, array_like=True, gc=False):
    """One message to log, as ``[at, customer_id, message, message_id]`` on disk: a submission
    (``actors.messages.Submission``) with the time it was handed to its actor.

    (Built with its fields named, ``Logged(now, s.customer_id, s.message, s.message_id)``, it
    costs 78 ns against 97 ns for the tuple ``(now, *s)`` it replaced, and encodes to the same
    bytes.)
    """

    at: float
    customer_id: str
    message: Message
    message_id: str | None = None


class LogEntry(NamedTuple):
    """A logged message as replay gives it back, with its sequence number."""

    lsn: int
    at: float
    customer_id: str
    message: Message
    message_id: str | None


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(tuple[int, list[Logged]])


class WriteAheadLog:
    """An append-only log of accepted messages in ``directory``.

    Args:
        directory: the log's folder (created if missing).
        fsync: ``batch`` (one fsync per ``append``: durable when it returns) or ``none``
            (the OS decides; for benchmarks and throwaway runs).
        segment_bytes: start a new segment file past this size.

    Raises:
        StorageError: a segment is corrupted before its end.
    """

    def __init__(self, directory: Path, *, fsync: str = "batch", segment_bytes: int = 64 << 20) -> None:
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync={fsync!r}: expected one of {FSYNC_POLICIES}")
        self.directory = directory
        self.fsync = fsync
        self.segment_bytes = segment_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self.next_lsn = 1
        segments = self.segments()
        for path in segments[:-1]:
            for first, logged, _ in _scan(path, last=False):  # checks every older segment too
                self.next_lsn = first + len(logged)
        self._file: FileIO | None = None  # the newest segment (it owns ``_fd``)
        self._fd = -1
        self._end = 0  # where the newest segment's last logged batch ends
        self._torn = False  # a failed append may have left bytes past ``_end``: cut them first
        if segments:
            last = segments[-1]
            good_end = 0
            for first, logged, end in _scan(last, last=True):
                self.next_lsn, good_end = first + len(logged), end
            if good_end < last.stat().st_size:
                with open(last, "r+b") as file:  # a torn tail from a crash: cut it off
                    file.truncate(good_end)
                    os.fsync(file.fileno())
            self._open(last, new=False)

    def segments(self) -> list[Path]:
        """The segment files, oldest first."""
        return sorted(self.directory.glob("wal-*.log"))

    def append(self, entries: Sequence[Logged]) -> int:
        """Log a batch of messages; return the last sequence number given.

        With ``fsync="batch"`` the batch is on disk when this returns. It is all or nothing.

        Raises:
            StorageError: the batch was not logged (chained to the ``OSError``: a full disk, a
                file size limit, an I/O error); nothing of it is left in the log, and the next
                append may work once the fault is gone.
        """
        if not entries:
            return self.next_lsn - 1
        frame = encode_frame(self.next_lsn, entries)
        if self._torn:
            self._cut_back(None)
        try:
            if self._file is None or self._end >= self.segment_bytes:
                self._roll()
            written = os.write(self._fd, frame)
            if written < len(frame):
                self._write_rest(frame, written)
            if self.fsync == "batch":
                os.fsync(self._fd)
        except OSError as exc:
            self._cut_back(exc)
            raise StorageError(f"write-ahead log: {exc}; the batch was not logged") from exc
        except BaseException:  # (interrupted mid-write: the next append cuts back first)
            self._torn = True
            raise
        self._end += len(frame)
        self.next_lsn += len(entries)
        return self.next_lsn - 1

    def replay(self, after: int = 0) -> Iterator[LogEntry]:
        """Every logged entry with a sequence number above ``after``, in order."""
        segments = self.segments()
        for index, path in enumerate(segments):
            for entry in _read(path, last=index == len(segments) - 1):
                if entry.lsn > after:
                    yield entry

    def drop_through(self, lsn: int) -> None:
        """Delete the segments whose entries are all at or below ``lsn`` (a snapshot has them)."""
        segments = self.segments()
        for path, following in zip(segments, segments[1:], strict=False):
            if _first_lsn(following) - 1 <= lsn:
                path.unlink()

    def close(self) -> None:
        """Fsync and close the newest segment (cut back first if a failed append left bytes)."""
        if self._file is not None:
            try:
                if self._torn:
                    self._cut_back(None)
                os.fsync(self._fd)
            finally:
                self._file.close()
                self._file = None

    def _open(self, path: Path, *, new: bool) -> None:
        """Make ``path`` the newest segment, appended to from its end without Python's buffering
        (see ``append``); a ``new`` one is made durable in the folder first."""
        file = open(path, "ab", buffering=0)
        try:
            if new:
                fsync_directory(self.directory)
            end = os.fstat(file.fileno()).st_size
        except OSError:
            file.close()  # (the current segment stays: the next append tries again)
            raise
        old, self._file, self._fd, self._end = self._file, file, file.fileno(), end
        if old is not None:
            old.close()

    def _roll(self) -> None:
        """Start a new segment, named by the next sequence number."""
        self._open(self.directory / f"wal-{self.next_lsn:016d}.log", new=True)

    def _write_rest(self, frame: bytes, written: int) -> None:
        """Write what a short write left of ``frame``: the next write says why it was short."""
        rest = memoryview(frame)[written:]
        while rest:
            count = os.write(self._fd, rest)
            if not count:
                raise OSError(errno.EIO, "the segment took no more bytes")
            rest = rest[count:]

    def _cut_back(self, cause: OSError | None) -> None:
        """Cut the newest segment back to its last logged batch, so nothing of a failed append
        is left before the next one; ``cause`` is the failure of this append, if it failed.

        Raises:
            StorageError: the cut-back failed; the next append tries it again first.
        """
        if self._file is None:
            return
        try:
            os.ftruncate(self._fd, self._end)
            os.fsync(self._fd)
        except OSError as failed:
            self._torn = True
            where = f"{Path(self._file.name).name} could not be cut back to byte {self._end} ({failed})"
            if cause is None:
                raise StorageError(f"write-ahead log: {where} after a failed append; the batch was "
                                   "not logged") from failed
            raise StorageError(f"write-ahead log: {cause}; the batch was not logged, and {where}: "
                               "the next append cuts it back first") from cause
        self._torn = False


def encode_frame(lsn: int, entries: Sequence[Logged]) -> bytes:
    """A batch as one frame: its length and CRC, then ``(first position, entries)`` in MessagePack
    (a ``Logged`` encodes as an array)."""
    payload = _encoder.encode((lsn, entries))
    return FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def _first_lsn(path: Path) -> int:
    return int(path.stem.split("-")[1])


def _read(path: Path, *, last: bool) -> Iterator[LogEntry]:
    for first, logged, _ in _scan(path, last=last):
        for lsn, entry in enumerate(logged, first):
            yield LogEntry(lsn, entry.at, entry.customer_id, entry.message, entry.message_id)


def _scan(path: Path, *, last: bool) -> Iterator[tuple[int, list[Logged], int]]:
    """The batches of one segment ``(first_lsn, entries, offset after it)``; stops at a torn tail
    of the last segment."""
    data = path.read_bytes()
    offset, size = 0, len(data)
    while offset < size:
        header_end = offset + FRAME.size
        if header_end > size:
            _check_torn(path, offset, last)
            return
        length, crc = FRAME.unpack_from(data, offset)
        end = header_end + length
        if end > size:
            _check_torn(path, offset, last)
            return
        payload = data[header_end:end]
        if zlib.crc32(payload) != crc:
            if end == size:  # the very last frame, garbled as it was written
                _check_torn(path, offset, last)
                return
            raise StorageError(
                f"{path}: corrupted batch at byte {offset} with data after it; restore the data "
                "directory from a backup, or move this file aside to start from the snapshot"
            )
        first, logged = _decoder.decode(payload)
        yield first, logged, end
        offset = end


def _check_torn(path: Path, offset: int, last: bool) -> None:
    """A cut-short frame is a torn tail in the newest segment, and corruption anywhere else."""
    if not last:
        raise StorageError(f"{path}: cut short at byte {offset}, but it is not the newest segment")


def fsync_directory(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
