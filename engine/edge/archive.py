"""A recorded Segment log, read for replay: one call per line, or one ``/v1/batch`` body per line,
as Segment's archives and warehouse exports hold them (newline-delimited JSON). ``Archive``
writes one: the calls the service accepted (``touchpoint serve --archive``).

Each call is validated and turned into messages by the very edge the service ingests with
(``engine.edge.segment``), so a replay sees what the service would have seen. Its time is the
service's arrival time: the call's ``receivedAt`` (or its line's, for a batch) when the log kept
it, else its ``timestamp``, else its ``originalTimestamp``; a call with none of them cannot be
placed in time and is malformed. A track call's event time is corrected from them as the edge
corrects it.

The file is read a block at a time (memory stays bounded whatever its size); a line longer than
``MAX_LINE_BYTES`` is not held whole. A malformed line (bad JSON, a call the edge would refuse,
no time) is reported by its number and, as the caller chooses, skipped or refused
(``LogError``): never silently dropped. A batch line is taken or skipped whole, as the edge takes
or refuses a whole batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Literal

import msgspec

from actors.errors import IngestError
from engine.edge.segment import MAX_BATCH_BYTES, Call, Stamp, decode_body, iso_time, to_messages, within
from engine.runtime.replay import Record

MAX_LINE_BYTES = MAX_BATCH_BYTES  # a line holds at most one batch body
BLOCK_BYTES = 1 << 20  # read at a time
KEPT_ERRORS = 100  # malformed lines kept with their reasons (all are counted)
OnError = Literal["skip", "refuse"]


class LoggedCall(Call, omit_defaults=True, gc=False):
    """A call as a log holds it: the edge's ``Call`` with the time Segment received it."""

    receivedAt: Stamp | None = None  # noqa: N815 (Segment's names)


class Line(LoggedCall, omit_defaults=True, gc=False):
    """A line: one call, or a batch body (``batch`` set; its ``sentAt`` and ``receivedAt`` are
    its calls' when they have none of their own)."""

    batch: list[LoggedCall] | None = None


_line = msgspec.json.Decoder(Line)


class LogError(Exception):
    """A malformed line of the log, by its number (from 1)."""

    def __init__(self, number: int, reason: str) -> None:
        self.number = number
        self.reason = reason
        super().__init__(f"line {number:,}: {reason}")


class SegmentLog:
    """Read ``stream`` (a binary file) as records, in the file's order.

    Args:
        stream: the log, opened in binary mode.
        on_error: ``skip`` a malformed line (kept in ``errors``, counted in ``malformed``) or
            ``refuse`` it (``LogError`` is raised).

    Attributes:
        lines: lines read so far; ``calls``: calls taken; ``bytes_read``: for a progress bar.
    """

    def __init__(self, stream: BinaryIO, on_error: OnError = "skip") -> None:
        self.stream = stream
        self.on_error = on_error
        self.lines = 0
        self.calls = 0
        self.malformed = 0
        self.errors: list[LogError] = []
        self.bytes_read = 0

    def __iter__(self) -> Iterator[Record]:
        for raw in self._lines():
            self.lines += 1
            if raw is None:
                self._malformed(f"longer than {MAX_LINE_BYTES:,} bytes")
                continue
            if not raw or raw.isspace():
                continue
            try:
                records = self._records(raw)
            except IngestError as exc:
                self._malformed(str(exc))
                continue
            self.calls += len(records)
            yield from records

    def _lines(self) -> Iterator[bytes | None]:
        """The file's lines, each without its newline, or None for one longer than
        ``MAX_LINE_BYTES`` (never held whole): read a block at a time and split in C."""
        read, rest, overlong = self.stream.read, b"", False
        while block := read(BLOCK_BYTES):
            self.bytes_read += len(block)
            lines = block.split(b"\n")
            if overlong:  # (the first piece ends the overlong line, if a newline came)
                if len(lines) == 1:
                    continue
                lines[0], overlong = b"", False
                yield None
                del lines[0]
            else:
                lines[0] = rest + lines[0]
            rest = lines.pop()
            if len(rest) > MAX_LINE_BYTES:
                rest, overlong = b"", True
            for line in lines:
                yield line if len(line) <= MAX_LINE_BYTES else None
        if overlong or rest:
            yield None if overlong else rest

    def _records(self, raw: bytes) -> list[Record]:
        line: Line = decode_body(_line, raw, "line")
        if line.batch is None:
            if not line.type:
                raise IngestError("a logged call needs its type (track, identify, ...)", field="type")
            return [_record(line)]
        records = []
        for i, call in enumerate(line.batch):
            call.sentAt = call.sentAt or line.sentAt
            call.receivedAt = call.receivedAt or line.receivedAt
            try:
                records.append(_record(call))
            except IngestError as exc:
                raise within(exc, f"batch[{i}]") from None
        return records

    def _malformed(self, reason: str) -> None:
        error = LogError(self.lines, reason)
        if self.on_error == "refuse":
            raise error
        self.malformed += 1
        if len(self.errors) < KEPT_ERRORS:
            self.errors.append(error)


def _record(call: LoggedCall) -> Record:
    """A call's record: its arrival time and the edge's messages for it."""
    if call.receivedAt:
        received = iso_time(call.receivedAt, "receivedAt")
    elif call.timestamp:
        received = iso_time(call.timestamp, "timestamp")
        if not call.sentAt:  # (the edge would read the same time again: it takes the arrival's)
            call.timestamp = None
    elif call.originalTimestamp:
        received = iso_time(call.originalTimestamp, "originalTimestamp")
    else:
        raise IngestError("a logged call needs a time (receivedAt, timestamp or originalTimestamp)",
                          field="timestamp")
    return received, to_messages([call], received)


class Archive:
    """Every call the service accepts, appended to ``path`` as a JSON line with the time the
    service received it (``receivedAt``), without its write key: the log ``SegmentLog`` reads,
    so a new design can be replayed over what the service saw. The edge validated the calls, and
    an archived call holds what the edge reads of it (``engine.edge.segment.Call``); replay makes
    the same messages of it, at the same times. Appended once the calls are in the write-ahead
    log, and not synced to disk: the log is the engine's truth, the archive its history.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = path.open("ab")
        self.calls = 0

    def __call__(self, calls: list[Call], received_at: float) -> None:
        stamp = b',"receivedAt":"' + datetime.fromtimestamp(received_at, UTC).isoformat(
            timespec="microseconds").replace("+00:00", "Z").encode() + b'"}\n'
        lines = []
        for call in calls:
            call.writeKey = None
            raw = _encode(call)
            lines.append(raw[:-1] + (stamp if len(raw) > 2 else stamp[1:]))
        self.file.write(b"".join(lines))
        self.file.flush()
        self.calls += len(calls)

    def close(self) -> None:
        self.file.close()


_encode = msgspec.json.Encoder().encode
