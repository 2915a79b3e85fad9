"""Write-ahead log, snapshots and recovery: nothing logged is lost, damage is found and named."""

from __future__ import annotations

import gc
import os
import random

import msgpack
import pytest
from harness import (
    CART_SCENARIO,
    DAY,
    HOUR,
    PROGRAM_WITH_IN_APP,
    T0,
    load_program,
    log_records,
    make_actor,
    reaches,
    run_script,
    scripts,
    tz_offsets,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors import EngineInternalError
from actors.codec import actor_from, decode, encode, encode_chunk, read_chunk, rewrite_chunk, to_chunk
from actors.messages import DeliveryReceipt, Event, Identified, Message, Schedule, Submission, TimerFired
from engine.scenario_files import load_scenario
from engine.storage import snapshots
from engine.storage.errors import StorageError
from engine.storage.recovery import recover
from engine.storage.snapshots import load_latest, write_snapshot
from engine.storage.wal import WriteAheadLog
from reports.metrics import RunMetrics

MESSAGES: list[Message] = [
    Event("cart_add", {"value": 42.5, "sku": "A-1", "gift": True, "note": None}),
    TimerFired("cart_abandonment", 3),
    DeliveryReceipt("cart_abandonment", 1, "push", "cart_reminder", "clicked"),
    Identified({"tier": "gold"}, {"sms": True}, {"email": False}),
]


def batch(n: int, start: float = T0) -> list[tuple[float, str, Message]]:
    return [(start + i, f"c{i % 7}", MESSAGES[i % len(MESSAGES)]) for i in range(n)]


def test_every_kind_of_message_round_trips_in_order(tmp_path):
    log = WriteAheadLog(tmp_path)
    assert log.append(log_records(batch(10))) == 10
    assert log.append(log_records(batch(5, T0 + 100))) == 15
    log.close()
    entries = list(WriteAheadLog(tmp_path).replay())
    expected = [
        (lsn, at, cid, msg, None) for lsn, (at, cid, msg) in enumerate(batch(10) + batch(5, T0 + 100), 1)
    ]
    assert entries == expected
    assert list(WriteAheadLog(tmp_path).replay(after=12)) == expected[12:]


def test_a_torn_tail_is_cut_off_and_the_log_goes_on(tmp_path):
    log = WriteAheadLog(tmp_path)
    log.append(log_records(batch(3)))
    log.append(log_records(batch(3, T0 + 10)))
    log.close()
    segment = log.segments()[-1]
    data = segment.read_bytes()
    segment.write_bytes(data[:-5])  # a crash in the middle of writing the last batch
    reopened = WriteAheadLog(tmp_path)
    assert [lsn for lsn, *_ in reopened.replay()] == [1, 2, 3]  # a batch is all or nothing
    assert reopened.next_lsn == 4
    reopened.append([(T0 + 99, "c9", Event("purchase"))])
    reopened.close()
    assert [lsn for lsn, *_ in WriteAheadLog(tmp_path).replay()][-2:] == [3, 4]


def test_a_garbled_last_batch_is_a_torn_tail_too(tmp_path):
    log = WriteAheadLog(tmp_path)
    log.append(log_records(batch(3)))
    log.append(log_records(batch(4, T0 + 10)))
    log.close()
    segment = log.segments()[-1]
    data = bytearray(segment.read_bytes())
    data[-1] ^= 0xFF
    segment.write_bytes(bytes(data))
    assert [lsn for lsn, *_ in WriteAheadLog(tmp_path).replay()] == [1, 2, 3]


def test_corruption_in_the_middle_stops_start_up_with_the_file_and_offset(tmp_path):
    log = WriteAheadLog(tmp_path)
    log.append(log_records(batch(6)))
    log.append(log_records(batch(6, T0 + 10)))
    log.close()
    segment = log.segments()[-1]
    data = bytearray(segment.read_bytes())
    data[12] ^= 0xFF  # inside the first batch's payload, with a good batch after it
    segment.write_bytes(bytes(data))
    with pytest.raises(StorageError) as caught:
        WriteAheadLog(tmp_path)
    assert segment.name in str(caught.value) and "byte 0" in str(caught.value)


def test_segments_roll_over_and_old_ones_go_once_a_snapshot_has_them(tmp_path):
    log = WriteAheadLog(tmp_path, segment_bytes=200)
    for i in range(10):
        log.append(log_records(batch(3, T0 + 10 * i)))
    assert len(log.segments()) > 3
    log.drop_through(15)
    remaining = [lsn for lsn, *_ in log.replay()]
    assert remaining[-1] == 30 and remaining[0] <= 16 and len(log.segments()) > 1
    log.close()


def test_a_snapshot_restores_every_actor_and_a_cut_one_is_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr(snapshots, "CHUNK", 7)  # 20 actors: two full chunks and a short one
    program = load_program()
    actors = [make_actor(program, f"c{i}") for i in range(20)]
    for i, actor in enumerate(actors):
        actor.handle(Event("cart_add", {"value": 30 + i}), T0 + i)
        actor.handle(Event("purchase", {"value": 30 + i}), T0 + HOUR * (i % 3))
    write_snapshot(tmp_path, 7, actors[:5])
    newest = write_snapshot(tmp_path, 9, actors)
    lsn, restored, *_ = load_latest(tmp_path, program)
    assert lsn == 9 and restored == {a.customer_id: a for a in actors}
    data = newest.read_bytes()
    for cut in (len(data) - 3, len(data) // 2):  # no trailer; a chunk cut short
        newest.write_bytes(data[:cut])
        lsn, restored, *_ = load_latest(tmp_path, program)
        assert lsn == 7 and sorted(restored) == [f"c{i}" for i in range(5)]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork_snapshot needs os.fork")
def test_a_forked_snapshot_holds_the_state_at_the_fork_while_the_engine_goes_on(tmp_path):
    program = load_program()
    actors = [make_actor(program, f"c{i}") for i in range(30)]
    for i, actor in enumerate(actors):
        actor.handle(Event("cart_add", {"value": 40 + i}), T0 + i)
    expected = {a.customer_id: a for a in (decode(encode(a), program) for a in actors)}
    pid = snapshots.fork_snapshot(tmp_path, 5, actors, lambda: {"m1": T0}, [], {"anon": "c1"})
    for actor in actors:  # the engine goes on at once: the child must not see this
        actor.handle(Event("purchase", {"value": 10}), T0 + HOUR)
    actors.append(make_actor(program, "late"))
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    loaded = load_latest(tmp_path, program)
    assert (loaded.lsn, loaded.seen, loaded.aliases) == (5, {"m1": T0}, {"anon": "c1"})
    assert loaded.actors == expected and loaded.actors["c0"] != actors[0]
    assert not list(tmp_path.glob(".*.tmp"))  # the child's own temporary file went into place


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork_snapshot needs os.fork")
def test_a_forked_writer_that_fails_exits_1_and_leaves_the_older_snapshot(tmp_path):
    program = load_program()
    write_snapshot(tmp_path, 3, [make_actor(program, "c0")])

    def no_seen() -> dict[str, float]:
        raise OSError("disk full")

    pid = snapshots.fork_snapshot(tmp_path, 4, [make_actor(program, "c1")], no_seen, [], {})
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 1
    assert load_latest(tmp_path, program).lsn == 3


def _dormant(chunk) -> snapshots.Dormant:
    dormant = snapshots.Dormant()
    dormant.add(chunk)
    return dormant


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(tz_offsets, reaches, scripts), min_size=1, max_size=6))
def test_a_chunk_restores_each_of_its_actors_whatever_their_states(lives):
    # actors side by side in one chunk share its columns and label table: each gets its own back
    actors = [
        run_script(f"cust-{i}", tz, reach, script, program=PROGRAM_WITH_IN_APP).actor
        for i, (tz, reach, script) in enumerate(lives)
    ]
    data = encode_chunk(to_chunk(actors))
    chunk = read_chunk(data, PROGRAM_WITH_IN_APP)
    restored = {cid: actor_from(chunk, cid, raw) for cid, raw in zip(chunk.ids, chunk.records, strict=True)}
    assert restored == {actor.customer_id: actor for actor in actors}
    assert encode_chunk(to_chunk(restored.values())) == data
    assert encode_chunk(rewrite_chunk(chunk, range(len(chunk)))) == data  # records as they were
    timers = [(cid, fired.journey, fired.version, at) for at, cid, fired, _ in _dormant(chunk).live_timers()]
    assert sorted(timers) == sorted(
        (a.customer_id, t.journey, t.version, t.at) for a in actors for t in a.live_timers()
    )
    # some of them, still dormant, written again as they were: they and their timers only
    kept = read_chunk(encode_chunk(rewrite_chunk(chunk, range(0, len(chunk), 2))), PROGRAM_WITH_IN_APP)
    assert kept.ids == chunk.ids[::2]
    pairs = zip(kept.ids, kept.records, strict=True)
    assert [actor_from(kept, cid, raw) for cid, raw in pairs] == actors[::2]
    kept_timers = _dormant(kept).live_timers()
    assert sorted((cid, fired.journey, fired.version) for _, cid, fired, _ in kept_timers) == (
        sorted((a.customer_id, t.journey, t.version) for a in actors[::2] for t in a.live_timers())
    )
    # restored objects are made with __new__ and filled slot by slot: a field added to the state
    # classes and forgotten by the codec shows up here
    for actor in restored.values():
        for state in (actor, actor.profile, *(run for run in actor.runs or () if run is not None)):
            assert all(hasattr(state, name) for name in type(state).__slots__), type(state).__name__


