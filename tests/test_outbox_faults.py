"""The outbox under faults: a half-open breaker lets exactly one trial through, a provider's
unexpected exception is contained (cancellation is not), memory stays bounded, and a full disk
is counted, not raised."""

from __future__ import annotations

import errno
import os
from collections import Counter

import anyio
import pytest
import trio
import trio.testing
from harness import Refusing, dead_letters_at_restart, run_outbox, sends, settled_at_restart
from prometheus_client import generate_latest

from actors.errors import ProviderError
from actors.messages import Send
from engine.delivery.outbox import Outbox
from engine.delivery.pacing import Admission, BreakerState, CircuitBreaker
from engine.delivery.providers import MockProvider
from engine.edge.monitoring import registry_for
from engine.runtime.realtime import RealtimeRuntime
from engine.storage.outbox_files import DeadLetterFile, SettledLog


class Recovering:
    """Fails its first ``failing`` calls, then accepts; each call takes a second. Notes when each
    call starts and how many are in flight then."""

    def __init__(self, failing: int) -> None:
        self.failing = failing
        self.calls = 0
        self.in_flight = 0
        self.starts: list[tuple[float, int]] = []

    async def send(self, send: Send) -> None:
        self.calls += 1
        call, self.in_flight = self.calls, self.in_flight + 1
        self.starts.append((round(trio.current_time(), 6), self.in_flight))
        try:
            await trio.sleep(1.0)
            if call <= self.failing:
                raise ProviderError("down")
        finally:
            self.in_flight -= 1


def test_a_half_open_breaker_lets_exactly_one_trial_through_among_many_workers():
    provider = Recovering(failing=9)  # the 8 first calls, and the first trial
    outbox = Outbox({"email": provider}, workers=8, max_attempts=5, base_delay=0.01,
                    breaker_failures=3, breaker_reset=30.0, seed=1)
    run_outbox(outbox, sends(8))
    # t=0: 8 calls; t=1: they fail, the breaker opens; t=31: one trial, which fails at 32: open
    # for another 30 s; t=62: one trial, which succeeds at 63: closed, the 7 others go at once
    assert [at for at, _ in provider.starts] == [0.0] * 8 + [31.0, 62.0] + [63.0] * 7
    assert [flying for at, flying in provider.starts if 0.0 < at < 63.0] == [1, 1]
    assert outbox.delivered == 8 and not outbox.dead_letters and provider.calls == 17
    assert outbox.breakers["email"].state is BreakerState.CLOSED


def test_a_trial_cut_short_or_failing_unexpectedly_passes_its_turn_on():
    breaker = CircuitBreaker(failures=1, reset=10.0)
    admitted: list[tuple[float, Admission]] = []

    async def call(hang: bool = False, raising: BaseException | None = None) -> None:
        async with breaker.admitted() as admission:
            admitted.append((trio.current_time(), admission))
            if hang:
                await trio.sleep_forever()
            if raising is not None:
                raise raising

    async def hanging_trial(task_status: trio.TaskStatus[trio.CancelScope]) -> None:
        with trio.CancelScope() as scope:
            task_status.started(scope)
            await call(hang=True)

    async def main() -> None:
        breaker.record(Admission.CALL, False, trio.current_time())  # open at 0
        async with trio.open_nursery() as nursery:
            trial = await nursery.start(hanging_trial)
            await trio.sleep(11.0)  # the trial went at 10, and hangs
            nursery.start_soon(call)  # waits for the trial's outcome
            await trio.sleep(5.0)
            assert admitted == [(10.0, Admission.TRIAL)] and breaker.state is BreakerState.HALF_OPEN
            trial.cancel()  # at 16: the waiting caller is the next trial, at once, and succeeds
        assert admitted[1:] == [(16.0, Admission.TRIAL)] and breaker.state is BreakerState.CLOSED

        breaker.record(Admission.CALL, False, trio.current_time())  # open again at 16
        with pytest.raises(KeyError):
            await call(raising=KeyError("bug"))  # the trial at 26 fails unexpectedly: no outcome
        assert breaker.state is BreakerState.OPEN and admitted[-1] == (26.0, Admission.TRIAL)
        assert breaker.admit_nowait(trio.current_time()) is Admission.TRIAL  # the next, at once

        breaker.abandon(Admission.TRIAL)
        with pytest.raises(ProviderError):
            await call(raising=ProviderError("down"))  # a trial that fails: another reset
        assert breaker.state is BreakerState.OPEN and breaker.opened_at == 26.0
        with pytest.raises(anyio.WouldBlock):
            breaker.admit_nowait(35.9)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_outcomes_of_calls_admitted_before_the_breaker_opened_change_nothing():
    breaker = CircuitBreaker(failures=2, reset=10.0)
    first, second, third = (breaker.admit_nowait(0.0) for _ in range(3))  # all closed: calls
    breaker.record(first, False, 1.0)
    breaker.record(second, False, 1.0)
    assert breaker.state is BreakerState.OPEN and breaker.opened_at == 1.0
    breaker.record(third, True, 2.0)  # late news from before: the trial decides, not it
    assert breaker.state is BreakerState.OPEN and breaker.opened_at == 1.0
    assert breaker.admit_nowait(11.0) is Admission.TRIAL and breaker.state is BreakerState.HALF_OPEN


