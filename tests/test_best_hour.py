"""Best send time: a ``wait = "best_hour"`` step holds the message until the local hour the
customer has most often opened or clicked at, within a bound, with the policy's default hour for
a customer with too little history; the engine reports which it used."""

from __future__ import annotations

import pytest
from harness import HOUR, T0, compile_toml, make_actor

from actors.codec import decode, encode
from actors.messages import DeliveryReceipt, Event, Schedule, Timed
from engine.runtime.simulation import Simulation
from engine.scenario_files import load_scenario, scenario_from_document

DESIGN = """
[policy]
best_hour = {{ within = "{within}", default = "19:00", min_history = 3 }}

[[journeys]]
id = "promo"
entry = {{ event = "browse" }}
start = "best"
[journeys.steps.best]
wait = "best_hour"
next = "send"
[journeys.steps.send]
send = {{ message = "promo", channel = "email" }}
next = "end"
[journeys.steps.end]
end = true
"""
TOKYO = 9 * HOUR  # (T0 is 10:00 UTC: 19:00 in Tokyo)


def opened(actor, at: float) -> None:
    actor.handle(DeliveryReceipt("promo", 1, "email", "promo", "opened"), at)


def waits(effects) -> tuple[float, bool]:
    [timed] = [e for e in effects if isinstance(e, Timed)]
    [timer] = [e for e in effects if isinstance(e, Schedule)]
    return timer.at, timed.own


def test_a_customer_with_history_waits_for_their_own_hour():
    actor = make_actor(compile_toml(DESIGN.format(within="24h")), channels=("email",), tz_offset=TOKYO)
    for day in (0, 1, 2):  # opens at 07:10 Tokyo time, three mornings
        opened(actor, T0 - 3 * 86400 + day * 86400 - 12 * HOUR + 10 * 60)
    opened(actor, T0 - 2 * HOUR)  # one at 17:00
    at, own = waits(actor.handle(Event("browse"), T0))
    assert own and at == T0 + 12 * HOUR  # 07:00 Tokyo tomorrow
    assert decode(encode(actor), actor.program) == actor  # (the hours are part of the snapshot)


def test_a_new_customer_waits_for_the_default_hour_and_the_bound_holds():
    actor = make_actor(compile_toml(DESIGN.format(within="24h")), channels=("email",))
    at, own = waits(actor.handle(Event("browse"), T0))
    assert not own and at == T0 + 9 * HOUR  # 19:00 UTC
    bounded = make_actor(compile_toml(DESIGN.format(within="2h")), channels=("email",))
    at, _ = waits(bounded.handle(Event("browse"), T0))
    assert at == T0 + 2 * HOUR


@pytest.mark.slow
def test_the_simulation_reports_how_often_a_customers_own_hour_was_used():
    document = load_scenario("cart_abandonment").document  # the first reminder at the best hour
    document["journeys"][0]["steps"]["wait_1h"] = {"wait": "best_hour", "next": "push"}
    best = scenario_from_document(document, "best_hour.toml")
    sim = Simulation(best, customers=3_000, days=21, seed=2)
    sim.run()
    used = sim.metrics.to_dict()["journeys"]["cart_abandonment"]["best_send_time"]
    assert used["own_history"] > 0 and used["default"] > used["own_history"]