def test_a_run_of_a_journey_the_scenario_no_longer_has_is_named(tmp_path):
    program = load_program()
    actor = make_actor(program, "ada")
    actor.handle(Event("cart_add", {"value": 80}), T0)
    write_snapshot(tmp_path, 3, [actor])
    with pytest.raises(EngineInternalError, match="'ada' has a run of journey 'cart_abandonment'"):
        load_latest(tmp_path, PROGRAM_WITH_IN_APP)
    write_snapshot(tmp_path, 4, [make_actor(program, "bo")])  # no run in the journey that went
    assert list(load_latest(tmp_path, PROGRAM_WITH_IN_APP).actors) == ["bo"]


def test_a_snapshot_of_another_format_stops_the_load_instead_of_being_skipped(tmp_path):
    program = load_program()
    write_snapshot(tmp_path, 3, [make_actor(program, "ada")])
    older = tmp_path / f"snap-{9:016d}.msgpack"  # newer position, older engine
    older.write_bytes(msgpack.packb({"format": 1, "lsn": 9, "seen": {}, "pending": []})
                      + msgpack.packb({"end": 0}))
    with pytest.raises(StorageError, match="snapshot format 1, this engine reads 3"):
        load_latest(tmp_path, program)


def test_the_garbage_collector_is_left_as_found_and_what_was_restored_frozen(tmp_path):
    program = load_program()
    write_snapshot(tmp_path, 3, [make_actor(program, "ada")])
    assert gc.isenabled()
    restored = load_latest(tmp_path, program).actors["ada"]
    assert gc.isenabled() and gc.get_freeze_count() > 0
    assert not any(restored is obj for obj in gc.get_objects())  # frozen: out of every generation
    gc.disable()
    try:
        load_latest(tmp_path, program)
        write_snapshot(tmp_path, 4, [make_actor(program, "bob")])
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_recovery_rebuilds_the_state_and_re_arms_due_timers_once(tmp_path):
    program = load_program()
    rng = random.Random(4)
    # the engine's life before the crash: messages handled and logged, a snapshot half-way
    live = {}
    log = WriteAheadLog(tmp_path / "wal")
    at = T0
    for step in range(200):
        at += rng.uniform(60, 3 * HOUR)
        cid = f"c{rng.randrange(12)}"
        actor = live.setdefault(cid, make_actor(program, cid, channels=()))
        message: Message = rng.choice(
            [Event("cart_add", {"value": 60}), Event("purchase", {"value": 60}), Event("session_start")]
        )
        # due timers fire first, and are logged like any other message
        for timer in actor.live_timers():
            if timer.at <= at:
                fired = TimerFired(timer.journey, timer.version)
                log.append(log_records([(timer.at, cid, fired)]))
                actor.handle(fired, timer.at)
        log.append(log_records([(at, cid, message)]))
        actor.handle(message, at)
        if step == 100:
            write_snapshot(tmp_path / "snapshots", log.next_lsn - 1, live.values())
    log.close()

    def empty_profile(cid: str):
        return make_actor(program, cid, channels=()).profile

    actors, timers, reopened, *_ = recover(tmp_path, program, empty_profile)
    assert actors == live
    assert sorted(timers, key=lambda t: t[0]) == sorted(
        ((cid, t) for cid, a in live.items() for t in a.live_timers()), key=lambda t: t[0]
    )
    assert all(isinstance(t, Schedule) for _, t in timers) and timers
    # a timer that came due while the engine was down fires once at restart, then never again
    cid, timer = timers[0]
    restart = at + 30 * DAY
    effects = actors[cid].handle(TimerFired(timer.journey, timer.version), restart)
    assert effects
    assert actors[cid].handle(TimerFired(timer.journey, timer.version), restart + 1) == []
    reopened.close()


