"""Agent queues behave as M/M/c: the simulated desk agrees with Erlang C (REFERENCE.md s5)."""

from __future__ import annotations

import math

import pytest
import simpy

from actors.durations import Duration
from engine.runtime.agents import AgentDesk
from scenarios.config import AgentQueueSpec
from scenarios.draws import Draws


def erlang_c(rate: float, handle: float, agents: int) -> tuple[float, float, float]:
    """P(wait), average speed of answer, service level at 20 s."""
    load = rate * handle
    top = load**agents / math.factorial(agents) * agents / (agents - load)
    p_wait = top / (sum(load**k / math.factorial(k) for k in range(agents)) + top)
    asa = p_wait * handle / (agents - load)
    service_level = 1 - p_wait * math.exp(-(agents - load) * 20 / handle)
    return p_wait, asa, service_level


def test_the_reference_check_values() -> None:
    p_wait, asa, service_level = erlang_c(360 / 1800, 240, 55)
    assert (p_wait, asa, service_level) == pytest.approx((0.2387, 8.18, 0.8668), rel=1e-3)


def test_simulated_desk_matches_erlang_c() -> None:
    env = simpy.Environment()
    spec = AgentQueueSpec(
        agents=55, handle_time=Duration(240), service_level=Duration(20), patience=Duration(52 * 604800),
        first_reply=Duration(30),
    )
    resolved: list[tuple[float, int]] = []
    desk = AgentDesk(env, {"support": spec}, Draws(7),
                     lambda at, customer, message: resolved.append((at, customer)))
    arrivals = Draws(8)
    calls, at = 40_000, 0.0
    for customer in range(calls):
        at += arrivals.exponential(1800 / 360)
        desk.escalate(customer, "support", at)
    env.run()
    stats = desk.statistics(horizon=at)["support"]
    _, asa, service_level = erlang_c(360 / 1800, 240, 55)
    assert stats["cases"] == calls and stats["abandoned"] == 0 and len(resolved) == calls
    assert stats["handle_time_mean_s"] == pytest.approx(240, rel=0.03)
    assert stats["wait_mean_s"] == pytest.approx(asa, rel=0.25)
    # the first reply comes after pick-up, within the handling
    assert asa < stats["first_response_mean_s"] <= stats["wait_mean_s"] + 30 * 1.05
    assert stats["service_level"] == pytest.approx(service_level, abs=0.03)
    assert stats["occupancy"] == pytest.approx(48 / 55, rel=0.05)


def test_impatient_customers_abandon() -> None:
    env = simpy.Environment()
    spec = AgentQueueSpec(agents=1, handle_time=Duration(30 * 60), patience=Duration(60))
    desk = AgentDesk(env, {"support": spec}, Draws(1), lambda *a: None)
    for customer in range(50):
        desk.escalate(customer, "support", customer * 10.0)
    env.run()
    stats = desk.statistics(horizon=env.now)["support"]
    assert stats["abandoned"] > 40
    assert stats["abandonment_rate"] == stats["abandoned"] / 50