def test_an_unexpected_exception_from_a_provider_is_retried_then_dead_lettered():
    class Buggy:
        calls = 0
        tries: Counter[str] = Counter()

        async def send(self, send: Send) -> None:
            Buggy.calls += 1
            Buggy.tries[send.customer] += 1
            if send.customer == "c0" or Buggy.tries["c1"] == 1:  # c1's second try works
                raise KeyError("address")

    outbox = Outbox({"email": Buggy()}, workers=1, max_attempts=3, base_delay=0.01,
                    breaker_failures=100, seed=1)
    run_outbox(outbox, sends(2))  # the service would have died here
    assert Buggy.calls == 3 + 2 and outbox.delivered == 1 and not outbox.pending
    assert [(s.customer, why) for s, why in outbox.dead_letters] == [("c0", "KeyError: 'address'")]


def test_a_cancellation_inside_a_provider_call_is_never_turned_into_a_failure():
    class Hanging:
        calls = 0

        async def send(self, send: Send) -> None:
            Hanging.calls += 1
            await trio.sleep_forever()

    outbox = Outbox({"email": Hanging()}, breaker_failures=1, seed=1)

    async def main() -> None:
        outbox.deliver_nowait("c0", sends(1)[0], 0.0)
        with trio.move_on_after(5.0) as scope:
            await outbox.run()
        assert scope.cancelled_caught and trio.current_time() == 5.0  # cancelled at once

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert Hanging.calls == 1 and not outbox.dead_letters and outbox.delivered == 0
    assert list(outbox.pending) == [sends(1)[0].key]
    assert outbox.breakers["email"].state is BreakerState.CLOSED  # no outcome, no failure


def test_the_mock_provider_remembers_its_latest_keys_only():
    receipts: list[str] = []
    provider = MockProvider(record_limit=3, receipts=lambda customer, _: receipts.append(customer))
    items = sends(5)

    async def main() -> None:
        for item in items + [items[4], items[0]]:  # c4 is remembered, c0 forgotten
            await provider.send(item)

    trio.run(main)
    assert list(provider.delivered) == [s.key for s in items[2:]][1:] + [items[0].key]
    assert provider.dropped == 3 and receipts == ["c0", "c1", "c2", "c3", "c4", "c0"]
    with pytest.raises(ValueError, match="record_limit=-1"):
        MockProvider(record_limit=-1)


def test_dead_letters_keep_the_latest_in_memory_and_count_them_all(tmp_path):
    path = tmp_path / "dead-letters.jsonl"
    letters = DeadLetterFile(path)
    outbox = Outbox({"email": Refusing(True)}, dead_letter_file=letters, memory_limit=2, seed=1)
    run_outbox(outbox, sends(4))
    letters.close()
    assert [s.customer for s, _ in outbox.dead_letters] == ["c2", "c3"]
    stats = outbox.statistics()
    assert (stats.dead_letters, stats.dead_letters_dropped_from_memory) == (4, 2)
    assert len(dead_letters_at_restart(path)) == 4  # the file keeps them all

    letters = DeadLetterFile(path)
    again = Outbox({"email": MockProvider()}, dead_letter_file=letters, memory_limit=3)
    letters.close()  # (read as the outbox starts)
    assert [s.customer for s, _ in again.dead_letters] == ["c1", "c2", "c3"]
    assert again.statistics().dead_letters == 4 and again.statistics().dead_letters_dropped_from_memory == 1