@pytest.mark.parametrize("global_holdout", [0.0, 0.3])
def test_recovery_gives_the_statistics_of_the_run_that_crashed(tmp_path, global_holdout):
    """The running statistics are the snapshot's plus the replayed log's effects: those of the
    uninterrupted run, figure for figure, whichever message the snapshot falls after (the
    program's lift too, customers counted as the runtime counts them: when first seen)."""
    settings = {"policy.global_holdout": global_holdout}
    program = load_scenario(str(CART_SCENARIO)).with_settings(settings).program
    rng = random.Random(9)
    live, metrics = {}, RunMetrics(program, 0)
    log = WriteAheadLog(tmp_path / "wal", fsync="none")
    at = T0
    for step in range(300):
        at += rng.uniform(60, 2 * HOUR)
        cid = f"c{rng.randrange(20)}"
        if cid not in live:
            live[cid] = make_actor(program, cid, channels=("email", "push"))
            metrics.count_customer(cid)
        actor = live[cid]
        due = [(t.at, TimerFired(t.journey, t.version)) for t in actor.live_timers() if t.at <= at]
        value = rng.choice([10, 60])
        kind = rng.choice(["cart_add", "cart_add", "purchase", "session_start"])
        for when, message in [*due, (at, Event(kind, {"value": value}))]:
            log.append(log_records([(when, cid, message)]))
            effects = actor.handle(message, when)
            if effects:
                metrics.observe(cid, effects, when)
        if step == 170:
            write_snapshot(tmp_path / "snapshots", log.next_lsn - 1, live.values(), metrics=metrics.state())
    log.close()
    expected = metrics.to_dict()
    assert expected["journeys"]["cart_abandonment"]["treated"]["conversions"] > 5
    assert ("program" in expected) == (global_holdout > 0)

    recovered_metrics = RunMetrics(program, 0)
    recovered = recover(tmp_path, program, tallies=recovered_metrics)
    recovered.log.close()
    assert recovered_metrics.to_dict() == expected


