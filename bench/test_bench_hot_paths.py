"""Micro-benchmarks of the hot paths (pytest-benchmark; not part of the test run).

    .venv/bin/pytest bench --benchmark-only

Each benchmark sits beside ``test_bare_loop_ceiling``, the same bare loop as bench/ceiling.py
over 10,000 events, so the figures can be read as ratios on a noisy machine.
"""

from __future__ import annotations

from typing import Any

import pytest

from actors.actor import Actor
from actors.messages import Event, TimerFired
from actors.profile import CHANNEL_BIT, Profile
from bench.ceiling import bare_loop_events_per_second
from engine.runtime.scheduler import TimerQueue
from engine.scenario_files import load_scenario

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
