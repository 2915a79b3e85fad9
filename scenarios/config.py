"""The simulator's part of a scenario file: ``[population]``, ``[world]`` and ``[agents]``.

Every default is calibrated from ``shared/REFERENCE.md`` (the source is named beside it) or marked
as an assumption to calibrate. Validation works as for journeys: a bad value raises a
``ScenarioError`` naming the file, the table and the field.
"""

from __future__ import annotations

import math
import re
from types import UnionType
from typing import Any, get_args, get_type_hints

import msgspec

from actors.durations import parse_duration, parse_time_of_day
from actors.errors import ScenarioError
from actors.messages import CHANNELS, Scalar


class _Spec(msgspec.Struct, forbid_unknown_fields=True):
    pass


class PopulationConfig(_Spec):
    """Who the customers are."""

    sessions_per_day: float = 0.35  # assumption to calibrate: browsing sessions per customer-day
    session_rate_shape: float = 1.5  # assumption: gamma shape of per-customer session rates
    email_known: float = 0.92  # assumption: share of customers with an email address on file
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
    """How customers respond to one message.

    ``purchase_on_click`` is the chance that a click leads to an order (decided when the click
    happens); ``purchase_on_click_by_channel`` overrides it per channel, because a push tap, an SMS
    click and an email click are not the same intent. ``recovers_cart``: the message is about the
    open cart, so a click buys that cart and nothing when there is no open cart any more.
    """

    kind: str = "triggered"  # or "broadcast": selects the base response rates below
    purchase_on_click: float = 0.04  # Omnisend 2021: 0.10% orders per broadcast email / 2.5% clicks
    purchase_on_click_by_channel: dict[str, float] = {}
    recovers_cart: bool = False
    appeal: float = 0.0  # logit shift of open and click rates for this message


class ChannelModel(_Spec):
    """Base response rates of a channel per delivered message, and its fatigue weight.

    ``open`` and ``broadcast_open`` are population averages for a customer under no contact
    pressure: the world solves the logit intercept so that the average over the spread of
    ``alpha_i`` matches them. ``deliver`` is the share of addresses on file that accept messages; a
    bounce is a property of the address (it bounces every time), not of one send.
    """

    deliver: float
    open: float
    click_given_open: float
    broadcast_open: float
    optout_h0: float
    weight: float
    latency_minutes: float
    broadcast_click_given_open: float | None = None  # None: the same as click_given_open