def test_a_crash_and_restart_lose_nothing_and_fire_overdue_timers_once(tmp_path):
    import trio
    import trio.testing
    from harness import make_script

    from engine.runtime.channels import MockChannel
    from engine.runtime.realtime import RealtimeRuntime
    from scenarios.population import customer_id

    program = load_program()
    script = make_script(7)
    crash, restart = 5 * DAY + 17.0, 6 * DAY + 3.0

    def profile_of(cid: str):
        return make_actor(program, cid, channels=("email", "push", "sms")).profile

    first = RealtimeRuntime(
        program, MockChannel(), profiles=profile_of, epoch=0.0,
        log=WriteAheadLog(tmp_path / "wal", fsync="none"),
    )

    async def first_life() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(first.run)
            for at, customer, message in script:
                if at >= crash:
                    break
                await trio.sleep_until(at)
                await first.submit([Submission(customer_id(customer), message)])  # acknowledged once logged
            await trio.sleep_until(crash)
            nursery.cancel_scope.cancel()  # the process dies: no snapshot, no clean close

    trio.run(first_life, clock=trio.testing.MockClock(autojump_threshold=0))
    first.log.close()
    acknowledged = sum(1 for at, _, _ in script if at < crash)

    # fsync="none": a worker thread would let MockClock jump while the engine waits on it
    actors, timers, log, *_ = recover(tmp_path, program, profile_of, fsync="none")
    assert actors == first.actors  # every acknowledged message is in the rebuilt state
    overdue = [t for _, t in timers if t.at < restart]
    assert overdue, "the scenario should leave timers due during the downtime"

    second_channel = MockChannel()
    second = RealtimeRuntime(program, second_channel, profiles=profile_of, epoch=restart, log=log)
    second.restore(actors, timers)

    async def second_life() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(second.run)
            await trio.sleep(3 * DAY)
            second.close()

    trio.run(second_life, clock=trio.testing.MockClock(autojump_threshold=0))
    log.close()
    entries = list(WriteAheadLog(tmp_path / "wal").replay())
    events = [e for e in entries if not isinstance(e[3], TimerFired)]
    fired = [(cid, m.journey, m.version) for _, _, cid, m, _ in entries if isinstance(m, TimerFired)]
    assert len(events) == acknowledged
    assert len(fired) == len(set(fired))  # each timer fired once across both lives
    restarted = [e for e in entries if e[1] == restart and isinstance(e[3], TimerFired)]
    assert len(restarted) == len(overdue)  # the overdue ones, at restart
    keys = [item.key for _, item in second_channel.delivered if hasattr(item, "key")]
    first_keys = {item.key for _, item in first.channel.delivered if hasattr(item, "key")}
    assert keys and not first_keys & set(keys)  # no send repeated after the restart


