"""Identity merge in the core: an anonymous visitor's history folds into the known profile."""

from __future__ import annotations

from harness import DAY, HOUR, T0, load_program, log_records, make_actor

from actors.messages import (
    DeliveryReceipt,
    Event,
    Exited,
    Identified,
    Merged,
    Schedule,
    Send,
    Submission,
    TimerFired,
)
from actors.profile import CHANNEL_BIT, Profile


def test_an_anonymous_cart_run_moves_to_the_known_profile_and_sends_under_its_id():
    program = load_program()
    visitor, known = make_actor(program, "anon-1"), make_actor(program, "ada", channels=("email",))
    visitor.handle(Event("cart_add", {"value": 80}), T0)
    old_timer = visitor.live_timers()[0]
    known.handle(Identified({"name": "Ada"}, {}, {}), T0 + 60)

    effects = known.absorb(visitor, T0 + 120)

    [moved] = [e for e in effects if isinstance(e, Schedule)]
    assert moved.at == old_timer.at and moved.version > old_timer.version
    assert known.handle(TimerFired(old_timer.journey, old_timer.version), old_timer.at) == []  # stale
    fired = known.handle(TimerFired(moved.journey, moved.version), moved.at)
    sends = [e for e in fired if isinstance(e, Send)]
    assert [s.customer for s in sends] == ["ada"] and sends[0].key.startswith("ada:")
    assert known.profile.traits == {"name": "Ada"}
    assert known.profile.reach & CHANNEL_BIT["push"]  # the visitor's push token counts too
    kinds = [kind for _, kind, _, _ in known.profile.timeline()]
    assert kinds[:2] == ["event", "sent"]  # the visitor's cart, then the send to Ada


def test_counters_add_up_unsubscribes_stand_and_the_known_traits_win():
    program = load_program()
    visitor, known = make_actor(program, "anon-2"), make_actor(program, "bo")
    visitor.handle(Event("cart_add", {"value": 10}), T0)  # below the entry threshold
    visitor.handle(Event("purchase", {"value": 30}), T0 + HOUR)
    visitor.handle(Identified({"plan": "free", "city": "Oslo"}, {}, {"sms": False}), T0 + HOUR)
    visitor.handle(DeliveryReceipt("cart_abandonment", 1, "email", "m", "clicked"), T0 + 2 * HOUR)
    known.handle(Identified({"plan": "pro"}, {}, {}), T0)
    known.handle(Event("purchase", {"value": 12}), T0 + DAY)
    known.handle(DeliveryReceipt("cart_abandonment", 1, "email", "m", "clicked"), T0 + DAY)

    known.absorb(visitor, T0 + 2 * DAY)

    profile = known.profile
    assert profile.traits == {"plan": "pro", "city": "Oslo"}
    assert profile.purchases == 2 and profile.revenue == 42.0 and profile.last_purchase_at == T0 + DAY
    assert not profile.has_consent("sms") and profile.has_consent("email")
    assert profile.channel_stats("email")[3] == 2  # clicks from both sides
    times = [at for at, *_ in profile.timeline()]
    assert times == sorted(times)
    known.check_invariants()


def test_when_both_are_in_a_journey_the_known_run_stays_and_the_other_ends():
    program = load_program()
    visitor, known = make_actor(program, "anon-3"), make_actor(program, "cy")
    visitor.handle(Event("cart_add", {"value": 80}), T0)
    known.handle(Event("cart_add", {"value": 90}), T0 + 10)
    mine = known.runs_by_id()["cart_abandonment"]
    entry, due = mine.entry, mine.due_at

    effects = known.absorb(visitor, T0 + 20)

    assert Exited("cart_abandonment", "merged") in effects
    run = known.runs_by_id()["cart_abandonment"]
    assert (run.entry, run.due_at) == (entry, due)
    [timer] = [e for e in effects if isinstance(e, Schedule)]
    visitor_version = visitor.live_timers()[0].version
    assert timer.version > visitor_version  # the visitor's queued timer can never match
    known.check_invariants()


