"""A global holdout: customers no marketing journey enters, against whom the program's lift is
measured, the same way in both runtimes."""

from __future__ import annotations

import math
import signal
import tomllib

import httpx
import pytest
import trio
import trio.testing
from harness import DAY, T0, compile_toml, make_actor
from serving import ADMIN, KEY, start, stop

from actors.errors import ScenarioError
from actors.messages import Bought, Entered, Event, Merged
from actors.profile import CHANNEL_BIT, Profile
from engine.runtime.channels import MockChannel
from engine.runtime.realtime import RealtimeRuntime
from engine.runtime.simulation import Simulation
from engine.scenario_files import load_scenario, scenario_from_document
from scenarios.population import customer_id

JOURNEYS = """
[[journeys]]
id = "promo"
entry = { event = "cart_add" }
start = "mail"
[journeys.steps.mail]
send = { message = "promo", channel = "email" }
next = "done"
[journeys.steps.done]
end = true

[[journeys]]
id = "receipt"
entry = { event = "purchase" }
start = "mail"
[journeys.steps.mail]
send = { message = "receipt", channel = "email", transactional = true }
next = "done"
[journeys.steps.done]
end = true
"""


def program(share: float):
    return compile_toml(f"[policy]\nglobal_holdout = {share}\n" + JOURNEYS)


def test_the_held_out_enter_no_marketing_journey_and_their_purchases_say_so():
    policy = program(0.5).policy
    ids = [f"c{i}" for i in range(400)]
    held_out = [cid for cid in ids if policy.holds_out(cid)]
    assert 150 < len(held_out) < 250, "about half, by a stable draw from the id"
    assert all(program(0.5).policy.holds_out(cid) for cid in held_out)  # the same every time
    inside = next(cid for cid in ids if cid not in held_out)
    for cid, out in ((held_out[0], True), (inside, False)):
        actor = make_actor(program(0.5), cid, channels=("email",))
        entered = actor.handle(Event("cart_add", {"value": 10}), T0)
        assert (entered == []) is out, "the held out do not enter the promotion"
        effects = actor.handle(Event("purchase", {"value": 30}), T0 + DAY)
        assert effects[0] == Bought(30.0, True, out)
        assert Entered("receipt", 1, False) in effects, "a transactional journey enters all the same"
        assert actor.handle(Event("purchase", {"value": 5}), T0 + 2 * DAY)[0] == Bought(5.0, False, out)


def test_no_global_holdout_says_nothing_of_purchases():
    actor = make_actor(program(0.0), "c1", channels=("email",))
    effects = actor.handle(Event("purchase", {"value": 30}), T0)
    assert not any(isinstance(e, Bought) for e in effects)


@pytest.mark.parametrize("share", ["1.0", "-0.1", '"half"'])
def test_a_global_holdout_that_is_not_a_fraction_is_refused(share):
    with pytest.raises(ScenarioError) as caught:
        compile_toml(f"[policy]\nglobal_holdout = {share}\n" + JOURNEYS)
    assert "global_holdout" in str(caught.value)


def test_a_simulation_measures_the_programs_lift_over_its_whole_population():
    scenario = load_scenario("cart_abandonment").with_settings({"policy.global_holdout": 0.2})
    simulation = Simulation(scenario, 4_000, 20, seed=3)
    simulation.run()
    lift = simulation.metrics.to_dict()["program"]
    program_group, held_out = lift["program"], lift["held_out"]
    assert program_group["customers"] + held_out["customers"] == 4_000
    assert 650 < held_out["customers"] < 950
    assert held_out["buyers"] > 100 and program_group["buyers"] > 400
    rates = [program_group["buyers"] / program_group["customers"], held_out["buyers"] / held_out["customers"]]
    assert lift["lift"]["lift"] == pytest.approx(rates[0] - rates[1])  # buyers among customers
    se = math.sqrt(sum(r * (1 - r) / g["customers"] for r, g in zip(rates, (program_group, held_out),
                                                                      strict=True)))
    assert lift["lift"]["lift_ci95_high"] - lift["lift"]["lift"] == pytest.approx(1.96 * se, rel=1e-3)
    entered = simulation.metrics.outcomes().entered_all["cart_abandonment"]
    policy = scenario.program.policy
    out = [n for n in range(4_000) if policy.holds_out(customer_id(n))]
    assert len(out) == held_out["customers"]
    assert entered[out].sum() == 0 and entered.sum() > 1_000, "the held out never entered the cart journey"