def test_message_ids_survive_a_restart_through_the_log_and_the_snapshot(tmp_path):
    import time

    import trio

    from engine.runtime.channels import MockChannel
    from engine.runtime.realtime import RealtimeRuntime

    program = load_program()

    def life(ids_to_submit, snapshot_after: bool):
        actors, timers, log, seen, *_ = recover(tmp_path, program, fsync="none")
        runtime = RealtimeRuntime(program, MockChannel(), log=log)
        runtime.restore(actors, timers, seen)

        async def main() -> None:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(runtime.run)
                for mid in ids_to_submit:
                    await runtime.submit([Submission("ada", Event("cart_add", {"value": 50}), mid)])
                runtime.close()

        trio.run(main)
        if snapshot_after:
            write_snapshot(tmp_path / "snapshots", runtime.applied_lsn, runtime.actors.values(),
                           runtime.seen.recent(time.time()))
            log.drop_through(runtime.applied_lsn)
        log.close()
        return runtime

    life(["m1", "m2", "m2"], snapshot_after=False)  # the repeat within a life is skipped
    second = life(["m1", "m3"], snapshot_after=True)  # m1 known from the log
    third = life(["m2", "m3", "m4"], snapshot_after=False)  # m2, m3 known from the snapshot
    logged = [mid for *_, mid in WriteAheadLog(tmp_path / "wal", fsync="none").replay()]
    assert [e.handled for e in (second, third)] == [1, 1]
    assert "m4" in logged and logged.count("m4") == 1


