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

import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Literal, NamedTuple

import msgspec

from actors.errors import IngestError
from engine.edge.segment import (
    EARLIEST,
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    MAX_CALL_BYTES,
    BatchSizes,
    Call,
    Stamp,
    decode_body,
    iso_time,
    to_messages,
    within,
)
from engine.runtime.replay import Record

MAX_LINE_BYTES = MAX_BATCH_BYTES  # a line holds at most one batch body
BLOCK_BYTES = 1 << 20  # read at a time
# the edge's limit on a call, and room for what a log adds to it (receivedAt, an export's own fields)
MAX_LOGGED_CALL_BYTES = MAX_CALL_BYTES + 4096
LATEST = 4_102_444_800.0  # 2100-01-01T00:00:00Z: a call's time from then on is a broken clock
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


class Shard(NamedTuple):
    """Shard ``number`` of ``of`` of a log's customers: a call is this shard's when the CRC-32 of
    its customer's identity is ``number`` modulo ``of``. The identity is the call's ``userId``,
    else its ``anonymousId``, else its ``previousId``, as ``links`` resolves it: ids an identify
    or an alias joins anywhere in the log share one (``identity_links``), so a merge finds both
    histories in one shard."""

    number: int
    of: int
    links: dict[str, str]

    def owns(self, call: Call) -> bool:
        identity = call.userId or call.anonymousId or call.previousId or ""
        identity = self.links.get(identity, identity)
        return zlib.crc32(identity.encode()) % self.of == self.number


def identity_links(stream: BinaryIO) -> dict[str, str]:
    """The ids some identify (with both ids) or alias of the log joins, each to one of its group:
    a pass over the log that decodes only the lines naming two ids (malformed ones are left for
    the replay to report)."""
    parent: dict[str, str] = {}

    def root(identity: str) -> str:
        while parent.get(identity, identity) != identity:
            parent[identity] = parent.get(parent[identity], parent[identity])  # (halving the path)
            identity = parent[identity]
        return identity

    for raw in _naming_two_ids(stream):
        if not ((b'"anonymousId"' in raw and b'"userId"' in raw) or b'"previousId"' in raw):
            continue
        try:
            line: Line = decode_body(_line, raw, "line")
        except IngestError:
            continue
        for call in line.batch if line.batch is not None else [line]:
            other = {"identify": call.anonymousId, "alias": call.previousId}.get(call.type or "")
            if call.userId and other:
                a, b = root(call.userId), root(other)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    return {identity: root(identity) for identity in parent}


def _naming_two_ids(stream: BinaryIO) -> Iterator[bytes]:
    """The lines of the blocks of ``stream`` that name an ``anonymousId`` or a ``previousId``
    (most logs of known customers have few: their blocks are skipped unsplit)."""
    rest, overlong = b"", False
    while block := stream.read(BLOCK_BYTES):
        cut = block.rfind(b"\n") + 1  # (the block's whole lines end there; the rest waits)
        if not cut:
            rest += block
            if len(rest) > MAX_LINE_BYTES:
                rest, overlong = b"", True  # (an overlong line: the replay reports it)
            continue
        whole, rest = rest + block[:cut], block[cut:]
        if overlong:  # (its end: the first line here)
            whole, overlong = whole.split(b"\n", 1)[1], False
        if b'"anonymousId"' in whole or b'"previousId"' in whole:
            yield from whole.split(b"\n")
    if not overlong:
        yield rest


