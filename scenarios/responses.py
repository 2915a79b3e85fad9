"""The response model: what a message does when it reaches a customer.

``Audience`` is the customers' side of every send the engine makes: it decides whether the
message is delivered or bounces, whether it is opened and clicked, whether the customer opts out
and whether a click leads to a purchase, and posts the delivery receipts. The world
(``scenarios.behaviour.World``) is an ``Audience`` that also lives its own life: sessions, carts,
purchases and broadcasts.

Response to a delivered message (REFERENCE.md section 2):
    contact pressure   S_i(t) = sum_k w_ch exp(-(t - t_k) / tau)    (delivered messages k only)
    open               logit p = c_ch + alpha_i,ch + appeal - gamma_i S_i(t-)
    click given open   logit q = d_ch + alpha_i,ch + appeal - gamma_i S_i(t-)
    opt-out hazard     h = 1 - exp(-h0_ch exp(kappa S_i(t)))

``S_i(t-)`` is the pressure of the earlier contacts: a message does not tire the customer of
itself, so the first message after a quiet spell answers at the benchmark rate. The opt-out hazard
counts the message itself (its ``h0`` is calibrated that way). ``c_ch`` is solved so that the
population average of the open rate at no pressure is the benchmark, whatever the spread of
``alpha_i``; ``d_ch`` so that clicks per open over the population at no pressure are the
benchmark (openers lean to a high ``alpha_i``, and click more than the average customer would).
The click moves with the customer, the message and the pressure as the open does: a message
that appeals, or a customer who likes the channel, opens more and clicks more of what they open.
Where the open is the click (``click_given_open = 1``: a push tap, an SMS link) ``q`` is 1 and
the click comes with the open; where nothing is clickable (0) it is 0. Transactional messages add
pressure but carry no opt-out hazard.

A bounce is a property of the address: the first send on a channel decides once whether the
customer's address accepts messages. A bounced message never reached the customer: it adds no
contact pressure and gets no open, click or opt-out. Whether a click leads to a purchase is drawn
when the click happens (``purchase_on_click``); the purchase itself is the world's, minutes later,
on a world timer, against the cart as it is then (``scenarios.behaviour``).

``Audience.on_send`` runs for every send of a run: each channel's constants are resolved once
(``_Channel``), and ``Audience`` is a base class of the world rather than an object it holds, so
that a send reaches it with no call in between. It calls the world back only for a click that
leads to a purchase (``_plan_click_purchase``), which is rare and needs the world's timer record.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable

import numpy as np

from actors.messages import CHANNELS, DeliveryReceipt, Message, Send
from actors.profile import CHANNEL_BIT
from scenarios.config import ChannelModel, MessageSpec, SimulationConfig
from scenarios.draws import ANSWER, Draws
from scenarios.population import Population

DEFAULT_MESSAGE = MessageSpec()  # how customers answer a message the scenario does not describe
_BAD_ADDRESS_SHIFT = 8  # delivery state: CHANNEL_BIT = decided, CHANNEL_BIT << 8 = bounces


def _logit(p: float) -> float:
    p = min(max(p, 1e-9), 1 - 1e-9)
    return math.log(p / (1 - p))


def mean_matched_logit(rate: float, spread: float, given: float | None = None) -> float:
    """The intercept ``c`` with ``E[sigmoid(c + spread * Z)] = rate`` for a standard normal ``Z``.

    Benchmarks are population averages; with heterogeneous customers the average of the sigmoid
    is not the sigmoid of the average, so the intercept is solved (Gauss-Hermite, bisection).

    Args:
        rate: the population average to match.
        spread: the standard deviation of the customers' logit shift ``spread * Z``.
        given: for a rate of a second step (a click per open), the intercept of the first (the
            open): the same ``Z`` moves both, and the rate is matched among those who took the
            first step, ``E[sigmoid(given + spread Z) sigmoid(c + spread Z)] /
            E[sigmoid(given + spread Z)] = rate``.
    """
    if spread <= 0 or not 0.0 < rate < 1.0:
        return _logit(rate)
    nodes, weights = np.polynomial.hermite_e.hermegauss(48)
    if given is not None:  # each customer counts by their chance of taking the first step
        weights = weights / (1.0 + np.exp(-(given + spread * nodes)))
    weights = weights / weights.sum()
    low, high = -40.0, 40.0
    for _ in range(80):
        mid = 0.5 * (low + high)
        mean = float(np.dot(weights, 1.0 / (1.0 + np.exp(-(mid + spread * nodes)))))
        low, high = (mid, high) if mean < rate else (low, mid)
    return 0.5 * (low + high)


def _click_logit(rate: float, open_logit: float, spread: float) -> float:
    """The intercept ``d`` of clicks per open; infinite when the rate is 1 or 0, so that no shift
    moves it: where the open is the click, every open is one, and where nothing is clickable, none."""
    if rate >= 1.0:
        return math.inf
    if rate <= 0.0:
        return -math.inf
    return mean_matched_logit(rate, spread, given=open_logit)


def _chance(logit: float) -> float:
    """``sigmoid(logit)``, exact at the infinities and safe from overflow."""
    if logit >= 0.0:
        return 1.0 / (1.0 + math.exp(-logit))
    odds = math.exp(logit)
    return odds / (1.0 + odds)


class _Channel:
    """One channel's response model, resolved once for the hot path."""

    __slots__ = (
        "deliver",
        "bit",
        "index",
        "open_logit",
        "broadcast_logit",
        "click_logit",
        "broadcast_click_logit",
        "optout_h0",
        "weight",
        "log_latency",
        "instant_click",
        "unnoticed",
    )

    def __init__(self, name: str, model: ChannelModel, spread: float, unnoticed: bool = False) -> None:
        self.unnoticed = unnoticed  # delivered, and nothing more: the counterfactual of a channel
        self.deliver = model.deliver
        self.bit = CHANNEL_BIT.get(name, 0)
        self.open_logit = mean_matched_logit(model.open, spread)
        self.broadcast_logit = mean_matched_logit(model.broadcast_open, spread)
        self.click_logit = _click_logit(model.click_given_open, self.open_logit, spread)
        broadcast_click = (
            model.click_given_open
            if model.broadcast_click_given_open is None
            else model.broadcast_click_given_open
        )
        self.broadcast_click_logit = _click_logit(broadcast_click, self.broadcast_logit, spread)
        self.index = CHANNELS.index(name)
        self.optout_h0 = model.optout_h0
        self.weight = model.weight
        self.log_latency = math.log(max(model.latency_minutes, 0.1) * 60.0)
        self.instant_click = model.click_given_open >= 1.0  # push tap, SMS link: open is the click


