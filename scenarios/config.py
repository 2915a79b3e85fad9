"""The simulator's part of a scenario file: ``[population]``, ``[world]`` and ``[agents]``.

Every default is calibrated from ``shared/REFERENCE.md`` (the source is named beside it) or marked
as an assumption to calibrate. Validation works as for journeys (``actors.validation``): a bad
value raises a ``ScenarioError`` naming the file, the table and the field; ranges are constraints
of the fields' types (every number with a range has one: probabilities in [0, 1], rates, spreads
and weights at least 0, shapes and durations above 0), durations and times of day are seconds
from the moment the file is read. What a type cannot say is checked after conversion
(``_check_meaning``): every number is finite (TOML writes ``inf`` and ``nan``, and a lower bound
lets ``inf`` through), the two numbers of a ``[mu, sigma]`` or ``uniform`` pair are in order, and
tables that must agree do.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import msgspec

from actors.durations import Delay, Duration, TimeOfDay
from actors.errors import ScenarioError
from actors.messages import CHANNELS, Scalar
from actors.validation import constraint, convert_part, dotted


class _Spec(msgspec.Struct, forbid_unknown_fields=True):
    pass


# The bounds of the fields, with the words an error says (``actors.validation.constraint``).
Probability = Annotated[float, constraint("expected a probability in [0, 1]", ge=0.0, le=1.0)]
_NotNegative = Annotated[float, constraint("expected a number >= 0", ge=0.0)]
_Days = Annotated[float, constraint("expected a positive number of days", gt=0.0)]
_PerDay = Annotated[float, constraint("expected a positive number a day", gt=0.0)]
_Shape = Annotated[float, constraint("expected a positive gamma shape", gt=0.0)]
_UtcOffset = Annotated[float, constraint("expected a UTC offset in hours, in [-12, 14]", ge=-12.0, le=14.0)]
_Appeal = Annotated[float, constraint("expected a logit shift in [-10, 10]", ge=-10.0, le=10.0)]
_TWO = {"min_length": 2, "max_length": 2}
SIMULATOR_TABLES = ("population", "world", "agents")  # what the simulator reads of a scenario
_MuSigma = Annotated[list[float], constraint("expected [mu, sigma] of a lognormal", **_TWO)]
_Uniform = Annotated[list[float], constraint("uniform takes two numbers, e.g. [0.0, 1.0]", **_TWO)]
_Lognormal = Annotated[list[float], constraint("lognormal takes two numbers, e.g. [0.0, 1.0]", **_TWO)]
_Choice = Annotated[list[Scalar], constraint("choice needs at least one value", min_length=1)]


class PopulationConfig(_Spec):
    """Who the customers are."""

    sessions_per_day: _PerDay = 0.35  # assumption to calibrate: browsing sessions per customer-day
    session_rate_shape: _Shape = 1.5  # assumption: gamma shape of per-customer session rates
    email_known: Probability = 0.92  # assumption: share of customers with an email address on file
    push_opt_in: Probability = 0.61  # Batch 2025: 67% Android / 56% iOS, an even mix
    sms_consent: Probability = 0.30  # assumption to calibrate: SMS marketing consent
    tz_hours: list[_UtcOffset] = msgspec.field(default_factory=lambda: [-8.0, -6.0, -5.0, 0.0, 1.0])
    tz_weights: list[_NotNegative] = msgspec.field(default_factory=lambda: [0.2, 0.15, 0.3, 0.15, 0.2])
    active_start: TimeOfDay = TimeOfDay(8 * 3600)  # "08:00"; assumption: sessions in waking hours
    active_end: TimeOfDay = TimeOfDay(23 * 3600)  # "23:00"
    propensity_sd: _NotNegative = 1.0  # assumption: spread of alpha_i on the logit scale (REFERENCE s2)
    weary_share: Probability = 0.24  # Chae, Bruno & Feinberg (JMR 2019): 24% "weariness" class


class PropertySpec(_Spec):
    """How to draw one event property: a constant, ``uniform``, ``lognormal`` or ``choice``."""

    const: Scalar = None
    uniform: _Uniform | None = None
    lognormal: _Lognormal | None = None
    choice: _Choice | None = None


class SessionEventSpec(_Spec):
    """An event a session produces with probability ``p``, with drawn properties."""

    event: str
    p: Probability
    properties: dict[str, PropertySpec] = {}


class BroadcastSpec(_Spec):
    """An event sent to every customer on a calendar (drives scheduled designs)."""

    event: str
    every: Duration = Duration(7 * 86400)  # "7d"
    first: Delay = Delay(86400)  # "1d"
    at: TimeOfDay = TimeOfDay(10 * 3600)  # "10:00"


class MessageSpec(_Spec):
    """How customers respond to one message.

    ``purchase_on_click`` is the chance that a click leads to an order (decided when the click
    happens); ``purchase_on_click_by_channel`` overrides it per channel, because a push tap, an SMS
    click and an email click are not the same intent. ``recovers_cart``: the message is about the
    open cart, so a click buys that cart and nothing when there is no open cart any more.
    ``appeal`` shifts the logit of the open and of the click given the open, as the customer's
    propensity and contact pressure do (``scenarios.responses``): +1 multiplies the odds of each
    by e. Where the open is the click (``click_given_open = 1``: a push tap, an SMS link) it moves
    the open, and so the click, once.
    """

    kind: str = "triggered"  # or "broadcast": selects the base response rates below
    purchase_on_click: Probability = 0.04  # Omnisend 2021: 0.10% orders per broadcast email / 2.5% clicks
    purchase_on_click_by_channel: dict[str, Probability] = {}
    recovers_cart: bool = False
    appeal: _Appeal = 0.0  # logit shift of open and click-given-open rates for this message


class ChannelModel(_Spec):
    """Base response rates of a channel per delivered message, and its fatigue weight.

    ``open`` and ``broadcast_open`` are population averages for a customer under no contact
    pressure: the world solves the logit intercept so that the average over the spread of
    ``alpha_i`` matches them. ``click_given_open`` and ``broadcast_click_given_open`` are clicks per
    open over the population under no pressure, and move with the customer, the message's appeal
    and the pressure as the open does; 1 means the open is the click (a push tap, an SMS link), 0
    that the channel has nothing to click. ``deliver`` is the share of addresses on file that
    accept messages; a bounce is a property of the address (it bounces every time), not of one
    send, and a bounced message adds no contact pressure. ``weight`` is what a delivered message
    adds to the contact pressure. ``latency_minutes`` is the median time from the send to the open:
    the delay is lognormal with that median and a log-scale sigma of 1, so its mean is e^0.5 = 1.65
    times the median; 0 is taken as 0.1 minute.
    """

    deliver: Probability
    open: Probability
    click_given_open: Probability
    broadcast_open: Probability
    optout_h0: Probability  # the opt-out hazard h0 of a delivered message at no pressure
    weight: _NotNegative
    latency_minutes: _NotNegative  # the median (not the mean) of the lognormal delay to the open
    broadcast_click_given_open: Probability | None = None  # None: the same as click_given_open


def _default_channels() -> dict[str, ChannelModel]:
    # Fields: deliver, open, click_given_open, broadcast_open, optout_h0, weight, latency_minutes,
    # broadcast_click_given_open. deliver (addresses on file that accept messages, 0.98 / 0.97 /
    # 0.95) and latency (the median minutes to the open) are assumptions to calibrate; weights
    # email : SMS : push = 1 : 2 : 1.5 and kappa are REFERENCE s2's assumption.
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
    """How customers behave.

    ``organic_purchase_per_day`` is the rate of purchases no cart and no message lead to: each
    session ends in one with the chance ``organic_purchase_per_day / r`` for a customer with ``r``
    sessions a day, at most 1 (a customer who visits less often buys at every session, so less
    often than the rate says; with the default rates, about one customer in 1,700). It may not
    exceed ``population.sessions_per_day``, where most customers would be capped. Such a purchase
    is of something else: its value is drawn from ``purchase_value``, and it leaves the open cart,
    that cart's later purchase and a purchase a click set in motion as they were (the engine sees
    a purchase event all the same: a journey that exits on a purchase exits).
    """

    session_events: list[SessionEventSpec] = []
    broadcasts: list[BroadcastSpec] = []
    checkout_after_cart: Probability = 0.2981  # Baymard: 70.19% of carts are abandoned
    return_purchase: Probability = 0.10  # assumption to calibrate: abandoned carts bought later anyway
    return_delay_days: _Days = 2.0  # assumption: mean delay of that purchase (exponential)
    organic_purchase_per_day: _NotNegative = 0.002  # assumption: purchases unrelated to any cart
    purchase_value: _MuSigma = msgspec.field(default_factory=lambda: [3.8, 0.6])  # sigma >= 0
    fatigue_tau_days: _Days = 7.0  # REFERENCE s2: tau about 7 days
    fatigue_gamma: _NotNegative = 0.15  # assumption: logit drop per unit of contact pressure
    weary_gamma: _NotNegative = 0.6  # assumption: the same for the weariness class
    optout_kappa: _NotNegative = 0.5  # REFERENCE s2 hazard h = 1 - exp(-h0 exp(kappa S))
    channels: dict[str, ChannelModel] = msgspec.field(default_factory=_default_channels)
    messages: dict[str, MessageSpec] = {}


class AgentQueueSpec(_Spec):
    """An agent team modelled as a SimPy Resource."""

    agents: Annotated[int, constraint("a queue needs at least one agent", ge=1)] = 3
    handle_time: Duration = Duration(8 * 60)  # "8m"; assumption: mean handle time (exponential)
    service_level: Duration = Duration(60)  # "60s": answered within this counts toward the level
    patience: Duration = Duration(10 * 60)  # "10m": mean wait before abandoning (exponential)
    first_reply: Duration = Duration(30)  # "30s"; assumption: mean time from pick-up to first reply
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


def _convert(raw: object, spec: Any, table: str, source: str) -> Any:
    """``raw`` as ``spec``, an error naming the field in full (``world.messages.nudge.kind``)."""
    try:
        return convert_part(raw, spec, table)
    except ScenarioError as exc:
        raise exc.located(source=source) from None


def _check_meaning(config: SimulationConfig, source: str) -> None:
    """What the fields' types cannot say: finite numbers, pairs in order, tables that must agree,
    and names that must exist."""
    not_finite = _not_finite_field(config, "")
    if not_finite is not None:  # (no bound says finite: ``gt=0`` lets ``inf`` through)
        _fail(source, not_finite, "expected a finite number")
    pop, world = config.population, config.world
    if len(pop.tz_hours) != len(pop.tz_weights) or not pop.tz_hours:
        _fail(source, "population.tz_weights", "expected one weight per entry of tz_hours")
    if sum(pop.tz_weights) <= 0:  # (each is >= 0 and finite by now)
        _fail(source, "population.tz_weights", "expected at least one weight above 0")
    if world.organic_purchase_per_day > pop.sessions_per_day:
        _fail(source, "world.organic_purchase_per_day",
              f"{world.organic_purchase_per_day:g} a day is more than population.sessions_per_day "
              f"({pop.sessions_per_day:g}): an organic purchase happens at a session, at most one a "
              f"session; expected at most {pop.sessions_per_day:g}")
    _check_sigma(world.purchase_value, "world.purchase_value", source)
    for i, event in enumerate(world.session_events):
        for name, prop in event.properties.items():
            _check_property(prop, f"world.session_events[{i}].properties.{name}", source)
    for name, message in world.messages.items():
        _check_message(message, f"world.messages.{name}", source)


def _check_message(message: MessageSpec, where: str, source: str) -> None:
    if message.kind not in ("triggered", "broadcast"):
        _fail(source, f"{where}.kind", f"{message.kind!r}: expected 'triggered' or 'broadcast'")
    for channel in message.purchase_on_click_by_channel:
        if channel not in CHANNELS:
            expected = f"unknown channel {channel!r}; expected one of {list(CHANNELS)}"
            _fail(source, f"{where}.purchase_on_click_by_channel.{channel}", expected)


def _fail(source: str, field: str, message: str) -> None:
    raise ScenarioError(message, source=source, field=field)


def _check_property(spec: PropertySpec, field: str, source: str) -> None:
    kinds = [k for k in ("uniform", "lognormal", "choice") if getattr(spec, k) is not None]
    if len(kinds) > 1 or (kinds and spec.const is not None):
        _fail(source, field, "give one of const, uniform, lognormal or choice")
    if spec.uniform is not None and spec.uniform[0] > spec.uniform[1]:
        _fail(source, f"{field}.uniform", f"{spec.uniform}: expected [low, high] with low <= high")
    if spec.lognormal is not None:
        _check_sigma(spec.lognormal, f"{field}.lognormal", source)


def _check_sigma(mu_sigma: list[float], field: str, source: str) -> None:
    """The sigma of a lognormal's ``[mu, sigma]`` is a spread: at least 0."""
    if mu_sigma[1] < 0:
        _fail(source, f"{field}[1]", f"{mu_sigma[1]:g}: expected a sigma >= 0 ([mu, sigma] of a lognormal)")


def _not_finite_field(value: object, where: str) -> str | None:
    """The dotted key of the first infinite or NaN number in ``value`` (a table, a list or a
    number), or None when there is none."""
    if isinstance(value, float):
        return None if math.isfinite(value) else where
    if isinstance(value, msgspec.Struct):
        items: Any = ((f.encode_name, getattr(value, f.name)) for f in msgspec.structs.fields(value))
    elif isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        return next((found for i, item in enumerate(value)
                     if (found := _not_finite_field(item, f"{where}[{i}]")) is not None), None)
    else:
        return None
    return next((found for key, item in items
                 if (found := _not_finite_field(item, dotted(where, str(key)))) is not None), None)