def test_sends_not_known_to_be_settled_are_handed_over_again_after_a_restart(tmp_path):
    program = load_program()
    actor = make_actor(program, "ada", channels=("push", "email"))
    pending = actor.handle(Event("cart_add", {"value": 80}), T0)  # enters; the push is 1 h away
    log = WriteAheadLog(tmp_path / "wal", fsync="none")
    log.append(log_records([(T0, "ada", Event("cart_add", {"value": 80}))]))
    held = [s for s in pending if type(s).__name__ == "Send"]
    write_snapshot(tmp_path / "snapshots", log.next_lsn - 1, [actor], {}, held)
    fired = TimerFired("cart_abandonment", 1)
    log.append(log_records([(T0 + HOUR, "ada", fired)]))  # the push went out, then the engine died
    log.close()
    recovered = recover(tmp_path, program, lambda cid: make_actor(program, cid).profile, fsync="none")
    assert [(s.channel, s.key) for s in recovered.resend] == [("push", "ada:cart_abandonment:1:push:1")]
    recovered.log.close()


def test_a_restore_that_leaves_actors_dormant_gives_the_trace_and_state_of_one_that_wakes_all(tmp_path):
    import shutil

    import trio
    import trio.testing
    from harness import make_script

    from engine.runtime.channels import MockChannel
    from engine.runtime.realtime import RealtimeRuntime
    from scenarios.population import customer_id

    program = load_program()
    script = make_script(7)
    snapshot_at, crash, restart = 1.5 * DAY, 3 * DAY + 17.0, 3 * DAY + 3 * HOUR

    def profile_of(cid: str):
        return make_actor(program, cid, channels=("email", "push", "sms")).profile

    first = RealtimeRuntime(program, MockChannel(), profiles=profile_of, epoch=0.0,
                            log=WriteAheadLog(tmp_path / "wal", fsync="none"))

    async def first_life() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(first.run)
            snapshotted = False
            for at, customer, message in script:
                if at >= crash:
                    break
                if at >= snapshot_at and not snapshotted:  # the log after it concerns some only
                    write_snapshot(tmp_path / "snapshots", first.applied_lsn, first.actors.values())
                    snapshotted = True
                await trio.sleep_until(at)
                await first.submit([Submission(customer_id(customer), message)])
            await trio.sleep_until(crash)
            nursery.cancel_scope.cancel()

    trio.run(first_life, clock=trio.testing.MockClock(autojump_threshold=0))
    first.log.close()
    shutil.copytree(tmp_path, tmp_path / "lazy", ignore=shutil.ignore_patterns("lazy"))

    def second_life(data, wake: bool) -> tuple[RealtimeRuntime, list]:
        recovered = recover(data, program, profile_of, fsync="none", wake=wake)
        trace: list = []
        runtime = RealtimeRuntime(program, MockChannel(), profiles=profile_of, epoch=restart,
                                  log=recovered.log, trace=trace)
        runtime.restore(recovered.actors, recovered.timers, dormant=recovered.dormant)

        async def run() -> None:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(runtime.run)
                for at, customer, message in script:  # the load goes on after the restart
                    if restart <= at < restart + 3 * DAY:
                        await trio.sleep_until(at - restart)
                        await runtime.submit([Submission(customer_id(customer), message)])
                await trio.sleep_until(3 * DAY)
                runtime.close()

        trio.run(run, clock=trio.testing.MockClock(autojump_threshold=0))
        recovered.log.close()
        return runtime, trace

    awake, awake_trace = second_life(tmp_path, wake=True)
    lazy, lazy_trace = second_life(tmp_path / "lazy", wake=False)
    assert len(awake_trace) > 50 and sorted(map(repr, lazy_trace)) == sorted(map(repr, awake_trace))
    assert lazy.actor_count == awake.actor_count == len(awake.actors)
    assert 0 < len(lazy.dormant) < lazy.actor_count  # some were never needed again

    # a snapshot of the lazy engine writes its dormant records as they were, and reads back as
    # the state of the engine that woke all
    write_snapshot(tmp_path / "again", 1, lazy.actors.values(), dormant=lazy.dormant)
    assert load_latest(tmp_path / "again", program).actors == awake.actors
    assert lazy.actor("never-seen") is None and lazy.actor(next(iter(lazy.dormant.records))) is not None


