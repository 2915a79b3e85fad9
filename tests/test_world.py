"""The synthetic world's model, answer by answer: what a send, a session or a purchase does.

A world is built here as the simulation builds it (a population, the scenario's tables, the keyed
draws), with a runtime that only records what the world posts and the wake-ups it asks for; the
tests hand it sends and wake-ups directly and read the receipts and purchases it posts. Because
draws are common random numbers (``scenarios.draws``), two worlds of the same seed answer a
customer's n-th message on a channel with the same numbers: a change that should not matter to
an answer is tested by comparing the answers exactly. The rates are compared on 20,000 customers,
with margins of several standard errors at the fixed seed.
"""

from __future__ import annotations

import copy
import io
import json
import math
import tomllib
from collections import Counter
from typing import Any

import numpy as np
import pytest
from rich.console import Console

from actors.errors import ScenarioError
from actors.messages import DeliveryReceipt, Event, Message, Send
from engine.runtime.simulation import Simulation
from engine.scenario_files import load_scenario, scenario_from_document
from reports.summary import print_summary
from scenarios.behaviour import CLICK_BUY, DAY_OPENS, RETURN, SESSION, World, WorldWake
from scenarios.config import load_simulation_config
from scenarios.draws import Draws
from scenarios.population import customer_id, generate_population
from scenarios.sessions import DAY, organic_purchase_chance

CUSTOMERS = 20_000
T0 = 1_699_956_000.0
QUIET = {"deliver": 1.0, "optout_h0": 0.0}  # every message arrives, nobody opts out


class Recorder:
    """The runtime's side of a world: what it posts, and the wake-ups it asks for."""

    def __init__(self) -> None:
        self.posted: list[tuple[float, int, Message]] = []
        self.wakes: list[tuple[float, int | None, WorldWake]] = []

    def post(self, at: float, customer: int, message: Message) -> None:
        self.posted.append((at, customer, message))

    def wake(self, at: float, customer: int | None, what: WorldWake) -> None:
        self.wakes.append((at, customer, what))

    def receipts(self, channel: str) -> list[tuple[float, int, DeliveryReceipt]]:
        return [(at, c, m) for at, c, m in self.posted
                if isinstance(m, DeliveryReceipt) and m.channel == channel]

    def purchases(self, customer: int) -> list[tuple[float, float]]:
        """``(at, value)`` of the customer's purchases, in the order the world posted them."""
        return [(at, m.properties["value"]) for at, c, m in self.posted
                if c == customer and isinstance(m, Event) and m.name == "purchase"]


def make_world(customers: int, world: dict[str, Any] | None = None,
               population: dict[str, Any] | None = None, seed: int = 1,
               session_rate: float | None = None) -> tuple[World, Recorder]:
    """A world of ``customers`` from ``[world]`` and ``[population]`` tables, as a file gives them
    (with every customer's sessions a day set to ``session_rate`` when it is given)."""
    document = {"world": world or {}, "population": population or {}}
    config = load_simulation_config(document, "world.toml")
    people = generate_population(config.population, customers, np.random.default_rng(seed))
    if session_rate is not None:
        for customer in range(customers):
            people.session_rate[customer] = session_rate
    runtime = Recorder()
    return World(people, config, Draws(seed), runtime.post, runtime.wake), runtime


def send_to_all(world: World, channel: str, message: str, at: float) -> None:
    for customer in range(world.population.size):
        who = customer_id(customer)
        world.on_send(customer, Send(who, "j", 1, channel, channel, message, f"{who}:{at}"), at)


def count(receipts: list[tuple[float, int, DeliveryReceipt]], *customers: int) -> Counter[str]:
    """Receipts by status, of ``customers`` only when any are named."""
    keep = set(customers)
    return Counter(r.status for _, c, r in receipts if not keep or c in keep)


def clicks_per_open(statuses: Counter[str]) -> float:
    return statuses["clicked"] / statuses["opened"]


# -- 1. the organic purchase chance is a probability ----------------------------------------------


def test_the_organic_purchase_chance_of_a_session_is_at_most_one():
    assert organic_purchase_chance(0.002, 0.35) == pytest.approx(0.002 / 0.35)
    assert organic_purchase_chance(0.002, 0.002) == 1.0
    assert organic_purchase_chance(0.002, 0.0004) == 1.0, "a rare visitor buys every time"