def test_a_moved_run_is_numbered_after_the_known_customers_own_entries():
    program = load_program()
    visitor, known = make_actor(program, "anon-4"), make_actor(program, "di")
    known.handle(Event("cart_add", {"value": 50}), T0)
    known.handle(Event("purchase", {"value": 50}), T0 + 60)  # exits: run inactive, entry 1
    visitor.handle(Event("cart_add", {"value": 70}), T0 + 8 * DAY)

    known.absorb(visitor, T0 + 8 * DAY + 60)

    run = known.runs_by_id()["cart_abandonment"]
    assert run.step is not None and run.entry == 2  # keys "di:cart_abandonment:2:..." are new


def test_the_runtime_routes_a_merged_id_and_its_queued_timer_to_the_known_customer():
    import trio
    import trio.testing

    from engine.runtime.channels import MockChannel
    from engine.runtime.realtime import RealtimeRuntime

    program = load_program()
    channel = MockChannel()
    reach = CHANNEL_BIT["push"] | CHANNEL_BIT["email"]

    def profile_of(customer_id: str) -> Profile:
        return Profile(customer_id, reach=reach)

    async def main() -> RealtimeRuntime:
        runtime = RealtimeRuntime(program, channel, profiles=profile_of, epoch=T0)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(runtime.run)
            runtime.ingest_nowait("anon-9", Event("cart_add", {"value": 80}))  # a 1-hour wait
            await trio.sleep(600)
            runtime.ingest_batch_nowait([Submission("eve", Merged("anon-9")),
                                         Submission("eve", Identified({"n": 1}, {}, {}))])
            await trio.sleep(60)
            runtime.ingest_nowait("anon-9", Event("page_view"))  # a late message for the old id
            await trio.sleep(2 * HOUR)
            runtime.close()
        return runtime

    runtime = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))

    assert set(runtime.actors) == {"eve"} and runtime.aliases.resolve("anon-9") == "eve"
    [(at, send)] = channel.delivered  # the visitor's queued timer was stale; eve's fired once
    assert isinstance(send, Send) and send.customer == "eve" and at == T0 + HOUR


def test_a_merge_survives_a_restart_through_the_log_and_the_snapshot(tmp_path):
    from engine.storage.recovery import recover
    from engine.storage.snapshots import load_latest, write_snapshot
    from engine.storage.wal import WriteAheadLog

    program = load_program()
    log = WriteAheadLog(tmp_path / "wal", fsync="none")
    cart, identified = Event("cart_add", {"value": 80}), Identified({"n": 2})
    log.append(log_records([(T0, "anon-5", cart), (T0 + 60, "fay", identified)]))
    log.append(log_records([(T0 + 120, "fay", Merged("anon-5"))]))
    log.close()

    recovered = recover(tmp_path, program, fsync="none")  # replayed from the log alone
    assert set(recovered.actors) == {"fay"} and recovered.aliases == {"anon-5": "fay"}
    assert [cid for cid, _ in recovered.timers] == ["fay"]  # the cart run moved, timer and all
    write_snapshot(tmp_path / "snapshots", recovered.log.next_lsn - 1, recovered.actors.values(),
                   aliases=recovered.aliases)
    recovered.log.close()
    assert load_latest(tmp_path / "snapshots", program).aliases == {"anon-5": "fay"}


def test_a_message_for_the_merged_id_in_the_same_batch_reaches_the_known_customer(tmp_path):
    import trio
    import trio.testing

    from engine.runtime.channels import MockChannel
    from engine.runtime.realtime import RealtimeRuntime
    from engine.storage.recovery import recover
    from engine.storage.wal import WriteAheadLog

    program = load_program()
    log = WriteAheadLog(tmp_path / "wal", fsync="none")

    async def main() -> RealtimeRuntime:
        runtime = RealtimeRuntime(program, MockChannel(), epoch=T0, log=log)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(runtime.run)
            runtime.ingest_batch_nowait([
                Submission("anon-7", Event("page_view"), "m1"),
                Submission("gus", Merged("anon-7"), "m2"),
                Submission("anon-7", Event("cart_add", {"value": 80}), "m3"),  # sent before the client knew
            ])
            await trio.sleep(60)
            runtime.close()
        return runtime

    runtime = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    log.close()
    assert set(runtime.actors) == {"gus"} and "cart_abandonment" in runtime.actors["gus"].runs_by_id()
    recovered = recover(tmp_path, program, fsync="none")  # the log replays to the same state
    recovered.log.close()
    assert set(recovered.actors) == {"gus"} and recovered.actors["gus"] == runtime.actors["gus"]