class SegmentLog:
    """Read ``stream`` (a binary file) as records, in the file's order.

    Args:
        stream: the log, opened in binary mode.
        on_error: ``skip`` a malformed line (kept in ``errors``, counted in ``malformed``) or
            ``refuse`` it (``LogError`` is raised).
        shard: read only the calls of this shard's customers (``Shard``); a malformed line is
            then reported by one shard only: a call's faults by the shard of its customer, the
            line's own (bad JSON, too long, a bad batch) by shard 0.

    Attributes:
        lines: lines read so far; ``calls``: calls taken; ``bytes_read``: for a progress bar.
    """

    def __init__(self, stream: BinaryIO, on_error: OnError = "skip", shard: Shard | None = None) -> None:
        self.stream = stream
        self.on_error = on_error
        self.shard = shard
        self.reports_lines = shard is None or shard.number == 0  # (a line's own faults: one reports)
        self.lines = 0
        self.calls = 0
        self.malformed = 0
        self.errors: list[LogError] = []
        self.bytes_read = 0

    def __iter__(self) -> Iterator[Record]:
        # (the hot loop of a replay: a line of one call, the common case, is taken here, without
        # a list made and unpacked for it)
        shard, reports_lines = self.shard, self.reports_lines
        for raw in self._lines():
            self.lines += 1
            if raw is None:
                if reports_lines:
                    self._malformed(f"longer than {MAX_LINE_BYTES:,} bytes")
                continue
            if not raw or raw.isspace():
                continue
            try:
                line: Line = decode_body(_line, raw, "line")
                if line.batch is not None:
                    _batch_limits(raw)
                elif len(raw) > MAX_LOGGED_CALL_BYTES:
                    raise IngestError(f"call of {len(raw):,} bytes; the limit is {MAX_LOGGED_CALL_BYTES:,}",
                                      field="line")
            except IngestError as exc:
                if reports_lines:
                    self._malformed(str(exc))
                continue
            if line.batch is None:  # one call
                if shard is not None and not shard.owns(line):
                    continue  # (another shard's customer: that shard reads and checks the call)
                try:
                    if not line.type:
                        raise IngestError("a logged call needs its type (track, identify, ...)", field="type")
                    record = _record(line)
                except IngestError as exc:
                    self._malformed(str(exc))
                    continue
                self.calls += 1
                yield record
                continue
            try:
                records = self._batch(line)
            except IngestError as exc:
                if reports_lines:
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

    def _batch(self, line: Line) -> list[Record]:
        """The records of a batch's calls (of this shard's customers)."""
        assert line.batch is not None
        shard, records = self.shard, []
        for i, call in enumerate(line.batch):
            call.sentAt = call.sentAt or line.sentAt
            call.receivedAt = call.receivedAt or line.receivedAt
            try:
                record = _record(call)  # (each shard checks the whole batch: taken or skipped whole)
            except IngestError as exc:
                raise within(exc, f"batch[{i}]") from None
            if shard is None or shard.owns(call):
                records.append(record)
        return records

    def _malformed(self, reason: str) -> None:
        error = LogError(self.lines, reason)
        if self.on_error == "refuse":
            raise error
        self.malformed += 1
        if len(self.errors) < KEPT_ERRORS:
            self.errors.append(error)


_sizes = msgspec.json.Decoder(BatchSizes)


def _batch_limits(raw: bytes) -> None:
    """The edge's limits of a batch: how many calls, and each one's size.

    Raises:
        IngestError: one is exceeded.
    """
    calls = decode_body(_sizes, raw, "line").batch
    if len(calls) > MAX_BATCH_EVENTS:
        raise IngestError(f"{len(calls):,} events; the limit is {MAX_BATCH_EVENTS:,}", field="batch")
    for i, call in enumerate(calls):
        if len(call) > MAX_LOGGED_CALL_BYTES:
            raise IngestError(f"{len(call):,} bytes; the limit is {MAX_LOGGED_CALL_BYTES:,}",
                              field=f"batch[{i}]")


def _record(call: LoggedCall) -> Record:
    """A call's record: its arrival time and the edge's messages for it."""
    if call.receivedAt:
        received, field = iso_time(call.receivedAt, "receivedAt"), "receivedAt"
    else:
        # no arrival kept: the call's time stands for it, Segment's ``timestamp`` (corrected
        # already) or the client's own; the edge then reads no other (it takes the arrival's)
        field = "timestamp" if call.timestamp else "originalTimestamp"
        text = call.timestamp or call.originalTimestamp
        if not text:
            raise IngestError("a logged call needs a time (receivedAt, timestamp or originalTimestamp)",
                              field="timestamp")
        received = iso_time(text, field)
        call.timestamp = call.sentAt = call.originalTimestamp = None
    if not EARLIEST <= received < LATEST:
        raise IngestError(f"{received:.0f} s since 1970 is outside the years 2000 to 2099", field=field)
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

    def lines(self, calls: list[Call], received_at: float) -> bytes:
        """The archive's lines of ``calls`` received at ``received_at``: to take before the edge
        turns them into messages (it adds the corrected ``timestamp`` to their properties)."""
        stamp = b',"receivedAt":"' + datetime.fromtimestamp(received_at, UTC).isoformat(
            timespec="microseconds").replace("+00:00", "Z").encode() + b'"}\n'
        lines = []
        for call in calls:
            call.writeKey = None
            raw = _encode(call)
            lines.append(raw[:-1] + (stamp if len(raw) > 2 else stamp[1:]))
        return b"".join(lines)

    def write(self, lines: bytes) -> None:
        """Append ``lines`` (``lines``'s): the calls were applied."""
        self.file.write(lines)
        self.file.flush()
        self.calls += lines.count(b"\n")

    def close(self) -> None:
        self.file.close()


_encode = msgspec.json.Encoder().encode