def test_the_real_time_engine_counts_customers_seen_and_their_purchases():
    document = {"policy": {"global_holdout": 0.3}, **tomllib.loads(JOURNEYS)}
    scenario = scenario_from_document(document, "lift.toml")
    customers = [f"c{i:07d}" for i in range(60)]
    runtime = RealtimeRuntime(scenario.program, MockChannel(), epoch=T0,
                              profiles=lambda cid: Profile(cid, reach=CHANNEL_BIT["email"]))

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(runtime.run)
            for i, cid in enumerate(customers):
                runtime.ingest_nowait(cid, Event("purchase", {"value": 10 + i}))
                if i % 2:
                    runtime.ingest_nowait(cid, Event("purchase", {"value": 5}))  # a second one
                await trio.sleep(60.0)
            for i, cid in enumerate(customers[:20]):  # visitors who browse, then turn out to be them
                runtime.ingest_nowait(f"anon-{i}", Event("page_view"))
                await trio.sleep(60.0)
                runtime.ingest_nowait(cid, Merged(f"anon-{i}"))
                await trio.sleep(60.0)
            runtime.close()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    lift = runtime.metrics.program.to_dict()
    assert lift is not None
    out = [cid for cid in customers if scenario.program.policy.holds_out(cid)]
    assert lift["held_out"]["customers"] == lift["held_out"]["buyers"] == len(out) > 5
    assert lift["program"]["customers"] == lift["program"]["buyers"] == 60 - len(out)
    assert lift["program"]["purchases"] + lift["held_out"]["purchases"] == 90
    assert lift["lift"]["lift"] == 0.0  # everyone bought
    assert runtime.actor_count == 60  # (each visitor merged: one person, counted once)


def test_the_service_shows_the_programs_lift(tmp_path):
    scenario = tmp_path / "lift.toml"
    scenario.write_text("[policy]\nglobal_holdout = 0.3\n" + JOURNEYS)
    process, url = start(tmp_path / "data", "--admin-token", ADMIN, scenario=str(scenario))
    try:
        calls = [{"type": "track", "userId": f"u{i}", "event": "purchase", "properties": {"value": 20}}
                 for i in range(0, 40)]
        calls += [{"type": "track", "userId": f"u{i}", "event": "cart_add", "properties": {"value": 9}}
                  for i in range(40, 80)]
        posted = httpx.post(f"{url}/v1/batch", json={"batch": calls}, auth=(KEY, ""), timeout=30)
        assert posted.status_code == 200
        assert httpx.get(f"{url}/v1/program", timeout=30).status_code == 401
        bearer = {"authorization": f"Bearer {ADMIN}"}
        shown = httpx.get(f"{url}/v1/program", headers=bearer, timeout=30).json()
    finally:
        stop(process, signal.SIGTERM)
    policy = compile_toml("[policy]\nglobal_holdout = 0.3\n" + JOURNEYS).policy
    out = sum(policy.holds_out(f"u{i}") for i in range(80))
    assert shown["global_holdout"] == 0.3
    assert shown["held_out"]["customers"] == out and shown["program"]["customers"] == 80 - out
    assert shown["held_out"]["buyers"] + shown["program"]["buyers"] == 40
    assert shown["program"]["revenue"] + shown["held_out"]["revenue"] == 800.0
    assert shown["lift"]["lift_ci95_low"] <= shown["lift"]["lift"] <= shown["lift"]["lift_ci95_high"]
