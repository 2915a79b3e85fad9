"""Storage faults: a write that fails leaves nothing half-written, and the log works again after.

The real faults come from a file size limit (``RLIMIT_FSIZE``) set in a child process: a write
past it fails with EFBIG (Python ignores SIGXFSZ), after a short write when a frame straddles
the limit, which is the torn write a full disk makes. Where the machine lets a test mount a
small tmpfs, a full disk is tried for real too. What no limit can make (an fsync that fails, a
cut-back that fails) is made by replacing one ``os`` call for the length of one append.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from harness import ROOT, T0, load_program, log_records, make_actor

from actors.messages import Event
from engine.storage import snapshots
from engine.storage.errors import StorageError
from engine.storage.snapshots import load_latest, write_snapshot
from engine.storage.wal import WriteAheadLog

LIMIT = 4096  # bytes a file may grow to in the child

WAL_UNDER_A_SIZE_LIMIT = """
import json, random, resource, sys
from pathlib import Path
from actors.messages import Event
from engine.storage.errors import StorageError
from engine.storage.wal import Logged, WriteAheadLog

directory, limit, segment_bytes = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(7)
log = WriteAheadLog(directory, segment_bytes=segment_bytes)
outcomes = []

def sizes():
    return [path.stat().st_size for path in log.segments()]

def attempt(number):
    entries = [(float(number), f"c{number}", Event("cart_add", {"note": "x" * rng.randrange(600)}))
               for _ in range(rng.randrange(1, 4))]
    before = sizes()
    outcome = {"number": number, "entries": len(entries), "before": before}
    try:
        outcome["lsn"] = log.append([Logged(*entry) for entry in entries])
    except StorageError as exc:
        outcome.update(message=str(exc), errno=exc.__cause__.errno, after=sizes())
    outcomes.append(outcome)

_, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
for number in range(60):
    attempt(number)
resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))  # room again
for number in range(60, 80):
    attempt(number)
log.close()
print(json.dumps(outcomes))
"""

SNAPSHOT_UNDER_A_SIZE_LIMIT = """
import json, resource, sys
from pathlib import Path
from engine.storage.errors import StorageError
from engine.storage.snapshots import write_snapshot

directory, limit = Path(sys.argv[1]), int(sys.argv[2])
_, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
try:
    write_snapshot(directory, 4, [], seen={f"message-{i}": float(i) for i in range(5000)})
except StorageError as exc:
    print(json.dumps({"message": str(exc), "errno": exc.__cause__.errno}))