def test_a_dormant_visitor_merges_into_the_known_customer_when_it_identifies(tmp_path):
    from actors.messages import Merged
    from actors.routing import Aliases, way_in

    program = load_program()
    visitor = make_actor(program, "anon-7")
    visitor.handle(Event("cart_add", {"value": 80}), T0)
    write_snapshot(tmp_path, 1, [visitor, make_actor(program, "bo")])
    dormant = load_latest(tmp_path, program, wake=False).dormant
    actors = {"ada": make_actor(program, "ada")}
    aliases = Aliases()

    def no_new_actor(customer_id: str):
        raise AssertionError(f"{customer_id} should have been woken")

    apply = way_in(actors, aliases, no_new_actor, dormant.wake)
    apply("ada", Merged("anon-7"), T0 + HOUR)
    assert "anon-7" not in dormant and "anon-7" not in actors and len(dormant) == 1
    assert [kind for _, kind, _, detail in actors["ada"].profile.timeline()] == ["event"]
    assert actors["ada"].runs_by_id()["cart_abandonment"].step is not None  # the cart run moved
    _, effects = apply("bo", Event("session_start"), T0)
    assert "bo" in actors and not dormant


def test_a_chunk_of_format_6_reads_with_no_step_reached():
    """Format 6 had no ``passed`` in its runs: they read as having reached no step yet."""
    program = load_program()
    actor = make_actor(program, "ada")
    actor.handle(Event("cart_add", {"value": 60}), T0)
    assert actor.runs_by_id()["cart_abandonment"].passed != 0
    version, ids, doubles, timelines, journeys, records, timers, _ = to_chunk([actor])
    older = [(*record[:12], [run[:10] for run in record[12]], record[13]) for record in records]
    chunk = read_chunk(encode_chunk((6, ids, doubles, timelines, journeys, older, timers)), program)
    restored = actor_from(chunk, "ada", chunk.records[0])
    assert restored.runs_by_id()["cart_abandonment"].passed == 0
    actor.runs_by_id()["cart_abandonment"].passed = 0
    assert restored == actor


def test_a_chunk_of_another_format_is_named():
    program = load_program()
    same_shape = encode_chunk((5, ["ada"], b"", [], [], [[0.0]], (b"", b"", b"", b"")))
    with pytest.raises(EngineInternalError, match="snapshot chunk format 5; this engine reads 6 and 7"):
        read_chunk(same_shape, program)
    other_shape = encode_chunk((4, "anything else"))
    with pytest.raises(EngineInternalError, match="snapshot chunk format 4; this engine reads 6 and 7"):
        read_chunk(other_shape, program)


def test_dormant_actors_are_written_again_as_read_or_packed_anew_when_few_of_their_chunk_remain(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(snapshots, "CHUNK", 10)
    program = load_program()
    actors = [make_actor(program, f"c{i:02d}") for i in range(20)]
    for i, actor in enumerate(actors):
        actor.handle(Event("cart_add", {"value": 30 + i}), T0 + i)
    write_snapshot(tmp_path / "first", 1, actors)
    dormant = load_latest(tmp_path / "first", program, wake=False).dormant
    woken = {f"c{i:02d}": dormant.wake(f"c{i:02d}") for i in [*range(8), 10, 11]}
    assert woken == {a.customer_id: a for a in actors if a.customer_id in woken}

    write_snapshot(tmp_path / "second", 2, [], dormant=dormant)
    again = load_latest(tmp_path / "second", program, wake=False).dormant
    assert sorted(map(len, again.chunks)) == [2, 8]  # c12..c19 as read; c08, c09 packed anew
    small, large = sorted(again.chunks, key=len)

    def columns(actor):
        p = actor.profile
        return sum(len(c) for c in (p.engagement, p.timeline_at, p.cooldowns) if c is not None)

    assert len(small.doubles) == columns(actors[8]) + columns(actors[9])  # only theirs
    assert len(large.doubles) == sum(columns(a) for a in actors[10:])  # the chunk's, as read
    assert again.wake_all() == {a.customer_id: a for a in actors if a.customer_id not in woken}
    assert len(dormant) == 10  # writing woke nothing
