"""The simulator's part of a scenario file: ``[population]``, ``[world]`` and ``[agents]``.

Every default is calibrated from ``shared/REFERENCE.md`` (the source is named beside it) or marked
as an assumption to calibrate. Validation works as for journeys: a bad value raises a
``ScenarioError`` naming the file, the table and the field.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec

from actors.durations import parse_duration, parse_time_of_day
from actors.errors import ScenarioError
from actors.messages import Scalar


class _Spec(msgspec.Struct, forbid_unknown_fields=True):
    pass


class PopulationConfig(_Spec):
    """Who the customers are."""

    sessions_per_day: float = 0.35  # assumption to calibrate: browsing sessions per customer-day
    session_rate_shape: float = 1.5  # assumption: gamma shape of per-customer session rates
    email_known: float = 0.92  # assumption: share of customers with a deliverable address
    push_opt_in: float = 0.61  # Batch 2025: 67% Android / 56% iOS, an even mix
    sms_consent: float = 0.30  # assumption to calibrate: SMS marketing consent
    tz_hours: list[float] = msgspec.field(default_factory=lambda: [-8.0, -6.0, -5.0, 0.0, 1.0])
    tz_weights: list[float] = msgspec.field(default_factory=lambda: [0.2, 0.15, 0.3, 0.15, 0.2])
    active_start: str = "08:00"  # assumption: sessions happen in local waking hours
    active_end: str = "23:00"
    propensity_sd: float = 1.0  # assumption: spread of alpha_i on the logit scale (REFERENCE s2)
    weary_share: float = 0.24  # Chae, Bruno & Feinberg (JMR 2019): 24% "weariness" class


class PropertySpec(_Spec):
    """How to draw one event property: a constant, ``uniform``, ``lognormal`` or ``choice``."""

    const: Scalar = None
    uniform: list[float] | None = None
    lognormal: list[float] | None = None
    choice: list[Scalar] | None = None


class SessionEventSpec(_Spec):
    """An event a session produces with probability ``p``, with drawn properties."""

    event: str
    p: float
    properties: dict[str, PropertySpec] = {}


class BroadcastSpec(_Spec):
    """An event sent to every customer on a calendar (drives scheduled designs)."""

    event: str
    every: str = "7d"
    first: str = "1d"
    at: str = "10:00"


class MessageSpec(_Spec):
    """How customers respond to one message."""

    kind: str = "triggered"  # or "broadcast": selects the base response rates below
    purchase_on_click: float = 0.04  # Omnisend 2021: 0.10% orders per broadcast email / 2.5% clicks
    appeal: float = 0.0  # logit shift of open and click rates for this message


class ChannelModel(_Spec):
    """Base response rates of a channel per delivered message, and its fatigue weight."""

    deliver: float
    open: float
    click_given_open: float
    broadcast_open: float
    optout_h0: float
    weight: float
    latency_minutes: float


def _default_channels() -> dict[str, ChannelModel]:
    return {
        # Klaviyo 2024 flows: open 52%, click 5.3%; Mailchimp 2019 broadcast: open 21%, click 2.5%.
        # h0: weekly email gives 0.2-0.25% opt-outs (REFERENCE s2): S = 1.58, kappa 0.5 -> 0.001.
        "email": ChannelModel(0.98, 0.52, 0.102, 0.21, 0.0010, 1.0, 120.0),
        # Klaviyo SMS: click 9-14%, opt-out 0.5-1.2% per weekly send (weight 2, S = 3.16).
        "sms": ChannelModel(0.97, 0.11, 1.0, 0.11, 0.0017, 2.0, 4.0),
        # Batch 2025: push open 14.4% triggered, 4.2% generic; Localytics 2017 for disabling.
        "push": ChannelModel(0.95, 0.144, 1.0, 0.042, 0.0030, 1.5, 10.0),
        # assumption: an in-app message is seen inside the session that shows it
        "in_app": ChannelModel(1.0, 0.10, 1.0, 0.05, 0.0, 0.5, 1.0),
        "webhook": ChannelModel(1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    }


class WorldConfig(_Spec):
    """How customers behave."""

    session_events: list[SessionEventSpec] = []
    broadcasts: list[BroadcastSpec] = []
    checkout_after_cart: float = 0.2981  # Baymard: 70.19% of carts are abandoned
    return_purchase: float = 0.10  # assumption to calibrate: abandoned carts bought later anyway
    return_delay_days: float = 2.0  # assumption: mean delay of that purchase (exponential)
    organic_purchase_per_day: float = 0.002  # assumption: purchases with no cart in the sim
    purchase_value: list[float] = msgspec.field(default_factory=lambda: [3.8, 0.6])  # lognormal
    fatigue_tau_days: float = 7.0  # REFERENCE s2: tau about 7 days
    fatigue_gamma: float = 0.15  # assumption: logit drop per unit of contact pressure
    weary_gamma: float = 0.6  # assumption: the same for the weariness class
    optout_kappa: float = 0.5  # REFERENCE s2 hazard h = 1 - exp(-h0 exp(kappa S))
    channels: dict[str, ChannelModel] = msgspec.field(default_factory=_default_channels)
    messages: dict[str, MessageSpec] = {}


class AgentQueueSpec(_Spec):
    """An agent team modelled as a SimPy Resource."""

    agents: int = 3
    handle_time: str = "8m"  # assumption: mean handle time (exponential)
    service_level: str = "60s"  # answered within this counts toward the service level
    patience: str = "10m"  # mean time a customer waits before abandoning (exponential)
    resolve_event: str = "ticket_resolved"


class SimulationConfig(msgspec.Struct):
    """Everything the simulator reads from a scenario, validated."""

    population: PopulationConfig
    world: WorldConfig
    agents: dict[str, AgentQueueSpec]


def load_simulation_config(document: dict[str, Any], source: str) -> SimulationConfig:
    """Validate the simulator's tables of a parsed scenario.

    Raises:
        ScenarioError: naming the file, the table and the field.
    """
    parts: dict[str, Any] = {}
    for table, spec in (("population", PopulationConfig), ("world", WorldConfig)):
        parts[table] = _convert(document.get(table, {}), spec, table, source)
    agents = _convert(document.get("agents", {}), dict[str, AgentQueueSpec], "agents", source)
    config = SimulationConfig(parts["population"], parts["world"], agents)
    _check_meaning(config, source)
    return config


def _convert(raw: object, spec: Any, table: str, source: str) -> Any:
    try:
        return msgspec.convert(raw, spec)
    except msgspec.ValidationError as exc:
        text = str(exc)
        message, _, path = text.partition(" - at `$")
        field = table + path.rstrip("`")
        raise ScenarioError(message.replace("Object contains", ""), source=source, field=field) from None


def _check_meaning(config: SimulationConfig, source: str) -> None:
    def fail(field: str, message: str) -> None:
        raise ScenarioError(message, source=source, field=field)

    pop, world = config.population, config.world
    for name in ("email_known", "push_opt_in", "sms_consent", "weary_share"):
        if not 0.0 <= getattr(pop, name) <= 1.0:
            fail(f"population.{name}", "expected a fraction in [0, 1]")
    if len(pop.tz_hours) != len(pop.tz_weights) or not pop.tz_hours:
        fail("population.tz_weights", "expected one weight per entry of tz_hours")
    for field in ("active_start", "active_end"):
        _guard(lambda f=field: parse_time_of_day(getattr(pop, f)), f"population.{field}", source)
    for i, ev in enumerate(world.session_events):
        if not 0.0 <= ev.p <= 1.0:
            fail(f"world.session_events[{i}].p", "expected a probability in [0, 1]")
    for i, b in enumerate(world.broadcasts):
        for field in ("every", "first"):
            _guard(lambda f=field: parse_duration(getattr(b, f), allow_zero=True), f"world.broadcasts[{i}].{field}", source)
        _guard(lambda: parse_time_of_day(b.at), f"world.broadcasts[{i}].at", source)
    for name, msg in world.messages.items():
        if msg.kind not in ("triggered", "broadcast"):
            fail(f"world.messages.{name}.kind", "expected 'triggered' or 'broadcast'")
    for name, queue in config.agents.items():
        if queue.agents < 1:
            fail(f"agents.{name}.agents", "a queue needs at least one agent")
        for field in ("handle_time", "service_level", "patience"):
            _guard(lambda f=field: parse_duration(getattr(queue, f)), f"agents.{name}.{field}", source)
    if not math.isfinite(pop.sessions_per_day) or pop.sessions_per_day <= 0:
        fail("population.sessions_per_day", "expected a positive rate")


def _guard(check: Any, field: str, source: str) -> None:
    try:
        check()
    except ScenarioError as exc:
        raise exc.located(source=source, field=field) from None