"""


def run_limited(script: str, *args: object) -> object:
    """Run ``script`` in a child process (which sets its own file size limit); its JSON output."""
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    if hard != resource.RLIM_INFINITY and hard < 1 << 20:
        pytest.skip(f"the hard file size limit ({hard} bytes) leaves no room to lift the soft one")
    done = subprocess.run([sys.executable, "-c", script, *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def batch(n: int, start: float = T0) -> list[tuple[float, str, Event]]:
    return [(start + i, f"c{i % 7}", Event("cart_add", {"value": i})) for i in range(n)]


def logged(directory: Path) -> list[tuple[int, float]]:
    """``(lsn, at)`` of every entry, read back as a restart reads them."""
    return [(lsn, at) for lsn, at, *_ in WriteAheadLog(directory).replay()]


def numbered(*batches: list[tuple[float, str, Event]]) -> list[tuple[int, float]]:
    return list(enumerate((at for entries in batches for at, *_ in entries), 1))


@contextmanager
def failing(monkeypatch: pytest.MonkeyPatch, name: str, code: int, times: int = 1,
            after: int = 0) -> Iterator[None]:
    """``os.<name>`` fails ``times`` times with ``code`` after ``after`` calls that work, inside
    the block."""
    real, calls = getattr(os, name), iter(range(1 << 30))

    def call(*args: object) -> object:
        if after <= next(calls) < after + times:
            raise OSError(code, os.strerror(code))
        return real(*args)

    with monkeypatch.context() as patch:
        patch.setattr(os, name, call)
        yield


@contextmanager
def short_writes(monkeypatch: pytest.MonkeyPatch, then: int | None) -> Iterator[None]:
    """The first ``os.write`` in the block writes half of its bytes; the next fails with ``then``
    (or works, if None)."""
    real, calls = os.write, iter(range(1 << 30))

    def write(fd: int, data: bytes) -> int:
        call = next(calls)
        if call == 0:
            return real(fd, bytes(data[: len(data) // 2]))
        if call == 1 and then is not None:
            raise OSError(then, os.strerror(then))
        return real(fd, data)

    with monkeypatch.context() as patch:
        patch.setattr(os, "write", write)
        yield


def total_size(log: WriteAheadLog) -> int:
    return sum(path.stat().st_size for path in log.segments())


@pytest.mark.parametrize("segment_bytes", [64 << 20, 3500], ids=["one segment", "segments roll"])
def test_a_size_limit_fails_appends_whole_and_the_log_reads_every_acknowledged_batch(
    tmp_path, segment_bytes
):
    outcomes = run_limited(WAL_UNDER_A_SIZE_LIMIT, tmp_path, LIMIT, segment_bytes)
    acknowledged = [o for o in outcomes if "lsn" in o]
    failed = [o for o in outcomes if "lsn" not in o]
    assert failed and all(o["number"] < 60 for o in failed)  # the limit bit, and only under it
    assert all("lsn" in o for o in outcomes if o["number"] >= 60)  # room again: appends work
    for o in failed:
        assert o["errno"] == errno.EFBIG and o["message"] == (
            "write-ahead log: [Errno 27] File too large; the batch was not logged")
        assert sum(o["after"]) == sum(o["before"])  # nothing of it left behind
    if segment_bytes > LIMIT:  # a frame straddled the limit: a short write, then EFBIG
        assert any(o["before"][-1] < LIMIT for o in failed)
    # a restart reads every acknowledged batch, in order, numbered on, and none of the failed
    entries = logged(tmp_path)
    expected = [float(o["number"]) for o in acknowledged for _ in range(o["entries"])]
    assert entries == list(enumerate(expected, 1))
    ends = [sum(o["entries"] for o in acknowledged[: i + 1]) for i in range(len(acknowledged))]
    assert [o["lsn"] for o in acknowledged] == ends


@pytest.fixture
def small_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs, where the machine lets this process mount one (else the test is skipped)."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)],
                                 capture_output=True, timeout=10, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        mounted = False
    if not mounted:
        pytest.skip("cannot mount a tmpfs here (the size limit tests cover the same paths)")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "--lazy", str(mount_point)], check=True, timeout=10)


def test_a_full_disk_fails_appends_whole_and_the_log_goes_on_once_there_is_room(small_filesystem):
    filler = small_filesystem / "filler"
    filler.write_bytes(bytes(128 << 10))
    log = WriteAheadLog(small_filesystem / "wal", segment_bytes=48 << 10)
    acknowledged, refusals = [], []
    for number in range(1000):
        entries = batch(1 + number % 50, T0 + 100 * number)
        try:
            log.append(log_records(entries))
            acknowledged.append(entries)
        except StorageError as exc:
            refusals.append(exc)
            if len(refusals) == 5:
                break
    assert len(refusals) == 5 and str(refusals[0]) == (
        "write-ahead log: [Errno 28] No space left on device; the batch was not logged")
    filler.unlink()  # room again
    for number in range(1000, 1020):
        entries = batch(3, T0 + 100 * number)
        log.append(log_records(entries))
        acknowledged.append(entries)
    log.close()
    assert logged(small_filesystem / "wal") == numbered(*acknowledged)


def test_a_failed_fsync_fails_the_append_and_cuts_its_batch_off(tmp_path, monkeypatch):
    log = WriteAheadLog(tmp_path)
    first, lost, second = batch(3), batch(2, T0 + 10), batch(2, T0 + 20)
    log.append(log_records(first))
    size = total_size(log)
    with failing(monkeypatch, "fsync", errno.EIO), pytest.raises(StorageError) as caught:
        log.append(log_records(lost))
    assert str(caught.value) == "write-ahead log: [Errno 5] Input/output error; the batch was not logged"
    assert isinstance(caught.value.__cause__, OSError) and caught.value.__cause__.errno == errno.EIO
    assert (log.next_lsn, total_size(log)) == (4, size)  # its bytes were written, then cut off
    assert log.append(log_records(second)) == 5
    log.close()
    assert logged(tmp_path) == numbered(first, second)


def test_a_short_write_then_an_error_leaves_no_torn_frame_before_the_next(tmp_path, monkeypatch):
    log = WriteAheadLog(tmp_path)
    first, lost, second = batch(3), batch(4, T0 + 10), batch(2, T0 + 20)
    log.append(log_records(first))
    size = total_size(log)
    with short_writes(monkeypatch, then=errno.ENOSPC), pytest.raises(StorageError) as caught:
        log.append(log_records(lost))
    assert str(caught.value) == (
        "write-ahead log: [Errno 28] No space left on device; the batch was not logged")
    assert caught.value.__cause__.errno == errno.ENOSPC
    assert (log.next_lsn, total_size(log)) == (4, size)
    log.append(log_records(second))
    log.close()
    assert logged(tmp_path) == numbered(first, second)


def test_a_short_write_that_the_disk_then_takes_whole_is_completed(tmp_path, monkeypatch):
    log = WriteAheadLog(tmp_path)
    with short_writes(monkeypatch, then=None):
        assert log.append(log_records(batch(5))) == 5
    log.close()
    assert logged(tmp_path) == numbered(batch(5))


def test_a_failed_cut_back_is_done_before_the_next_append(tmp_path, monkeypatch):
    log = WriteAheadLog(tmp_path)
    first, lost, refused, second = batch(3), batch(4, T0 + 10), batch(1, T0 + 20), batch(2, T0 + 30)
    log.append(log_records(first))
    size = total_size(log)
    with short_writes(monkeypatch, then=errno.ENOSPC), failing(monkeypatch, "ftruncate", errno.EIO):
        with pytest.raises(StorageError, match=rf"could not be cut back to byte {size} ") as caught:
            log.append(log_records(lost))
    assert caught.value.__cause__.errno == errno.ENOSPC  # the reason the batch failed
    assert total_size(log) > size  # half a frame is still there
    with failing(monkeypatch, "ftruncate", errno.EIO), pytest.raises(StorageError, match="after a failed"):
        log.append(log_records(refused))  # it still cannot be cut back: nothing is written after it
    assert log.next_lsn == 4
    assert log.append(log_records(second)) == 5  # cut back first, then written
    log.close()
    assert logged(tmp_path) == numbered(first, second)


def test_a_new_segment_the_folder_cannot_keep_fails_the_append_and_is_tried_again(tmp_path, monkeypatch):
    log = WriteAheadLog(tmp_path, segment_bytes=1)  # every append starts a segment
    first, lost, second = batch(3), batch(2, T0 + 10), batch(2, T0 + 20)
    log.append(log_records(first))
    with failing(monkeypatch, "fsync", errno.EIO), pytest.raises(StorageError, match=r"\[Errno 5\]"):
        log.append(log_records(lost))  # (the first fsync is the folder's, for the new segment)
    assert log.append(log_records(second)) == 5
    log.close()
    assert logged(tmp_path) == numbered(first, second)


def test_a_snapshot_past_a_size_limit_fails_and_leaves_the_older_one(tmp_path):
    program = load_program()
    write_snapshot(tmp_path, 3, [make_actor(program, "ada")])
    failure = run_limited(SNAPSHOT_UNDER_A_SIZE_LIMIT, tmp_path, LIMIT)
    assert failure["errno"] == errno.EFBIG
    assert failure["message"].startswith(f"{tmp_path / f'snap-{4:016d}.msgpack'}: snapshot not written (")
    assert sorted(path.name for path in tmp_path.iterdir()) == [f"snap-{3:016d}.msgpack"]
    loaded = load_latest(tmp_path, program)
    assert (loaded.lsn, list(loaded.actors)) == (3, ["ada"])


@pytest.mark.parametrize("call", ["fsync", "replace"])
def test_a_snapshot_that_cannot_be_written_leaves_no_temporary_file(tmp_path, monkeypatch, call):
    program = load_program()
    write_snapshot(tmp_path, 3, [make_actor(program, "ada")])
    with failing(monkeypatch, call, errno.ENOSPC), pytest.raises(StorageError) as caught:
        write_snapshot(tmp_path, 4, [make_actor(program, "bo")])
    assert str(caught.value).startswith(f"{tmp_path / f'snap-{4:016d}.msgpack'}: snapshot not written")
    assert caught.value.__cause__.errno == errno.ENOSPC
    assert sorted(path.name for path in tmp_path.iterdir()) == [f"snap-{3:016d}.msgpack"]
    assert load_latest(tmp_path, program).lsn == 3


def test_a_snapshot_whose_folder_cannot_be_synced_is_reported_and_kept_complete(tmp_path, monkeypatch):
    program = load_program()
    with failing(monkeypatch, "fsync", errno.EIO, after=1), pytest.raises(StorageError) as caught:
        write_snapshot(tmp_path, 4, [make_actor(program, "bo")])  # (the second fsync: the folder's)
    assert "snapshot written, but its folder could not be synced" in str(caught.value)
    assert not list(tmp_path.glob(".*.tmp")) and load_latest(tmp_path, program).lsn == 4


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork_snapshot needs os.fork")
def test_a_forked_writer_on_a_failing_disk_exits_1_and_says_why(tmp_path, monkeypatch, capfd):
    program = load_program()
    write_snapshot(tmp_path, 3, [make_actor(program, "ada")])
    with failing(monkeypatch, "fsync", errno.ENOSPC, times=1 << 20):  # (the child inherits it)
        pid = snapshots.fork_snapshot(tmp_path, 4, [make_actor(program, "bo")], dict, [], {})
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 1
    assert "snapshot writer: StorageError(" in capfd.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == [f"snap-{3:016d}.msgpack"]
    assert load_latest(tmp_path, program).lsn == 3
