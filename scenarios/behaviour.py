"""The behaviour model's world: how synthetic customers browse, buy, and come back to their carts.

The world is the simulator's stand-in for customers and channel providers. It creates the events
that trigger journeys (browsing sessions with cart adds, transfers, chats...), reacts to every send
the engine makes (delivery, open, click, purchase, unsubscribe), and buys on its own too, so that
lift is real: an abandoned cart is bought later anyway with a baseline probability, and a message
only adds to that (REFERENCE.md section 1: attributed rates are not incremental). This module
holds the world's own life: sessions, carts, purchases and broadcasts. How
a customer answers a send (delivery or bounce, fatigue, open, click, opt-out, whether a click
buys) is the response model of ``scenarios.responses``: the world is its ``Audience``.

A purchase that follows a click is decided when the click happens (a world timer), against the
cart as it is then: if the customer bought the cart (or anything after a click) in between, the
click adds nothing, and a cart reminder (``recovers_cart``) buys nothing once the cart is gone.
Sessions are a Poisson process on a clock that runs only in the customer's local waking hours;
each day's are decided in bulk as the day opens (``scenarios.sessions``), their cart adds and
in-session checkouts included, and played at their times: a session's cart opens then, and its
events go to the engine then. A session whose events the engine would ignore (browsing, where
no journey listens to it) and that adds no cart is decided and counted but not played.

A session may also end in an organic purchase, minutes after it starts: a purchase of something
else than the open cart, that no message led to (``organic_purchase_per_day``, shared among the
customer's sessions, with the chance ``organic_purchase_per_day / r`` at most 1 for a customer
with ``r`` sessions a day). Its value is drawn from ``purchase_value``, and
the world's cart bookkeeping does not see it: the open cart stays open and may still be bought
(its scheduled return purchase happens, a click on a reminder can still buy it), and no click is
made void by it. The engine sees a purchase event all the same, so a journey that exits on a
purchase exits, and one whose goal is a purchase counts it.

The world talks to its runtime through two callables: ``post(at, customer, message)`` hands a
message to a customer's actor at time ``at``; ``wake(at, customer, what)`` calls ``on_wake`` back
with the ``WorldWake`` record ``what`` (for the world's own wake-ups, a day opening or a
broadcast, ``customer`` is None), which may return messages the customer sends at that very
instant (a session's first events).
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Callable
from typing import NamedTuple

from actors.durations import next_local_time
from actors.messages import Event, Message
from scenarios.config import SimulationConfig
from scenarios.draws import ORDER, Draws
from scenarios.population import Population
from scenarios.responses import DEFAULT_MESSAGE, Audience
from scenarios.sessions import DAY, SessionClock, Visit

SESSION, RETURN, BROADCAST, CLICK_BUY, DAY_OPENS = "session", "return", "broadcast", "click_buy", "day"


class WorldWake(NamedTuple):
    """A world timer: what the world asked to be woken for (``kind``) and its details.

    ``number`` is the cart's (``RETURN``), the day's (``DAY_OPENS``) or the broadcast's index
    (``BROADCAST``); ``sent_at`` and ``message`` name the send that was clicked (``CLICK_BUY``);
    ``visit`` is the session to play (``SESSION``).
    """

    kind: str
    number: int = 0
    sent_at: float = 0.0
    message: str = ""
    visit: Visit | None = None


Post = Callable[[float, int, Message], None]
Wake = Callable[[float, int | None, WorldWake], None]  # customer None: the world's own wake-up


class World(Audience):
    """Synthetic customers reacting to the engine: an ``Audience`` that browses and buys.

    Args:
        population: the customers.
        config: the scenario's simulator tables.
        draws: the world's random stream.
        post: hands a message to a customer's actor at a time.
        wake: asks the runtime to call ``on_wake`` at a time.
        ignored: events the engine does nothing with (``Program.ignored_events``): the world
            does not hand them over, and plays no session that would hand over only those.
        unnoticed: channels whose messages customers do not notice (``Audience``).

    Attributes:
        sessions: browsing sessions so far (a day's all counted when the day opens).
        purchases: purchases so far (every source).
        orders_after_click: purchases that followed a click, by message name (attributed orders).
        events_ignored: events the customers did that were not handed to the engine.
    """

    def __init__(
        self, population: Population, config: SimulationConfig, draws: Draws, post: Post, wake: Wake,
        ignored: frozenset[str] = frozenset(), unnoticed: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__(population, config, draws, post, unnoticed)
        self.wake = wake
        n = population.size
        self.cart_value = array("d", bytes(8 * n))  # 0: no open cart
        self.cart_no = array("I", bytes(array("I").itemsize * n))
        self.last_purchase_at = array("d", [-math.inf]) * n
        self.session_clock = SessionClock(population, config, draws.seed, ignored)
        self._horizon = math.inf
        self.sessions = 0
        self.purchases = 0
        self.events_ignored = 0
        self.orders_after_click: Counter[str] = Counter()

    # -- starting ----------------------------------------------------------------------------------

    def start(self, horizon: float) -> None:
        """Schedule the days (each decides its sessions as it opens) and the broadcast calendar
        up to ``horizon``."""
        self._horizon = horizon
        for day in range(math.ceil(horizon / DAY) if horizon > 0 else 1):
            self.wake(day * DAY, None, WorldWake(DAY_OPENS, day))
        for index, spec in enumerate(self.config.broadcasts):
            every, at = float(spec.every), float(spec.first)  # seconds, decoded at load
            while at < horizon:
                self.wake(at, None, WorldWake(BROADCAST, index))
                at += every

    def on_wake(self, customer: int | None, what: WorldWake, now: float) -> tuple[Message, ...] | None:
        """A world timer came due (``customer`` None: one of the world's own).

        Returns:
            Messages the customer sends at this very instant (a session's first events), for
            the runtime to hand to the actor at once; None when there are none.
        """
        kind = what.kind
        if customer is None:
            if kind == DAY_OPENS:
                self._open_day(what.number)
            elif kind == BROADCAST:
                self._broadcast(what.number, now)
            return None
        if kind == SESSION:
            assert what.visit is not None  # (a session's wake-up carries it)
            return self._play(customer, what.visit)
        if kind == RETURN:
            if self.cart_value[customer] > 0 and self.cart_no[customer] == what.number:
                self._purchase(customer, now)
        elif kind == CLICK_BUY:
            self.draws.begin(customer, ORDER, what.number)  # (the value, if no cart is open)
            self._buy_after_click(customer, what.sent_at, what.message, now)
        return None

    # -- browsing ----------------------------------------------------------------------------------

    def _open_day(self, day: int) -> None:
        """Decide the day's sessions; schedule those to be played and the organic purchases."""
        start = day * DAY
        decided = self.session_clock.day(start, min(start + DAY, math.nextafter(self._horizon, math.inf)))
        self.sessions += decided.sessions
        self.events_ignored += decided.ignored
        wake = self.wake
        for at, customer, visit in decided.visits:
            wake(at, customer, WorldWake(SESSION, 0, 0.0, "", visit))
        for at, customer, value in decided.purchases:
            self._order(customer, at, value)

    def _play(self, customer: int, visit: Visit) -> tuple[Message, ...] | None:
        """A session starts: its cart (if it adds one) and the events the engine is handed."""
        events, cart, checkout_at, return_at = visit
        if cart:
            self.cart_value[customer] = cart
            self.cart_no[customer] += 1
            if checkout_at is not None:
                self._purchase(customer, checkout_at)
            elif return_at is not None:
                self.wake(return_at, customer, WorldWake(RETURN, self.cart_no[customer]))
        return events or None

    def _purchase(self, customer: int, at: float) -> None:
        """Buy the open cart at ``at`` (with none open, something of a drawn value): the cart is
        gone, and a click on a message sent before ``at`` buys nothing more."""
        value = self.cart_value[customer]
        self.cart_value[customer] = 0.0
        self.last_purchase_at[customer] = at
        self._order(customer, at, value)

    def _order(self, customer: int, at: float, value: float) -> None:
        """Post a purchase of ``value`` (0: drawn from ``purchase_value``) at ``at``."""
        if value <= 0:
            mu, sigma = self.config.purchase_value
            value = round(self.draws.lognormal(mu, sigma), 2)
        self.purchases += 1
        self.post(at, customer, Event("purchase", {"value": value}))

    def _broadcast(self, index: int, now: float) -> None:
        spec = self.config.broadcasts[index]
        local_at = spec.at  # seconds after local midnight, decoded at load
        tz, post = self.population.tz_offset, self.post
        event = Event(spec.event)  # one shared, immutable event for the whole population
        for customer in range(self.population.size):
            post(next_local_time(now, tz[customer], local_at), customer, event)

    # -- purchases after a click (the click itself: scenarios.responses) ---------------------------

    def _plan_click_purchase(self, customer: int, at: float, order: int, sent_at: float,
                             message: str) -> None:
        self.wake(at, customer, WorldWake(CLICK_BUY, order, sent_at=sent_at, message=message))

    def _buy_after_click(self, customer: int, sent_at: float, message: str, now: float) -> None:
        if self.last_purchase_at[customer] >= sent_at:
            return  # bought since the message went out: the click adds nothing
        spec = self.config.messages.get(message, DEFAULT_MESSAGE)
        if spec.recovers_cart and self.cart_value[customer] <= 0:
            return  # the cart the message was about is gone
        self.orders_after_click[message] += 1
        self._purchase(customer, now)

