"""One event script, two runtimes, one journey trace.

The simulation runtime (SimPy owns the clock) and the real-time runtime (trio, here on
``trio.testing.MockClock(autojump_threshold=0)``) drive the same actor core; fed the same script,
they must produce the identical sequence of effects, at the same times, for the same customers.
"""

from __future__ import annotations

import random
from collections import Counter

import anyio
import pytest
import trio
import trio.testing
from harness import HOUR, SCRIPT_CUSTOMERS, journey_path, make_script

from actors.messages import (
    Bought,
    CaseAction,
    Effect,
    Event,
    Exited,
    Identified,
    Message,
    Send,
    Submission,
    Suppressed,
)
from actors.profile import Profile
from engine.runtime.channels import MockChannel
from engine.runtime.realtime import RealtimeRuntime
from engine.runtime.simulation import DAY, Simulation
from engine.scenario_files import load_scenario
from scenarios.population import customer_id
from scenarios.replay import ScriptedWorld

DAYS = 12.0


def run_simulation(scenario, script) -> tuple[list[tuple[float, str, Effect]], Simulation]:
    trace: list[tuple[float, str, Effect]] = []
    world = ScriptedWorld.factory(script)
    sim = Simulation(scenario, SCRIPT_CUSTOMERS, DAYS, seed=5, world=world, trace=trace)
    sim.run()
    return trace, sim


Trace = list[tuple[float, str, Effect]]


def run_realtime(scenario, script, sim: Simulation) -> tuple[Trace, RealtimeRuntime]:
    population = sim.population

    def profile_of(cid: str) -> Profile:  # the very profiles the simulation gives its actors
        index = int(cid[1:])
        return Profile(cid, tz_offset=population.tz_offset[index], reach=population.reach[index])

    trace: list[tuple[float, str, Effect]] = []
    runtime = RealtimeRuntime(scenario.program, MockChannel(), profiles=profile_of, epoch=0.0, trace=trace)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(runtime.run)
            for at, customer, message in script:
                await trio.sleep_until(at)
                if message is AGENT_RESOLVES:  # an agent claims the customer's case and resolves it
                    cid = customer_id(customer)
                    case = next(c for c in runtime.desk.open.values() if c.customer == cid and not c.agent)
                    runtime.ingest_batch_nowait([Submission(cid, CaseAction(case.id, "claim", "ann")),
                                                 Submission(cid, CaseAction(case.id, "resolve", "ann",
                                                                            code="resolved"))])
                else:
                    runtime.ingest_nowait(customer_id(customer), message)
            await trio.sleep_until(DAYS * DAY)
            runtime.close()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return trace, runtime


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_simulation_and_realtime_give_the_identical_trace(seed: int) -> None:
    scenario = load_scenario("cart_abandonment")
    script = make_script(seed)
    sim_trace, sim = run_simulation(scenario, script)
    rt_trace, runtime = run_realtime(scenario, script, sim)
    channel = runtime.channel
    assert isinstance(channel, MockChannel)
    sends = [effect for _, _, effect in sim_trace if isinstance(effect, Send)]
    assert len(sends) >= 10, "the script should exercise the journey"
    assert any(type(e).__name__ == "Suppressed" for _, _, e in sim_trace)
    assert rt_trace == sim_trace
    assert [item for _, item in channel.delivered] == sends


def test_a_global_holdout_gives_the_identical_trace_in_both_runtimes() -> None:
    scenario = load_scenario("cart_abandonment").with_settings({"policy.global_holdout": 0.25})
    script = make_script(2)
    sim_trace, sim = run_simulation(scenario, script)
    rt_trace, runtime = run_realtime(scenario, script, sim)
    bought = [effect for _, _, effect in sim_trace if isinstance(effect, Bought)]
    assert any(b.held_out for b in bought) and not all(b.held_out for b in bought)
    assert rt_trace == sim_trace
    simulated, served = sim.metrics.to_dict()["program"], runtime.metrics.to_dict()["program"]
    for group in ("program", "held_out"):  # (customers: the population, against those seen)
        assert served[group]["buyers"] == simulated[group]["buyers"] > 0
        assert served[group]["revenue"] == simulated[group]["revenue"]


ZONES = ("Asia/Tokyo", "America/New_York", "Europe/Berlin", "Australia/Adelaide", "UTC")


def shop_script(seed: int) -> list[tuple[float, int, Message]]:
    """``make_script``'s customers with an IANA time zone each (an identify at time 0), half their
    carts and purchases under Segment's e-commerce names, and chats on two busy afternoons, some
    of them frustrated."""
    rng = random.Random(seed)
    script: list[tuple[float, int, Message]] = [
        (0.0, customer, Identified(traits={"timezone": ZONES[customer % len(ZONES)]}))
        for customer in range(SCRIPT_CUSTOMERS)]
    for at, customer, message in make_script(seed):
        if isinstance(message, Event) and message.name in ("cart_add", "purchase") and rng.random() < 0.5:
            value = message.properties["value"]
            message = (Event("Product Added", {"price": value, "quantity": 1}) if message.name == "cart_add"
                       else Event("Order Completed", {"revenue": value}))
        script.append((at, customer, message))
    for customer in range(SCRIPT_CUSTOMERS):
        for _ in range(rng.randint(0, 3)):
            chat = Event("chat_message", {"frustration": round(rng.random(), 2)})
            busy = rng.choice((1, 4)) * DAY + 12 * HOUR
            script.append((rng.uniform(busy, busy + 4 * HOUR), customer, chat))
    return sorted(script, key=lambda line: line[0])


