"""The outbox's files, which outlive the process: the keys of the sends settled since the last
snapshot (``SettledLog``) and the sends given up on (``DeadLetterFile``).

Both are JSON lines written unbuffered the moment something settles: a killed process loses no
line, a line torn by a crash or a full disk is skipped when read, and a write that fails is
counted (``write_failures``), never raised into an outbox worker. What a lost line costs is
bounded by design: a settled key lost means that send goes out again after a restart, under its
idempotency key; a dead letter lost from the file stays in memory.
"""

from __future__ import annotations

import errno
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from actors.codec import send_record
from actors.messages import Send


class _JsonLines:
    """An append-only file of JSON values, one a line, each written at once (not fsynced).

    A killed process loses no line: the kernel has them. A power cut may lose the last ones, and
    a line torn by a crash mid-write is skipped when read: both files below are built so that a
    lost line costs at most a repeat under the same idempotency key, or a missing list entry.

    Writes go straight to the file descriptor, unbuffered: a write that fails (a full disk)
    leaves nothing behind to be written later, at most a torn line, and the next write starts on
    a fresh line. A failed write is counted in ``write_failures`` and reported once on stderr
    until a write succeeds again; it is never raised.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.write_failures = 0
        self._open()

    def _open(self) -> None:
        """Open ``path`` to append (after a line torn by a crash, the next write starts afresh)."""
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._torn = _ends_mid_line(self.path)

    def read(self) -> Iterator[Any]:
        """Every whole line's value, oldest first."""
        return _JsonLines.read_file(self.path)

    @staticmethod
    def read_file(path: Path) -> Iterator[Any]:
        """Every whole line's value in ``path``, oldest first, read one line at a time."""
        with open(path, encoding="utf-8", errors="replace") as file:
            for line in file:
                try:
                    yield json.loads(line)
                except ValueError:
                    continue  # torn by a crash mid-write, or an empty line after a failed write

    def write(self, value: Any) -> bool:
        """Append one value; return False (and count it) when the write failed."""
        line = ("\n" if self._torn else "") + json.dumps(value) + "\n"
        data = memoryview(line.encode("utf-8"))
        try:
            while data:  # (a full disk may take part of it, then refuse the rest)
                written = os.write(self._fd, data)
                if not written:
                    raise OSError(errno.EIO, "the file took no byte")
                data = data[written:]
        except OSError as exc:
            if not self._torn:
                print(f"{self.path}: cannot write ({exc}); counting failed writes in "
                      "touchpoint_storage_write_failures", file=sys.stderr, flush=True)
            self.write_failures += 1
            self._torn = True  # a part may be there: the next write starts a fresh line
            return False
        self._torn = False
        return True

    def close(self) -> None:
        """Close the file."""
        os.close(self._fd)


def _ends_mid_line(path: Path) -> bool:
    """Whether the file at ``path`` ends without a line break (a line torn by a crash)."""
    with open(path, "rb") as file:
        if file.seek(0, os.SEEK_END) == 0:
            return False
        file.seek(-1, os.SEEK_END)
        return file.read(1) != b"\n"


class SettledLog(_JsonLines):
    """The idempotency keys of the sends settled since the last snapshot, one JSON string a line
    (``["recalled", key]`` for a send recalled from the outbox: settled, and counted again after
    a crash, since no snapshot holds its count: ``recalled_before``).

    Each key is written the moment its send settles; a key lost to a power cut or a failed write
    only means that send goes out again under its key. While a snapshot is being written in the
    background, the keys settled before it started wait in a second file (``<path>.prev``) until
    it is in place (``rotate``, ``drop_rotated``); a restart reads both.

    Args:
        path: the file (created if missing); the keys already in it, and in ``<path>.prev``,
            are ``settled_before``.
    """

    def __init__(self, path: Path) -> None:
        self.previous = path.with_name(path.name + ".prev")
        if self.previous.exists():  # a background snapshot did not finish: its keys still count
            self._append_to_previous(path)
        super().__init__(path)
        before = list(self.read()) + (list(_JsonLines.read_file(self.previous))
                                      if self.previous.exists() else [])
        self.recalled_before = [entry[1] for entry in before if isinstance(entry, list)
                                and len(entry) == 2 and entry[0] == "recalled" and isinstance(entry[1], str)]
        self.settled_before = {key for key in before if isinstance(key, str)} | set(self.recalled_before)

    def record(self, key: str, recalled: bool = False) -> bool:
        """Remember that the send with this key is settled (``recalled``: cancelled in the
        outbox); False when the write failed."""
        return self.write(["recalled", key] if recalled else key)

    def restart(self) -> None:
        """Forget every key: call once a snapshot holds the state (its pending sends included)."""
        os.ftruncate(self._fd, 0)
        self._torn = False
        self.previous.unlink(missing_ok=True)

    def rotate(self) -> None:
        """Set the keys settled so far aside, as a background snapshot starts: keys from now on
        go to a fresh file. The snapshot's pending sends are exactly those not set aside."""
        os.close(self._fd)
        try:
            self._append_to_previous(self.path)
        finally:  # (keys keep being recorded, whatever became of the set-aside ones)
            self._open()

    def drop_rotated(self) -> None:
        """Forget the keys set aside: the background snapshot is in place."""
        self.previous.unlink(missing_ok=True)

    def _append_to_previous(self, path: Path) -> None:
        if not path.exists():
            return
        if self.previous.exists():  # an older background snapshot failed: keep adding
            with open(self.previous, "a", encoding="utf-8") as previous:  # (after a line break:
                previous.write("\n" + path.read_text(encoding="utf-8"))  # a torn line stays alone)
            path.unlink()
        else:
            path.rename(self.previous)


class DeadLetter(NamedTuple):
    """A send given up on, and why (the last error)."""

    send: Send
    reason: str


class DeadLetterFile(_JsonLines):
    """The sends given up on, kept across restarts: one JSON object a line, ``{"send", "error"}``.

    The file only grows: it is the operator's list of what did not go out, to act on and then
    archive or delete.

    Args:
        path: the file (created if missing).
    """

    def load(self) -> Iterator[DeadLetter]:
        """The sends given up on so far, oldest first, read one line at a time."""
        for entry in self.read():
            try:
                yield DeadLetter(Send(*entry["send"]), str(entry["error"]))
            except (KeyError, TypeError):
                continue  # not one of ours

    def record(self, send: Send, reason: str) -> bool:
        """Keep a send given up on, with the reason; False when the write failed."""
        return self.write({"send": send_record(send), "error": reason})