class Audience:
    """The customers on the receiving end of sends: their contact pressure, addresses and answers.

    Args:
        population: the customers.
        config: the scenario's simulator tables.
        draws: the world's random stream.
        post: hands a message (here a delivery receipt) to a customer's actor at a time
            (``scenarios.behaviour.Post``).
        unnoticed: channels whose messages are delivered and then do nothing: no contact
            pressure, open, click, purchase or opt-out. The same customers with a channel
            unnoticed, against them with it noticed, is what that channel's messages caused
            (``engine.lab.truth``).

    Attributes:
        pressure: each customer's contact pressure, as of ``pressure_at``.
    """

    def __init__(
        self,
        population: Population,
        config: SimulationConfig,
        draws: Draws,
        post: Callable[[float, int, Message], None],
        unnoticed: frozenset[str] = frozenset(),
    ) -> None:
        self.population = population
        self.config = config.world
        self.draws = draws
        self.post = post
        n = population.size
        self.pressure = array("f", bytes(4 * n))  # single precision: fatigue needs no more
        self.pressure_at = array("f", bytes(4 * n))
        self.delivery = array("H", bytes(2 * n))  # per channel: decided and bad-address bits
        # common random numbers: a customer's n-th message on a channel draws the same numbers in
        # every design (``scenarios.draws``)
        self.answer_no = array("I", bytes(4 * n * len(CHANNELS)))
        self._tau = self.config.fatigue_tau_days * 86400.0
        spread = config.population.propensity_sd
        self._channels = {ch: _Channel(ch, m, spread, ch in unnoticed)
                          for ch, m in self.config.channels.items()}

    def on_send(self, customer: int, send: Send, now: float) -> None:
        """A message reached the provider: decide delivery, opens, clicks, purchase, opt-out."""
        draws, world = self.draws, self.config
        model = self._channels.get(send.channel)
        if model is None:
            return
        slot = customer * len(CHANNELS) + model.index
        number = self.answer_no[slot]
        self.answer_no[slot] = number + 1
        draws.begin(customer, ANSWER + model.index, number)
        if model.deliver < 1.0 and not self._deliverable(customer, model):
            self._receipt(customer, send, now + 60.0, "bounced")
            return  # it never reached the customer: no contact pressure, no fatigue
        if model.unnoticed:
            self._receipt(customer, send, now + 5.0, "delivered")
            return
        earlier = self.pressure[customer] * math.exp(-(now - self.pressure_at[customer]) / self._tau)
        pressure = earlier + model.weight
        self.pressure[customer] = pressure
        self.pressure_at[customer] = now
        self._receipt(customer, send, now + 5.0, "delivered")
        if model.optout_h0 > 0.0 and not send.transactional:
            hazard = 1.0 - math.exp(-model.optout_h0 * math.exp(world.optout_kappa * pressure))
            if draws.uniform() < hazard:
                self._receipt(customer, send, now + 60.0 + 3600.0 * draws.uniform(), "unsubscribed")
                return
        message = world.messages.get(send.message, DEFAULT_MESSAGE)
        broadcast = message.kind == "broadcast"
        gamma = world.weary_gamma if self.population.weary[customer] else world.fatigue_gamma
        # the customer's propensity, the message's appeal and the fatigue move open and click alike
        shift = self.population.alpha[send.channel][customer] + message.appeal - gamma * earlier
        logit = (model.broadcast_logit if broadcast else model.open_logit) + shift
        if draws.uniform() * (1.0 + math.exp(-logit)) >= 1.0:
            return  # not opened
        opened_at = now + draws.lognormal(model.log_latency, 1.0)  # log_latency: the median's log
        self._receipt(customer, send, opened_at, "opened")
        click_logit = model.broadcast_click_logit if broadcast else model.click_logit
        if draws.uniform() >= _chance(click_logit + shift):
            return  # opened, not clicked
        clicked_at = opened_at if model.instant_click else opened_at + 300.0 * draws.uniform()
        self._receipt(customer, send, clicked_at, "clicked")
        buy = message.purchase_on_click
        if message.purchase_on_click_by_channel:
            buy = message.purchase_on_click_by_channel.get(send.channel, buy)
        if draws.uniform() < buy:
            at = clicked_at + 120.0 + 1080.0 * draws.uniform()
            order = model.index << 17 | number % (1 << 17)  # the answer this order follows
            self._plan_click_purchase(customer, at, order, now, send.message)

    def _plan_click_purchase(self, customer: int, at: float, order: int, sent_at: float,
                             message: str) -> None:
        """Have the customer buy at ``at`` after clicking ``message`` sent at ``sent_at``, if the
        world still has something to buy then; ``order`` keys the purchase's draws.

        The world's to do (``scenarios.behaviour.World``): the purchase is against its cart.
        """
        raise NotImplementedError

    def _deliverable(self, customer: int, model: _Channel) -> bool:
        """Whether the customer's address on this channel accepts messages (decided once)."""
        state = self.delivery[customer]
        bit = model.bit
        if not state & bit:
            state |= bit
            if self.draws.uniform() >= model.deliver:
                state |= bit << _BAD_ADDRESS_SHIFT
            self.delivery[customer] = state
        return not state & (bit << _BAD_ADDRESS_SHIFT)

    def _receipt(self, customer: int, send: Send, at: float, status: str) -> None:
        receipt = DeliveryReceipt(send.journey, send.entry, send.channel, send.message, status)
        self.post(at, customer, receipt)
