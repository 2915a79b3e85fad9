"""Recall on conversion: a purchase that arrives while the cart email waits in the outbox (its
provider slow, the one worker busy) cancels that email; it is never sent and is counted as
suppressed with the reason ``recalled``. A send already in flight completes."""

from __future__ import annotations

import trio
import trio.testing
from harness import HOUR, T0, load_program

from actors.messages import Event, Send
from actors.profile import CHANNEL_BIT, Profile
from engine.delivery.outbox import Outbox
from engine.runtime.realtime import RealtimeRuntime
from engine.storage.outbox_files import SettledLog
from engine.storage.recovery import recover
from engine.storage.wal import WriteAheadLog
from reports.metrics import RunMetrics


class SlowProvider:
    """Holds the first call until ``release`` is set: a provider that has slowed down."""

    def __init__(self) -> None:
        self.release = trio.Event()
        self.started: list[str] = []
        self.sent: list[Send] = []

    async def send(self, send: Send) -> None:
        self.started.append(send.customer)
        if len(self.started) == 1:
            await self.release.wait()
        self.sent.append(send)


def email_only(customer_id: str) -> Profile:
    return Profile(customer_id, reach=CHANNEL_BIT["email"])


def test_a_purchase_recalls_the_cart_email_waiting_in_the_outbox_and_the_send_in_flight_completes():
    provider = SlowProvider()
    outbox = Outbox({"email": provider}, workers=1)
    runtime = RealtimeRuntime(load_program(), outbox, profiles=email_only, epoch=T0)
    clock = trio.testing.MockClock()
    sent: list[str] = []

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(runtime.run)
            nursery.start_soon(outbox.run)
            for customer in ("bea", "ada"):  # (neither in the holdout): reminders due in an hour
                runtime.ingest_nowait(customer, Event("cart_add", {"value": 60}))
            await trio.testing.wait_all_tasks_blocked()
            clock.jump(HOUR)
            await trio.testing.wait_all_tasks_blocked()
            [in_flight] = provider.started  # one worker: one email in flight, the other waits
            waiting = ({"bea", "ada"} - {in_flight}).pop()
            assert len(outbox.pending) == 2
            runtime.ingest_nowait(waiting, Event("Order Completed", {"revenue": 60}))
            runtime.ingest_nowait(in_flight, Event("purchase", {"value": 60}))
            await trio.testing.wait_all_tasks_blocked()
            assert outbox.recalled == 1 and waiting not in {s.customer for s in outbox.pending.values()}
            sent.append(in_flight)
            provider.release.set()
            await trio.testing.wait_all_tasks_blocked()
            runtime.close()
            outbox.close()

    trio.run(main, clock=clock)
    assert [s.customer for s in provider.sent] == sent  # the one in flight completed; the other never went
    stats = runtime.metrics.to_dict()["journeys"]["cart_abandonment"]
    assert stats["suppressed_by_rule"] == {"recalled": 1}
    assert stats["exits"] == {"purchase": 2} and outbox.statistics().recalled == 1


def test_a_recall_after_the_last_snapshot_is_counted_again_after_a_crash(tmp_path):
    """The recall is in the settled log, whose keys since the snapshot a restart reads: the
    journey statistics rebuilt from the log come back with it."""
    provider = SlowProvider()
    settled = SettledLog(tmp_path / "settled.log")
    outbox = Outbox({"email": provider}, workers=1, settled_log=settled)
    program = load_program()
    runtime = RealtimeRuntime(program, outbox, profiles=email_only, epoch=T0,
                              log=WriteAheadLog(tmp_path / "wal", fsync="none"))
    clock = trio.testing.MockClock()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(runtime.run)
            nursery.start_soon(outbox.run)
            for customer in ("bea", "ada"):
                runtime.ingest_nowait(customer, Event("cart_add", {"value": 60}))
            await trio.testing.wait_all_tasks_blocked()
            clock.jump(HOUR)
            await trio.testing.wait_all_tasks_blocked()
            waiting = ({"bea", "ada"} - set(provider.started)).pop()
            runtime.ingest_nowait(waiting, Event("purchase", {"value": 60}))
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()  # the crash: no snapshot, the provider call cut off

    trio.run(main, clock=clock)
    runtime.log.close()
    settled.close()
    assert runtime.metrics.to_dict()["journeys"]["cart_abandonment"]["suppressed_by_rule"] == {"recalled": 1}

    metrics = RunMetrics(program, 0)  # as the service starts: the log replayed, then the settled log
    recovered = recover(tmp_path, program, profiles=email_only, fsync="none", tallies=metrics)
    recovered.log.close()
    again = SettledLog(tmp_path / "settled.log")
    metrics.count_recalled_keys(again.recalled_before)
    again.close()
    assert metrics.to_dict()["journeys"]["cart_abandonment"] == runtime.metrics.to_dict()["journeys"][
        "cart_abandonment"]
    # the email in flight at the crash goes again under its key; the recalled one does not
    assert [send.customer for send in recovered.resend if send.key not in again.settled_before] == \
        provider.started


def test_recall_spares_transactional_sends_those_made_with_the_exit_and_other_journeys():
    outbox = Outbox({"email": SlowProvider()}, workers=1)

    def send(key: str, journey: str = "cart", transactional: bool = False) -> Send:
        item = Send("ada", journey, 1, "s", "email", "m", key, transactional)
        outbox.deliver_nowait("ada", item, 0.0)
        return item

    send("receipt", transactional=True)
    send("reminder")
    send("made-now")
    send("promo", journey="winback")
    assert outbox.recall("ada", "cart", frozenset({"made-now"})) == 1
    assert sorted(outbox.pending) == ["made-now", "promo", "receipt"]
    assert outbox.recall("ada", "cart") == 1 and outbox.recall("ada", "cart") == 0
    assert outbox.recall("bob", "winback") == 0 and outbox.statistics().recalled == 2