def _default_channels() -> dict[str, ChannelModel]:
    # Fields: deliver, open, click_given_open, broadcast_open, optout_h0, weight, latency_minutes,
    # broadcast_click_given_open. deliver (addresses on file that accept messages, 0.98 / 0.97 /
    # 0.95) and latency are assumptions to calibrate; weights email : SMS : push = 1 : 2 : 1.5 and
    # kappa are REFERENCE s2's assumption.
    return {
        # Klaviyo 2024 flows: open 52%, click 5.3% (5.3 / 52 = 0.102 of opens);
        # Mailchimp 2019 broadcast: open 21%, click 2.5% (2.5 / 21 = 0.119 of opens).
        # h0: weekly email gives 0.2-0.25% opt-outs (REFERENCE s2): S = 1.58, kappa 0.5 -> 0.001.
        "email": ChannelModel(0.98, 0.52, 0.102, 0.21, 0.0010, 1.0, 120.0, 0.119),
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
    first_reply: str = "30s"  # assumption: mean time from pick-up to the agent's first reply
    resolve_event: str = "ticket_resolved"


class SimulationConfig(msgspec.Struct):
    """Everything the simulator reads from a scenario, validated."""

    population: PopulationConfig
    world: WorldConfig
    agents: dict[str, AgentQueueSpec]


def load_simulation_config(document: dict[str, Any], source: str) -> SimulationConfig:
    """Validate the simulator's tables of a parsed scenario.

    ``[world.channels.<name>]`` tables are merged field by field over the calibrated defaults, so a
    scenario can change one rate of one channel and keep the rest.

    Raises:
        ScenarioError: naming the file, the table and the field.
    """
    population = _convert(document.get("population", {}), PopulationConfig, "population", source)
    raw_world = document.get("world", {})
    if isinstance(raw_world, dict) and isinstance(raw_world.get("channels"), dict):
        for name in raw_world["channels"]:
            if name not in CHANNELS:
                _fail(source, f"world.channels.{name}", f"unknown channel; expected one of {list(CHANNELS)}")
        raw_world = {**raw_world, "channels": _with_default_channels(raw_world["channels"])}
    world = _convert(raw_world, WorldConfig, "world", source)
    agents = _convert(document.get("agents", {}), dict[str, AgentQueueSpec], "agents", source)
    config = SimulationConfig(population, world, agents)
    _check_meaning(config, source)
    return config


def _with_default_channels(raw: dict[str, Any]) -> dict[str, Any]:
    merged = {name: msgspec.structs.asdict(model) for name, model in _default_channels().items()}
    for name, fields in raw.items():
        merged[name] = {**merged.get(name, {}), **fields} if isinstance(fields, dict) else fields
    return merged


_AT = re.compile(r" - at `\$(.*)`$")
_PART = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")
_UNKNOWN = re.compile(r"^Object contains unknown field `(.*)`$")


def _convert(raw: object, spec: Any, table: str, source: str) -> Any:
    """msgspec conversion with the failing field named in full (``world.messages.nudge.kind``)."""
    try:
        return msgspec.convert(raw, spec)
    except msgspec.ValidationError as exc:
        text = str(exc)
        match = _AT.search(text)
        message = _AT.sub("", text)
        path, where = _locate(raw, spec, match.group(1) if match else "")
        unknown = _UNKNOWN.match(message)
        if unknown:
            path += f".{unknown.group(1)}"
            accepted = [f.encode_name for f in msgspec.structs.fields(where)] if where else []
            message = f"unknown field `{unknown.group(1)}`; expected one of {accepted}"
        raise ScenarioError(message, source=source, field=table + path) from None


def _locate(raw: Any, spec: Any, path: str) -> tuple[str, Any]:
    """Resolve msgspec's error path, naming the table keys it shows as ``[...]``.

    Returns:
        The path with keys filled in, and the type found there (a Struct class, or None).
    """
    out = ""
    for name, index in _PART.findall(path):
        spec = _without_none(spec)
        if name:
            spec = get_type_hints(spec).get(name) if isinstance(spec, type) else None
            raw, out = (raw.get(name) if isinstance(raw, dict) else None), f"{out}.{name}"
        elif index == "...":
            spec = get_args(spec)[-1] if get_args(spec) else None
            key = _failing_key(raw, spec)
            raw, out = (raw.get(key) if isinstance(raw, dict) else None), f"{out}.{key}"
        else:
            spec = get_args(spec)[0] if get_args(spec) else None
            raw, out = (raw[int(index)] if isinstance(raw, list) else None), f"{out}[{index}]"
    spec = _without_none(spec)
    struct = spec if isinstance(spec, type) and issubclass(spec, msgspec.Struct) else None
    return out, struct


def _without_none(spec: Any) -> Any:
    options = [t for t in get_args(spec) if t is not type(None)] if isinstance(spec, UnionType) else []
    return options[0] if len(options) == 1 else spec


def _failing_key(raw: Any, spec: Any) -> str:
    if isinstance(raw, dict) and spec is not None:
        for key, value in raw.items():
            try:
                msgspec.convert(value, spec)
            except msgspec.ValidationError:
                return str(key)
    return "..."


def _check_meaning(config: SimulationConfig, source: str) -> None:
    _check_population(config.population, source)
    _check_world(config.world, source)
    _check_agents(config.agents, source)


def _fail(source: str, field: str, message: str) -> None:
    raise ScenarioError(message, source=source, field=field)


def _check_fractions(spec: Any, names: tuple[str, ...], prefix: str, source: str) -> None:
    for name in names:
        if not 0.0 <= getattr(spec, name) <= 1.0:
            _fail(source, f"{prefix}.{name}", "expected a probability in [0, 1]")


def _check_population(pop: PopulationConfig, source: str) -> None:
    _check_fractions(pop, ("email_known", "push_opt_in", "sms_consent", "weary_share"), "population", source)
    if len(pop.tz_hours) != len(pop.tz_weights) or not pop.tz_hours:
        _fail(source, "population.tz_weights", "expected one weight per entry of tz_hours")
    for field in ("active_start", "active_end"):
        _parsed(parse_time_of_day, getattr(pop, field), f"population.{field}", source)
    if not math.isfinite(pop.sessions_per_day) or pop.sessions_per_day <= 0:
        _fail(source, "population.sessions_per_day", "expected a positive rate")


def _check_world(world: WorldConfig, source: str) -> None:
    _check_fractions(world, ("checkout_after_cart", "return_purchase"), "world", source)
    if world.fatigue_tau_days <= 0:
        _fail(source, "world.fatigue_tau_days", "expected a positive number of days")
    if len(world.purchase_value) != 2:
        _fail(source, "world.purchase_value", "expected [mu, sigma] of a lognormal")
    for i, event in enumerate(world.session_events):
        where = f"world.session_events[{i}]"
        _check_fractions(event, ("p",), where, source)
        for name, prop in event.properties.items():
            _check_property(prop, f"{where}.properties.{name}", source)
    for i, broadcast in enumerate(world.broadcasts):
        where = f"world.broadcasts[{i}]"
        _parsed(parse_duration, broadcast.every, f"{where}.every", source)
        _parsed(lambda text: parse_duration(text, allow_zero=True), broadcast.first, f"{where}.first", source)
        _parsed(parse_time_of_day, broadcast.at, f"{where}.at", source)
    for name, message in world.messages.items():
        _check_message(message, f"world.messages.{name}", source)
    for name, model in world.channels.items():
        _check_channel_model(name, model, source)


def _check_message(message: MessageSpec, where: str, source: str) -> None:
    if message.kind not in ("triggered", "broadcast"):
        _fail(source, f"{where}.kind", f"{message.kind!r}: expected 'triggered' or 'broadcast'")
    _check_fractions(message, ("purchase_on_click",), where, source)
    for channel, p in message.purchase_on_click_by_channel.items():
        field = f"{where}.purchase_on_click_by_channel.{channel}"
        if channel not in CHANNELS:
            _fail(source, field, f"unknown channel {channel!r}; expected one of {list(CHANNELS)}")
        if not 0.0 <= p <= 1.0:
            _fail(source, field, "expected a probability in [0, 1]")


def _check_channel_model(name: str, model: ChannelModel, source: str) -> None:
    where = f"world.channels.{name}"
    fractions = ("deliver", "open", "click_given_open", "broadcast_open", "optout_h0")
    _check_fractions(model, fractions, where, source)
    if model.broadcast_click_given_open is not None:
        _check_fractions(model, ("broadcast_click_given_open",), where, source)
    for field in ("weight", "latency_minutes"):
        if getattr(model, field) < 0:
            _fail(source, f"{where}.{field}", "expected a number >= 0")


def _check_agents(agents: dict[str, AgentQueueSpec], source: str) -> None:
    for name, queue in agents.items():
        if queue.agents < 1:
            _fail(source, f"agents.{name}.agents", "a queue needs at least one agent")
        for field in ("handle_time", "service_level", "patience", "first_reply"):
            _parsed(parse_duration, getattr(queue, field), f"agents.{name}.{field}", source)


def _check_property(spec: PropertySpec, field: str, source: str) -> None:
    kinds = [k for k in ("uniform", "lognormal", "choice") if getattr(spec, k) is not None]
    if len(kinds) > 1 or (kinds and spec.const is not None):
        _fail(source, field, "give one of const, uniform, lognormal or choice")
    for kind in ("uniform", "lognormal"):
        values = getattr(spec, kind)
        if values is not None and len(values) != 2:
            _fail(source, f"{field}.{kind}", f"{kind} takes two numbers, e.g. [0.0, 1.0]")
    if spec.choice is not None and not spec.choice:
        _fail(source, f"{field}.choice", "choice needs at least one value")


def _parsed(parse: Any, text: object, field: str, source: str) -> None:
    """Run a duration or time-of-day parser, locating its error at ``field``."""
    try:
        parse(text)
    except ScenarioError as exc:
        raise exc.located(source=source, field=field) from None
