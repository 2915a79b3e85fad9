"""The behaviour model: how synthetic customers browse, respond to messages, buy and opt out.

The world is the simulator's stand-in for customers and channel providers. It creates the events
that trigger journeys (browsing sessions with cart adds, transfers, chats...), reacts to every send
the engine makes (delivery, open, click, purchase, unsubscribe), and buys on its own too, so that
lift is real: an abandoned cart is bought later anyway with a baseline probability, and a message
only adds to that (REFERENCE.md section 1: attributed rates are not incremental).

Response to a delivered message (REFERENCE.md section 2):
    contact pressure   S_i(t) = sum_k w_ch exp(-(t - t_k) / tau)
    open               logit p = logit(base_ch) + alpha_i,ch + appeal - gamma_i S_i(t)
    opt-out hazard     h = 1 - exp(-h0_ch exp(kappa S_i(t)))

The world talks to its runtime through two callables: ``post(at, customer, message)`` hands a
message to a customer's actor at time ``at``; ``wake(at, customer, what)`` calls ``on_wake`` back.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable

from actors.durations import next_local_time, parse_duration, parse_time_of_day
from actors.messages import DeliveryReceipt, Event, Message, Properties, Send
from scenarios.config import MessageSpec, PropertySpec, SimulationConfig
from scenarios.draws import Draws
from scenarios.population import Population

Post = Callable[[float, int, Message], None]
Wake = Callable[[float, int, tuple[object, ...]], None]

SESSION, RETURN, BROADCAST = "session", "return", "broadcast"
_DEFAULT_MESSAGE = MessageSpec()


def _logit(p: float) -> float:
    p = min(max(p, 1e-9), 1 - 1e-9)
    return math.log(p / (1 - p))


class World:
    """Synthetic customers reacting to the engine.

    Args:
        population: the customers.
        config: the scenario's simulator tables.
        draws: the world's random stream.
        post: hands a message to a customer's actor at a time.
        wake: asks the runtime to call ``on_wake`` at a time.
    """

    def __init__(
        self, population: Population, config: SimulationConfig, draws: Draws, post: Post, wake: Wake
    ) -> None:
        self.population = population
        self.config = config.world
        self.draws = draws
        self.post = post
        self.wake = wake
        n = population.size
        self.pressure = array("d", bytes(8 * n))
        self.pressure_at = array("d", bytes(8 * n))
        self.cart_value = array("d", bytes(8 * n))  # 0: no open cart
        self.cart_no = array("l", bytes(array("l").itemsize * n))
        self._tau = self.config.fatigue_tau_days * 86400.0
        self._active_start = parse_time_of_day(config.population.active_start)
        self._active_end = parse_time_of_day(config.population.active_end)
        self._open_logit = {ch: _logit(m.open) for ch, m in self.config.channels.items()}
        self._broadcast_logit = {ch: _logit(m.broadcast_open) for ch, m in self.config.channels.items()}
        self.sessions = 0
        self.purchases = 0

    # -- starting ----------------------------------------------------------------------------------

    def start(self, horizon: float) -> None:
        """Schedule every customer's first session and the broadcast calendar up to ``horizon``."""
        rates = self.population.session_rate
        for customer in range(self.population.size):
            first = self.draws.exponential(86400.0 / rates[customer])
            self.wake(self._into_active_hours(first, customer), customer, (SESSION,))
        for index, spec in enumerate(self.config.broadcasts):
            every = parse_duration(spec.every)
            at = parse_duration(spec.first, allow_zero=True)
            while at < horizon:
                self.wake(at, -1, (BROADCAST, index))
                at += every

    def on_wake(self, customer: int, what: tuple[object, ...], now: float) -> None:
        """A world timer came due."""
        kind = what[0]
        if kind == SESSION:
            self._session(customer, now)
        elif kind == RETURN:
            if self.cart_value[customer] > 0 and self.cart_no[customer] == what[1]:
                self._purchase(customer, now)
        elif kind == BROADCAST:
            self._broadcast(int(what[1]), now)  # type: ignore[call-overload]

    # -- browsing ----------------------------------------------------------------------------------

    def _session(self, customer: int, now: float) -> None:
        draws, post = self.draws, self.post
        self.sessions += 1
        post(now, customer, Event("session_start"))
        post(now + 30.0, customer, Event("page_view"))
        for spec in self.config.session_events:
            if draws.uniform() < spec.p:
                at = now + 60.0 + 600.0 * draws.uniform()
                props = {name: self._draw(prop) for name, prop in spec.properties.items()}
                post(at, customer, Event(spec.event, props))
                if spec.event == "cart_add":
                    self._cart(customer, at, props)
        rate = self.population.session_rate[customer]
        if draws.uniform() < self.config.organic_purchase_per_day / rate:
            self._purchase(customer, now + 900.0 * draws.uniform())
        gap = draws.exponential(86400.0 / rate)
        self.wake(self._into_active_hours(now + gap, customer), customer, (SESSION,))

    def _cart(self, customer: int, at: float, props: Properties) -> None:
        world, draws = self.config, self.draws
        value = props.get("value")
        self.cart_value[customer] = float(value) if isinstance(value, (int, float)) else 1.0
        self.cart_no[customer] += 1
        if draws.uniform() < world.checkout_after_cart:
            self._purchase(customer, at + 300.0 + 900.0 * draws.uniform())
        elif draws.uniform() < world.return_purchase:
            later = at + draws.exponential(world.return_delay_days * 86400.0)
            self.wake(later, customer, (RETURN, self.cart_no[customer]))

    def _purchase(self, customer: int, at: float) -> None:
        value = self.cart_value[customer]
        if value <= 0:
            mu, sigma = self.config.purchase_value
            value = round(self.draws.lognormal(mu, sigma), 2)
        self.cart_value[customer] = 0.0
        self.purchases += 1
        self.post(at, customer, Event("purchase", {"value": value}))

    def _broadcast(self, index: int, now: float) -> None:
        spec = self.config.broadcasts[index]
        local_at = parse_time_of_day(spec.at)
        tz = self.population.tz_offset
        for customer in range(self.population.size):
            self.post(next_local_time(now, tz[customer], local_at), customer, Event(spec.event))

    def _draw(self, spec: PropertySpec) -> float | str | int | bool | None:
        if spec.uniform is not None:
            low, high = spec.uniform
            return round(low + (high - low) * self.draws.uniform(), 4)
        if spec.lognormal is not None:
            mu, sigma = spec.lognormal
            return round(self.draws.lognormal(mu, sigma), 2)
        if spec.choice is not None:
            return spec.choice[int(self.draws.uniform() * len(spec.choice))]
        return spec.const

    def _into_active_hours(self, at: float, customer: int) -> float:
        tz = self.population.tz_offset[customer]
        local = (at + tz) % 86400.0
        start, end = self._active_start, self._active_end
        if start <= local < end:
            return at
        return next_local_time(at, tz, start) + 7200.0 * self.draws.uniform()

    # -- responding to sends -----------------------------------------------------------------------

    def on_send(self, customer: int, send: Send, now: float) -> None:
        """A message reached the provider: decide delivery, opens, clicks, purchase, opt-out."""
        draws, world = self.draws, self.config
        model = world.channels.get(send.channel)
        if model is None:
            return
        pressure = self._add_pressure(customer, now, model.weight)
        if draws.uniform() >= model.deliver:
            self._receipt(customer, send, now + 60.0, "bounced")
            return
        self._receipt(customer, send, now + 5.0, "delivered")
        hazard = 1.0 - math.exp(-model.optout_h0 * math.exp(world.optout_kappa * pressure))
        if draws.uniform() < hazard:
            self._receipt(customer, send, now + 60.0 + 3600.0 * draws.uniform(), "unsubscribed")
            return
        message = world.messages.get(send.message, _DEFAULT_MESSAGE)
        base = self._broadcast_logit if message.kind == "broadcast" else self._open_logit
        gamma = world.weary_gamma if self.population.weary[customer] else world.fatigue_gamma
        logit = base[send.channel] + self.population.alpha[send.channel][customer]
        logit += message.appeal - gamma * pressure
        if draws.uniform() * (1.0 + math.exp(-logit)) >= 1.0:
            return  # not opened
        opened_at = now + draws.lognormal(math.log(max(model.latency_minutes, 0.1) * 60.0), 1.0)
        self._receipt(customer, send, opened_at, "opened")
        if draws.uniform() >= model.click_given_open:
            return
        clicked_at = opened_at + (0.0 if model.click_given_open >= 1.0 else 300.0 * draws.uniform())
        self._receipt(customer, send, clicked_at, "clicked")
        if draws.uniform() < message.purchase_on_click:
            self._purchase(customer, clicked_at + 120.0 + 1080.0 * draws.uniform())

    def _add_pressure(self, customer: int, now: float, weight: float) -> float:
        decayed = self.pressure[customer] * math.exp(-(now - self.pressure_at[customer]) / self._tau)
        self.pressure[customer] = decayed + weight
        self.pressure_at[customer] = now
        return decayed + weight

    def _receipt(self, customer: int, send: Send, at: float, status: str) -> None:
        receipt = DeliveryReceipt(send.journey, send.entry, send.channel, send.message, status)
        self.post(at, customer, receipt)
