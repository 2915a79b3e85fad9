"""Micro-benchmarks of the hot paths (pytest-benchmark; not part of the test run): the actor per
message kind, the policy decision, the channel ranking, the scheduler, the log's frame encoder,
snapshot chunks both ways, the decoding of a Segment batch and the outbox.

    .venv/bin/pytest bench --benchmark-only

Each benchmark sits beside ``test_bare_loop_ceiling``, the same bare loop as bench/ceiling.py
over 10,000 events, so the figures can be read as ratios on a noisy machine.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio

from actors.actor import Actor
from actors.codec import actors_of, encode_chunk, read_chunk, to_chunk
from actors.journey import SendStep
from actors.messages import DeliveryReceipt, Event, Identified, Scored, Send, TimerFired
from actors.policy import decide, rank_channels
from actors.profile import CHANNEL_BIT, OPENED, SENDS, Profile
from bench.ceiling import bare_loop_events_per_second
from engine.delivery.outbox import Outbox
from engine.edge.segment import parse, to_messages
from engine.load.traffic import Traffic
from engine.runtime.scheduler import TimerQueue
from engine.scenario_files import load_scenario
from engine.storage.wal import Logged, encode_frame

REACH = CHANNEL_BIT["email"] | CHANNEL_BIT["push"] | CHANNEL_BIT["sms"]


@pytest.fixture(scope="module")
def program() -> Any:
    return load_scenario("cart_abandonment").program


def test_bare_loop_ceiling(benchmark: Any) -> None:
    benchmark(bare_loop_events_per_second, 10_000, 1_000)


def test_scheduler_push_pop_200k_pending(benchmark: Any) -> None:
    queue = TimerQueue()
    for i in range(200_000):
        queue.push(i * 13.0 % 2_592_000.0, i, None)
    state = {"t": 0.0}

    def push_then_pop() -> None:
        state["t"] += 7.0
        queue.push(state["t"] + 3600.0, 1, None)
        queue.pop()

    benchmark(push_then_pop)


def test_actor_browsing_event(benchmark: Any, program: Any) -> None:
    actor = Actor(program, Profile("c1", reach=REACH))
    event = Event("page_view")
    benchmark(actor.handle, event, 1000.0)


def test_actor_cart_entry_and_first_timer(benchmark: Any, program: Any) -> None:
    cart = Event("cart_add", {"value": 50.0})
    state = {"n": 0}

    def enter_then_fire() -> None:
        state["n"] += 1
        actor = Actor(program, Profile(f"c{state['n']}", reach=REACH))
        actor.handle(cart, 36000.0)
        actor.handle(TimerFired("cart_abandonment", 1), 39600.0)

    benchmark(enter_then_fire)


# -- the actor, per message kind --------------------------------------------------------------------


def test_actor_receipt_clicked(benchmark: Any, program: Any) -> None:
    actor = Actor(program, Profile("c1", reach=REACH))
    actor.handle(Event("cart_add", {"value": 50.0}), 0.0)
    clicked = DeliveryReceipt("cart_abandonment", 1, "push", "cart_reminder", "clicked")
    benchmark(actor.handle, clicked, 4000.0)


def test_actor_identify(benchmark: Any, program: Any) -> None:
    actor = Actor(program, Profile("c1", reach=REACH))
    identified = Identified({"email": "c1@example.com", "plan": "pro"}, {"email": True}, {})
    benchmark(actor.handle, identified, 1000.0)


def _enter_then_buy(benchmark: Any, program: Any) -> None:
    """A cart add entering the cart journey, then a purchase ending the run, on a new actor."""
    cart, bought = Event("cart_add", {"value": 50.0}), Event("purchase", {"value": 50.0})
    state = {"n": 0}

    def enter_then_buy() -> None:
        state["n"] += 1
        actor = Actor(program, Profile(f"c{state['n']}", reach=REACH))
        actor.handle(cart, 36000.0)
        actor.handle(bought, 37000.0)

    benchmark(enter_then_buy)


def test_actor_purchase_ending_a_run(benchmark: Any, program: Any) -> None:
    _enter_then_buy(benchmark, program)


CART_OPEN = {"segments": {"cart_open": {"behaviour": [
    {"event": "cart_add", "within": "3d", "without": "purchase"}]}}}


def test_actor_purchase_ending_a_run_with_a_live_segment(benchmark: Any) -> None:
    """The same design with one live segment beside it (a cart in the last 3 days and no
    purchase since), entered and left by the two events: what keeping it costs."""
    _enter_then_buy(benchmark, load_scenario("cart_abandonment", CART_OPEN).program)


def test_actor_scored(benchmark: Any) -> None:
    """A scoring pass's message to one actor: its scores kept, its segments re-read."""
    segmented = load_scenario("broadcast_targeting").program
    actor = Actor(segmented, Profile("c1", reach=REACH))
    actor.handle(Event("purchase", {"value": 50.0}), 1000.0)
    values = [(3.0, 2.0, 4.0, 0.9, 1.2, 0.7, 0.0), (3.0, 2.0, 4.0, 0.9, 1.2, 0.5, 0.0)]
    state = {"n": 0}

    def scored() -> None:  # (in and out of likely_buyer by turns)
        state["n"] += 1
        actor.handle(Scored(values[state["n"] % 2], 2000.0), 2000.0 + state["n"])

    benchmark(scored)