def test_an_organic_rate_above_the_session_rate_is_refused_naming_both():
    with pytest.raises(ScenarioError) as caught:
        load_simulation_config({"world": {"organic_purchase_per_day": 0.5}}, "organic.toml")
    text = str(caught.value)
    assert "organic.toml" in text and "field 'world.organic_purchase_per_day'" in text
    assert "population.sessions_per_day (0.35)" in text


# -- 2. an organic purchase is not the open cart's ------------------------------------------------

CART_WORLD = {
    "session_events": [{"event": "cart_add", "p": 1.0, "properties": {"value": {"const": 50.0}}}],
    "checkout_after_cart": 0.0,  # every cart is abandoned...
    "return_purchase": 1.0,  # ...and bought later anyway
    "return_delay_days": 1.0,
    "messages": {"cart_reminder": {"recovers_cart": True, "purchase_on_click": 1.0}},
}


def shopper_world() -> tuple[World, Recorder]:
    """Two customers who visit rarely (0.001 sessions a day, below the organic purchase rate of
    0.002): each session of theirs ends in an organic purchase, after a cart add of 50."""
    world, runtime = make_world(2, CART_WORLD, session_rate=0.001)
    world.session_clock.next_at[:] = T0  # both visit at T0: the day decides, the session plays
    world.on_wake(None, WorldWake(DAY_OPENS, int(T0 // DAY)), T0 - T0 % DAY)
    sessions = [(at, c, what) for at, c, what in runtime.wakes if what.kind == SESSION]
    assert [(at, c) for at, c, _ in sessions] == [(T0, 0), (T0, 1)]
    for at, customer, what in sessions:
        world.on_wake(customer, what, at)
    return world, runtime


def test_an_organic_purchase_leaves_the_open_cart_and_its_later_purchase():
    world, runtime = shopper_world()
    [(organic_at, organic_value)] = runtime.purchases(0)
    assert T0 <= organic_at <= T0 + 900.0 and organic_value != 50.0, "a purchase of something else"
    assert world.cart_value[0] == 50.0, "the cart stays open"
    [(returns_at, _, what)] = [w for w in runtime.wakes if w[1] == 0 and w[2].kind == RETURN]
    world.on_wake(0, what, returns_at)
    assert runtime.purchases(0)[1:] == [(returns_at, 50.0)], "the cart is bought later all the same"
    assert world.cart_value[0] == 0.0 and world.purchases == 3  # both customers' organic, one return


def test_an_organic_purchase_voids_no_click_on_a_cart_reminder():
    world, runtime = shopper_world()
    # a reminder went out as the cart was filled; its click leads to an order an hour later
    clicked = WorldWake(CLICK_BUY, 0, sent_at=T0, message="cart_reminder")
    world.on_wake(1, clicked, T0 + 3600.0)
    assert runtime.purchases(1)[1:] == [(T0 + 3600.0, 50.0)]
    assert world.orders_after_click == Counter({"cart_reminder": 1})


# -- 3. a bounced message adds no fatigue ---------------------------------------------------------


def test_bounced_messages_add_no_contact_pressure():
    """Every email bounces (deliver 0). Five bounced emails before a push leave the push's answers
    exactly as they are with no email at all: same opens, clicks and opt-outs, at the same times."""
    tables = {"channels": {"email": {"deliver": 0.0}, "push": {"deliver": 1.0}}}
    bounced, bounced_runtime = make_world(3_000, tables)
    for k in range(5):
        send_to_all(bounced, "email", "promo", T0 + k)
    send_to_all(bounced, "push", "promo", T0 + 3600.0)
    quiet, quiet_runtime = make_world(3_000, tables)
    send_to_all(quiet, "push", "promo", T0 + 3600.0)

    assert count(bounced_runtime.receipts("email")) == Counter({"bounced": 5 * 3_000})
    answers = quiet_runtime.receipts("push")
    assert count(answers)["opened"] > 300, "the push is answered, so the comparison says something"
    assert bounced_runtime.receipts("push") == answers
    assert list(bounced.pressure) == list(quiet.pressure)


# -- 4. appeal, propensity and fatigue move the click as they move the open -----------------------


def email_answers(world: dict[str, Any], message: str = "promo",
                  pressure_first: bool = False) -> tuple[World, list[tuple[float, int, DeliveryReceipt]]]:
    """Every customer's answer to one email (under the pressure of three SMS a minute earlier when
    ``pressure_first``: 6 units, a logit drop of 0.9, or 3.6 in the weariness class)."""
    tables = {"channels": {"email": QUIET, "sms": QUIET}, **world}
    world_, runtime = make_world(CUSTOMERS, tables)
    if pressure_first:
        for k in range(3):
            send_to_all(world_, "sms", "promo", T0 + k)
    send_to_all(world_, "email", message, T0 + 60.0)
    return world_, runtime.receipts("email")


def test_clicks_per_open_match_the_benchmark_across_the_population():
    """The click intercept is solved among openers: clicks per open at no pressure are the
    channel's ``click_given_open`` (0.102), though the customers who open lean to a high alpha."""
    _, answers = email_answers({})
    assert clicks_per_open(count(answers)) == pytest.approx(0.102, abs=0.012)


def test_appeal_raises_clicks_per_open_not_only_opens():
    _, plain = email_answers({})
    _, appealing = email_answers({"messages": {"promo": {"appeal": 1.0}}})
    assert count(appealing)["opened"] > 1.2 * count(plain)["opened"]
    # +1 on the logit multiplies the odds of a click by e: 0.102 becomes about 0.23
    assert clicks_per_open(count(appealing)) > 1.6 * clicks_per_open(count(plain))


def test_customers_who_like_the_channel_click_more_of_what_they_open():
    world, answers = email_answers({})
    alpha = world.population.alpha["email"]
    keen = [c for c in range(CUSTOMERS) if alpha[c] > 0.5]
    cool = [c for c in range(CUSTOMERS) if alpha[c] < -0.5]
    assert clicks_per_open(count(answers, *keen)) > 2 * clicks_per_open(count(answers, *cool))


def test_contact_pressure_lowers_clicks_per_open_too():
    _, rested = email_answers({})
    _, pressed = email_answers({}, pressure_first=True)
    assert count(pressed)["opened"] < 0.7 * count(rested)["opened"]
    assert clicks_per_open(count(pressed)) < 0.6 * clicks_per_open(count(rested))


def test_where_the_open_is_the_click_every_open_is_a_click_at_the_same_instant():
    """Push and SMS (``click_given_open = 1``): appeal and pressure move the open, and so the
    click, once; an open without its click would be a tap that did not tap."""
    tables = {"channels": {"push": QUIET, "sms": QUIET}, "messages": {"dull": {"appeal": -2.0}}}
    world, runtime = make_world(5_000, tables)
    for k in range(3):
        send_to_all(world, "sms", "dull", T0 + k)
    send_to_all(world, "push", "dull", T0 + 60.0)
    for channel in ("push", "sms"):
        receipts = runtime.receipts(channel)
        opened = sorted((at, c) for at, c, r in receipts if r.status == "opened")
        clicked = sorted((at, c) for at, c, r in receipts if r.status == "clicked")
        assert opened and opened == clicked, channel


# -- 5. the latency is a median -------------------------------------------------------------------


def test_latency_minutes_is_the_median_delay_to_the_open_and_the_mean_is_longer():
    _, answers = email_answers({})
    delays = np.asarray([at - (T0 + 60.0) for at, _, r in answers if r.status == "opened"])
    median = 120.0 * 60.0  # the email default, latency_minutes = 120
    assert float(np.median(delays)) == pytest.approx(median, rel=0.05)
    assert float(np.mean(delays)) == pytest.approx(math.exp(0.5) * median, rel=0.06)  # lognormal, sigma 1


# -- 6. every number of the world is checked where the file is read --------------------------------

GOOD_WORLD = """
[[journeys]]
id = "winback"
entry = { event = "cart_add" }
start = "done"

[journeys.steps.done]
end = true
"""


@pytest.mark.parametrize(
    ("table", "field", "words"),
    [
        ("[population]\nsessions_per_day = 0", "population.sessions_per_day", "positive number a day"),
        ("[population]\nsessions_per_day = inf", "population.sessions_per_day", "finite number"),
        ("[population]\nsession_rate_shape = 0.0", "population.session_rate_shape", "gamma shape"),
        ("[population]\ntz_hours = [0.0, 30.0]\ntz_weights = [1.0, 1.0]", "population.tz_hours[1]",
         "UTC offset in hours"),
        ("[population]\ntz_hours = [0.0, 1.0]\ntz_weights = [1.0, -1.0]", "population.tz_weights[1]",
         ">= 0"),
        ("[population]\ntz_hours = [0.0, 1.0]\ntz_weights = [0.0, 0.0]", "population.tz_weights",
         "at least one weight above 0"),
        ("[population]\npropensity_sd = -1.0", "population.propensity_sd", ">= 0"),
        ("[population]\nweary_share = 1.5", "population.weary_share", "probability in [0, 1]"),
        ("[world]\nreturn_delay_days = 0", "world.return_delay_days", "positive number of days"),
        ("[world]\nfatigue_tau_days = inf", "world.fatigue_tau_days", "finite number"),
        ("[world]\norganic_purchase_per_day = -0.1", "world.organic_purchase_per_day", ">= 0"),
        ("[world]\nfatigue_gamma = -0.15", "world.fatigue_gamma", ">= 0"),
        ("[world]\nweary_gamma = -0.6", "world.weary_gamma", ">= 0"),
        ("[world]\noptout_kappa = -0.5", "world.optout_kappa", ">= 0"),
        ("[world]\npurchase_value = [3.8, -0.6]", "world.purchase_value[1]", "sigma >= 0"),
        ("[world]\npurchase_value = [nan, 0.6]", "world.purchase_value[0]", "finite number"),
        ('[world]\nsession_events = [{ event = "cart_add", p = 0.1, properties = { value = '
         "{ lognormal = [3.8, -1.0] } } }]", "world.session_events[0].properties.value.lognormal[1]",
         "sigma >= 0"),
        ('[world]\nsession_events = [{ event = "cart_add", p = 0.1, properties = { value = '
         "{ uniform = [9.0, 1.0] } } }]", "world.session_events[0].properties.value.uniform",
         "low <= high"),
        ("[world.messages.nudge]\nappeal = 50.0", "world.messages.nudge.appeal", "logit shift in [-10, 10]"),
        ("[world.channels.email]\nweight = -1.0", "world.channels.email.weight", ">= 0"),
        ("[world.channels.sms]\nweight = inf", "world.channels.sms.weight", "finite number"),
        ("[world.channels.push]\nlatency_minutes = -5.0", "world.channels.push.latency_minutes", ">= 0"),
        ("[world.channels.push]\nclick_given_open = 1.1", "world.channels.push.click_given_open",
         "probability in [0, 1]"),
    ],
)
def test_a_bad_number_of_the_world_is_refused_naming_its_field(table, field, words):
    with pytest.raises(ScenarioError) as caught:
        scenario_from_document(tomllib.loads(GOOD_WORLD + table), "bad_world.toml")
    text = str(caught.value)
    assert text.startswith("bad_world.toml, "), text
    assert f"field '{field}'" in text and words in text, text


# -- 7. a holdout of 1: send to no one -------------------------------------------------------------


def test_a_journey_that_holds_everyone_out_runs_sends_nothing_and_reports_sensibly():
    cart = load_scenario("cart_abandonment")
    document = copy.deepcopy(cart.document)
    document["journeys"][0]["holdout"] = 1.0
    scenario = scenario_from_document(document, "cart_no_one.toml")
    assert scenario.program.journeys[0].holdout == 1.0

    sim = Simulation(scenario, 2_000, 10.0, 1)
    sim.run()
    metrics = sim.metrics.to_dict()
    journey = metrics["journeys"]["cart_abandonment"]
    assert metrics["messages"]["total"] == 0 and metrics["opt_outs"]["total"] == 0
    assert journey["treated"]["entrants"] == 0 and journey["treated"]["rate"] is None
    assert journey["holdout"]["entrants"] == journey["entrants"] > 200
    assert journey["exits"] == {"holdout": journey["entrants"]}
    assert 0.2 < journey["holdout"]["rate"] < 0.7, "the no-message baseline is measured"
    assert set(journey["lift"].values()) == {None} and journey["incremental_conversions"] is None
    json.dumps(metrics, allow_nan=False)  # no NaN, no infinity: nothing divided by an empty group

    out = io.StringIO()  # and the table printed after a run shows it, "-" where there is no rate
    print_summary(Console(file=out, width=120),
                  {**metrics, "scenario": "cart_no_one", "customers": 2_000, "days": 10.0})
    assert "cart_abandonment" in out.getvalue()