def failing_writes_to(target: SettledLog | DeadLetterFile, monkeypatch: pytest.MonkeyPatch,
                      partial: int = 0) -> None:
    """From now on, writes to ``target``'s file take ``partial`` bytes, then fail: a full disk."""
    real_write = os.write
    room = {"bytes": partial}

    def write(fd: int, data: bytes) -> int:
        if fd != target._fd:  # (the file's descriptor: os.write is what every write goes through)
            return real_write(fd, data)
        if room["bytes"] > 0:
            written = real_write(fd, data[: room["bytes"]])
            room["bytes"] -= written
            return written
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", write)


def test_a_failed_write_is_counted_and_leaves_nothing_to_be_written_later(tmp_path, monkeypatch, capsys):
    path = tmp_path / "settled.log"
    log = SettledLog(path)
    assert log.record("a:1")
    with monkeypatch.context() as patch:
        failing_writes_to(log, patch, partial=3)
        assert not log.record("b:1") and not log.record("c:1")  # torn, then nothing
    assert log.record("d:1") and log.write_failures == 2
    log.close()
    assert path.read_text() == '"a:1"\n"b:\n"d:1"\n'  # the torn line stays alone
    assert settled_at_restart(path) == {"a:1", "d:1"}  # b and c go out again, same keys
    assert capsys.readouterr().err.count("cannot write") == 1  # once per failing spell

    with open(path, "a") as file:
        file.write('"e:')  # torn by a crash
    reopened = SettledLog(path)
    reopened.record("f:1")  # starts on a line of its own
    reopened.close()
    assert settled_at_restart(path) == {"a:1", "d:1", "f:1"}


def test_a_full_disk_does_not_stop_the_outbox_and_shows_in_the_metrics(tmp_path, monkeypatch, cart_program):
    settled = SettledLog(tmp_path / "settled.log")
    letters = DeadLetterFile(tmp_path / "dead-letters.jsonl")
    provider = MockProvider()
    outbox = Outbox({"email": provider, "sms": Refusing(True)}, settled_log=settled,
                    dead_letter_file=letters, seed=1)
    failing_writes_to(settled, monkeypatch)
    run_outbox(outbox, sends(3) + sends(2, "sms"))
    monkeypatch.undo()
    assert outbox.delivered == 3 and len(outbox.dead_letters) == 2 and not outbox.pending
    assert settled.write_failures == 5 and letters.write_failures == 0
    failing_writes_to(letters, monkeypatch)
    run_outbox(Outbox({"sms": Refusing(True)}, settled_log=settled, dead_letter_file=letters,
                      seed=1), sends(1, "sms"))
    monkeypatch.undo()
    assert letters.write_failures == 1 and settled.write_failures == 5  # not recorded as settled
    outbox.receipts_refused = 1

    text = generate_latest(registry_for(RealtimeRuntime(cart_program, outbox))).decode()
    for line in (
        'touchpoint_storage_write_failures_total{file="settled_log"} 5.0',
        'touchpoint_storage_write_failures_total{file="dead_letters"} 1.0',
        "touchpoint_dead_letters 2.0",
        "touchpoint_dead_letters_dropped_from_memory 0.0",
        'touchpoint_mock_sends_forgotten_total{channel="email"} 0.0',
        f'touchpoint_mock_calls_total{{channel="email"}} {float(provider.calls)}',
        "touchpoint_dedupe_ids 0.0",
        "touchpoint_deliveries_total 3.0",
        "touchpoint_send_attempts_total 5.0",
        "touchpoint_receipts_refused_total 1.0",
    ):
        assert line in text.splitlines(), line
    settled.close()
    letters.close()
