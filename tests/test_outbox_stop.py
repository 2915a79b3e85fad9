"""``Outbox.stop(grace)``: run() returns in bounded time, calls in flight may finish within the
grace, every send not settled stays pending (for the final snapshot) and nothing is
dead-lettered, delivered or logged as settled because of the stop."""

from __future__ import annotations

from collections.abc import Callable

import trio
import trio.testing
from harness import Refusing, dead_letters_at_restart, sends, settled_at_restart

from actors.errors import ProviderError
from actors.messages import Send
from engine.delivery.outbox import Outbox
from engine.delivery.providers import MockProvider
from engine.storage.outbox_files import DeadLetterFile, SettledLog


class Slow:
    """Each call takes ``latency`` seconds, then accepts (or fails, retryably, when ``failing``)."""

    def __init__(self, latency: float, failing: bool = False) -> None:
        self.latency = latency
        self.failing = failing
        self.calls: list[str] = []
        self.finished: list[str] = []

    async def send(self, send: Send) -> None:
        self.calls.append(send.key)
        await trio.sleep(self.latency)
        self.finished.append(send.key)
        if self.failing:
            raise ProviderError("failed after a while")


class Busy:
    """Asks to be called again in 1,000 seconds."""

    calls = 0

    async def send(self, send: Send) -> None:
        Busy.calls += 1
        raise ProviderError("busy", retry_after=1000.0)


def stop_after(outbox: Outbox, items: list[Send], at: float, grace: float,
               then: Callable[[], None] = lambda: None) -> float:
    """Hand ``items`` over, ``stop(grace)`` at ``at`` and call ``then``; return when run() ended."""
    ended = {}

    async def main() -> None:
        async def running() -> None:
            await outbox.run()
            ended["at"] = trio.current_time()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(running)
            for item in items:
                outbox.deliver_nowait(item.customer, item, 0.0)
            await trio.sleep(at)
            outbox.stop(grace)
            then()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return ended["at"]


def test_a_stop_keeps_queued_backing_off_and_cut_sends_pending_and_lets_calls_finish(tmp_path):
    email = Slow(5.0)  # in flight at the stop: finishes within the grace
    push = Slow(100.0)  # in flight at the stop: cut when the grace runs out
    in_app = Slow(5.0, failing=True)  # fails within the grace: its retry is not waited for
    settled = SettledLog(tmp_path / "settled.log")
    letters = DeadLetterFile(tmp_path / "dead-letters.jsonl")
    outbox = Outbox({"email": email, "sms": Busy(), "push": push, "in_app": in_app}, workers=2,
                    breaker_failures=100, settled_log=settled, dead_letter_file=letters, seed=1)
    items = sends(5) + sends(1, "sms") + sends(2, "push") + sends(1, "in_app")
    late = Send("c9", "j", 1, "email", "email", "m", "c9:j:1:email:1")
    ended = stop_after(
        outbox, items, at=1.0, grace=10.0, then=lambda: outbox.deliver_nowait(late.customer, late, 1.0)
    )
    settled.close()
    letters.close()

    assert ended == 11.0  # the stop at 1, plus the grace: push's calls were cut then
    assert sorted(email.calls) == sorted(email.finished) == [s.key for s in items[:2]]  # no new send
    assert outbox.delivered == 2 and not outbox.dead_letters and Busy.calls == 1
    assert sorted(push.calls) == [s.key for s in items[6:8]] and not push.finished
    assert in_app.finished == [items[8].key] and outbox.attempts == 2 + 1 + 2 + 1
    unsettled = items[2:5] + items[5:9] + [late]
    assert outbox.pending == {s.key: s for s in unsettled}  # for the final snapshot
    assert settled_at_restart(tmp_path / "settled.log") == {s.key for s in items[:2]}
    assert not dead_letters_at_restart(tmp_path / "dead-letters.jsonl")


def test_a_stop_cancels_waits_for_the_breaker_and_the_rate_limit_at_once():
    down = Refusing(False)
    outbox = Outbox({"email": down, "push": MockProvider()}, rates={"push": 0.1},
                    base_delay=0.01, breaker_failures=1, breaker_reset=30.0, seed=1)
    items = sends(1) + sends(3, "push")  # the breaker opens at 0; push has a token a 10 s
    ended = stop_after(outbox, items, at=5.0, grace=10.0)
    assert ended == 5.0 and down.calls == 1 and outbox.delivered == 1
    assert set(outbox.pending) == {s.key for s in items[:1] + items[2:]} and not outbox.dead_letters


def test_a_trial_in_flight_at_a_stop_finishes_within_the_grace_and_closes_the_breaker():
    class Recovers:
        calls = 0

        async def send(self, send: Send) -> None:
            Recovers.calls += 1
            await trio.sleep(2.0)
            if Recovers.calls == 1:
                raise ProviderError("down")

    outbox = Outbox({"email": Recovers()}, workers=4, base_delay=0.01, breaker_failures=1,
                    breaker_reset=30.0, seed=1)
    items = sends(1)  # fails at 2, the breaker opens; the trial goes at 32 and ends at 34
    ended = stop_after(outbox, items, at=33.0, grace=10.0)
    assert ended == 34.0 and outbox.delivered == 1 and not outbox.pending
    assert outbox.breakers["email"].state.name == "CLOSED"


def test_a_stop_before_run_and_sends_after_close_or_stop_neither_raise_nor_go_out():
    provider = MockProvider()
    outbox = Outbox({"email": provider})
    first, second, third = sends(3)

    async def main() -> None:
        outbox.stop()
        with trio.fail_after(1):
            await outbox.run()  # returns at once
        outbox.deliver_nowait(first.customer, first, 0.0)

        drained = Outbox({"email": provider})
        async with trio.open_nursery() as nursery:
            nursery.start_soon(drained.run)
            drained.deliver_nowait(second.customer, second, 0.0)
            drained.close()
            drained.deliver_nowait(third.customer, third, 0.0)  # after close: pending, not queued
        drained.deliver_nowait(first.customer, first, 0.0)  # after run ended, too
        assert set(drained.pending) == {third.key, first.key} and drained.delivered == 1

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert list(outbox.pending) == [first.key] and list(provider.delivered) == [second.key]