@pytest.mark.parametrize("seed", [6, 7])
def test_time_zones_shop_names_a_split_and_an_agent_desk_give_the_identical_trace(seed: int) -> None:
    """The simulated desk answers the escalations (one agent: some chats wait, some give up);
    in the real-time runtime an agent claims and resolves each case over the production desk at
    the very time the simulated one resolved it, and the customers who gave up say so then. The
    two traces are the same, effect for effect."""
    scenario = load_scenario(str(journey_path("shop_and_support")))
    script = shop_script(seed)
    desk_said: list[tuple[float, int, Message]] = []  # what the simulated desk told the actors
    trace: Trace = []
    sim = Simulation(scenario, SCRIPT_CUSTOMERS, DAYS, seed=5, world=ScriptedWorld.factory(script),
                     trace=trace)
    tell = sim.agents.post
    sim.agents.post = lambda at, customer, message: (desk_said.append((at, customer, message)),
                                                     tell(at, customer, message))[1]
    sim.run()
    agents = [(at, customer, AGENT_RESOLVES if message.name == "ticket_resolved" else message)
              for at, customer, message in desk_said if isinstance(message, Event)]
    rt_trace, runtime = run_realtime(scenario, sorted(script + agents, key=lambda line: line[0]), sim)

    kinds = Counter(type(effect).__name__ for _, _, effect in trace)
    assert kinds["Escalated"] >= 5 and kinds["Converted"] >= 5, kinds
    assert sum(1 for _, _, e in trace if isinstance(e, Suppressed) and e.rule == "quiet_hours") >= 3
    assert {e.reason for _, _, e in trace if isinstance(e, Exited)} >= {"purchase", "chat_abandoned", "end"}
    resolved = [m for _, _, m in desk_said if isinstance(m, Event) and m.name == "ticket_resolved"]
    abandoned = [m for _, _, m in desk_said if isinstance(m, Event) and m.name == "chat_abandoned"]
    assert resolved and abandoned
    assert rt_trace == trace
    simulated, served = sim.agents.statistics(DAYS * DAY)["support"], runtime.desk.statistics()["support"]
    assert served["cases"] == simulated["cases"] == kinds["Escalated"]
    assert served["abandoned"] == simulated["abandoned"] == len(abandoned)
    assert served["answered"] == len(resolved)  # (each claimed and resolved through the desk)
    arms = runtime.metrics.to_dict()["journeys"]["cart_abandonment"]["splits"]["split"]
    assert all(arm["reached"] for arm in arms)


AGENT_RESOLVES = Event("__agent_resolves__")  # (a marker: run_realtime's agent claims and resolves)


def test_both_runtimes_give_the_same_funnel_and_split_arms() -> None:
    """A split journey: each arm's and each step's conversions after it (the steps a converting
    entry reached, as its ``Converted`` names them) are the same in both runtimes, which count
    them the same way; the arms share the treated conversions between them."""
    scenario = load_scenario(str(journey_path("cart_split_arms")))
    script = make_script(4)
    trace, sim = run_simulation(scenario, script)
    rt_trace, runtime = run_realtime(scenario, script, sim)
    assert rt_trace == trace
    served = runtime.metrics.to_dict()["journeys"]["cart_abandonment"]
    simulated = sim.metrics.to_dict()["journeys"]["cart_abandonment"]
    assert served["funnel"] == simulated["funnel"] and served["splits"] == simulated["splits"]
    conversions = served["treated"]["conversions"]
    arms = {arm["next"]: arm["converted_after"] for arm in served["splits"]["split"]}
    assert conversions >= 5 and all(arms.values()) and sum(arms.values()) == conversions
    steps = {row["step"]: row["converted_after"] for row in served["funnel"]}
    assert steps["split"] == conversions and steps["email"] <= steps["wait_a"] == arms["wait_a"]


@pytest.mark.anyio
async def test_realtime_runtime_runs_on_each_anyio_backend() -> None:
    scenario = load_scenario(str(journey_path("webhook_on_signup")))
    channel = MockChannel()
    runtime = RealtimeRuntime(scenario.program, channel, buffer=4)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(runtime.run)
        for i in range(3):
            await runtime.ingest(f"u{i}", Event("signup"))
        runtime.close()
    assert [(item.customer, item.channel) for _, item in channel.delivered] == [
        ("u0", "webhook"), ("u1", "webhook"), ("u2", "webhook")
    ]
    assert runtime.handled == 3 and abs(channel.delivered[0][0] - runtime.now()) < 60


def test_ingest_nowait_pushes_back_when_the_engine_is_saturated() -> None:
    scenario = load_scenario("cart_abandonment")

    async def main() -> None:
        runtime = RealtimeRuntime(scenario.program, MockChannel(), buffer=2)
        runtime.ingest_nowait("a", Event("page_view"))
        runtime.ingest_nowait("b", Event("page_view"))
        with pytest.raises(anyio.WouldBlock):
            runtime.ingest_nowait("c", Event("page_view"))

    trio.run(main)


@pytest.fixture(params=["trio", "asyncio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)
