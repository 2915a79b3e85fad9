"""Trigger latency and timer lateness: what they count from, and the Prometheus histograms.

On trio's mock clock, with a provider limited to one send a second: three customers enter at
once in a batch the engine takes up 5 s after accepting it, so their welcome emails go 5, 6 and
7 s after the acceptance (the rate limit); an hour later their timers fire on time and the
reminders wait 0, 1 and 2 s. A second engine
restored after a stop finds the reminders' timers ten minutes overdue: they fire at once, ten
minutes late, and so are their sends.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing
from harness import HOUR, T0, compile_toml
from prometheus_client import CollectorRegistry, generate_latest

from actors.messages import Event, Send, Submission
from actors.profile import CHANNEL_BIT, Profile
from engine.delivery.outbox import Outbox
from engine.edge.monitoring import EngineCollector
from engine.runtime.latency import LatencyHistogram
from engine.runtime.realtime import RealtimeRuntime

PROGRAM = compile_toml("""
[[journeys]]
id = "welcome"
entry = { event = "signup" }
start = "hello"
[journeys.steps.hello]
send = { message = "welcome", channel = "email", transactional = true }
next = "pause"
[journeys.steps.pause]
wait = "1h"
next = "reminder"
[journeys.steps.reminder]
send = { message = "reminder", channel = "email", transactional = true }
next = "done"
[journeys.steps.done]
end = true
""")


class Recording:
    """A provider that takes every send at once."""

    def __init__(self) -> None:
        self.sent: list[Send] = []

    async def send(self, send: Send) -> None:
        self.sent.append(send)


def email_only(customer_id: str) -> Profile:
    return Profile(customer_id, reach=CHANNEL_BIT["email"])


def engine(epoch: float) -> tuple[RealtimeRuntime, Outbox, Recording]:
    provider = Recording()
    outbox = Outbox({"email": provider}, workers=1, rates={"email": 1.0})
    runtime = RealtimeRuntime(PROGRAM, outbox, profiles=email_only, epoch=epoch)
    outbox.clock = runtime.now
    return runtime, outbox, provider


def observed(histogram: LatencyHistogram) -> dict[str, int]:
    """Observations per bucket that holds any (by upper bound), not cumulative."""
    return {bound: count for bound, count in zip((*map(str, histogram.bounds), "+Inf"), histogram.counts,
                                                 strict=True) if count}


def test_trigger_latency_counts_from_acceptance_and_from_the_due_time():
    runtime, outbox, provider = engine(T0)
    clock = trio.testing.MockClock(autojump_threshold=0)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(outbox.run)
            entries = [Submission(who, Event("signup"), None) for who in ("ada", "bo", "cy")]
            nursery.start_soon(runtime.submit, entries)  # accepted now...
            await trio.sleep(5.0)
            nursery.start_soon(runtime.run)  # ...taken up 5 s later
            await trio.sleep(2 * HOUR)
            runtime.close()
            outbox.close()

    trio.run(main, clock=clock)
    assert [s.message for s in provider.sent] == ["welcome"] * 3 + ["reminder"] * 3
    latency = outbox.trigger_latency
    assert latency.count == 6 and latency.total == pytest.approx(5 + 6 + 7 + 0 + 1 + 2)
    assert observed(latency) == {"0.0005": 1, "1.0": 1, "2.5": 1, "5.0": 1, "10.0": 2}
    lateness = runtime.timer_lateness
    assert lateness.count == 3 and lateness.total == 0.0  # fired on time


def test_timers_overdue_at_a_restart_fire_at_once_and_count_as_late():
    first, _, _ = engine(T0)

    async def enter() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(first.run)
            for who in ("ada", "bo"):
                first.ingest_nowait(who, Event("signup"))
            await trio.testing.wait_all_tasks_blocked()
            first.close()

    trio.run(enter, clock=trio.testing.MockClock())
    timers = [(cid, timer) for cid, actor in first.actors.items() for timer in actor.live_timers()]
    assert [timer.at for _, timer in timers] == [T0 + HOUR] * 2

    later, outbox, provider = engine(T0 + HOUR + 600.0)  # back ten minutes after they came due
    later.restore(first.actors, timers)

    async def resume() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(later.run)
            nursery.start_soon(outbox.run)
            await trio.sleep(5.0)
            later.close()
            outbox.close()

    trio.run(resume, clock=trio.testing.MockClock(autojump_threshold=0))
    assert [s.message for s in provider.sent] == ["reminder", "reminder"]
    assert later.timer_lateness.count == 2 and later.timer_lateness.total == pytest.approx(1200.0)
    assert observed(later.timer_lateness) == {"+Inf": 2}  # (past the last bound, 60 s)
    assert outbox.trigger_latency.total == pytest.approx(600.0 + 601.0)  # the second waits a token

    registry = CollectorRegistry()
    registry.register(EngineCollector(later))
    text = generate_latest(registry).decode()
    assert 'touchpoint_timer_lateness_seconds_bucket{le="+Inf"} 2.0' in text
    assert "touchpoint_timer_lateness_seconds_sum 1200.0" in text
    assert 'touchpoint_trigger_latency_seconds_bucket{le="60.0"} 0.0' in text
    assert "touchpoint_trigger_latency_seconds_count 2.0" in text