# -- the policy and the channel ranking --------------------------------------------------------------


def _engaged_profile() -> Profile:
    profile = Profile("c1", reach=REACH)
    for at, channel in ((1000.0, "email"), (2000.0, "push"), (3000.0, "push")):
        profile.note(at, "sent", channel, "m", keep_sends_after=0.0)
        profile.count(channel, SENDS)
        profile.count(channel, OPENED, at + 60)
    return profile


def test_policy_decision(benchmark: Any, program: Any) -> None:
    journey = program.by_id["cart_abandonment"]
    step = next(s for s in journey.steps.values() if isinstance(s, SendStep))
    benchmark(decide, program.policy, _engaged_profile(), step, "push", 50_000.0)


def test_channel_ranking(benchmark: Any, program: Any) -> None:
    benchmark(rank_channels, program.policy, _engaged_profile(), ("push", "email", "sms"))


# -- storage: the log's frames, snapshot chunks --------------------------------------------------------


def test_log_frame_of_a_round_of_100_events(benchmark: Any) -> None:
    entries = [Logged(1_700_000_000.0 + i, f"c{i:07d}", Event("cart_add", {"value": 40.0 + i}), f"m-{i}")
               for i in range(100)]
    benchmark(encode_frame, 1, entries)


def _actors(program: Any, count: int) -> list[Actor]:
    actors = []
    for i in range(count):
        actor = Actor(program, Profile(f"c{i:07d}", reach=REACH))
        actor.handle(Event("cart_add", {"value": 50.0}), 36000.0 + i)
        actors.append(actor)
    return actors


def test_snapshot_chunk_encode_1000_actors(benchmark: Any, program: Any) -> None:
    actors = _actors(program, 1000)
    benchmark(lambda: encode_chunk(to_chunk(actors)))


def test_snapshot_chunk_decode_1000_actors(benchmark: Any, program: Any) -> None:
    data = encode_chunk(to_chunk(_actors(program, 1000)))
    benchmark(lambda: actors_of(read_chunk(data, program)))


# -- the edge -----------------------------------------------------------------------------------------


def test_segment_batch_of_100_decoded(benchmark: Any) -> None:
    body = Traffic(load_scenario("cart_abandonment"), 1000, seed=1).batch(100, 1.7e9, 1.7e9)
    benchmark(lambda: to_messages(parse("batch", body)[0], 1.7e9))


# -- the outbox ----------------------------------------------------------------------------------------


class _TakesAll:
    async def send(self, send: Send) -> None:
        return None


def test_outbox_1000_sends_to_a_provider_that_takes_them_at_once(benchmark: Any) -> None:
    sends = [Send(f"c{i}", "j", 1, "hook", "webhook", "m", f"c{i}:j:1:hook:1", True) for i in range(1000)]

    async def through() -> None:
        outbox = Outbox({"webhook": _TakesAll()}, workers=8)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(outbox.run)
            for send in sends:
                outbox.deliver_nowait(send.customer, send, 0.0)
            outbox.close()

    benchmark(trio.run, through)
