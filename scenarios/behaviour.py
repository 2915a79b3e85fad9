"""The behaviour model's world: how synthetic customers browse, buy, and come back to their carts.

The world is the simulator's stand-in for customers and channel providers. It creates the events
that trigger journeys (browsing sessions with cart adds, transfers, chats...), reacts to every send
the engine makes (delivery, open, click, purchase, unsubscribe), and buys on its own too, so that
lift is real: an abandoned cart is bought later anyway with a baseline probability, and a message
only adds to that (REFERENCE.md section 1: attributed rates are not incremental). This module
holds the world's own life: sessions, the session calendar, carts, purchases and broadcasts. How
a customer answers a send (delivery or bounce, fatigue, open, click, opt-out, whether a click
buys) is the response model of ``scenarios.responses``: the world is its ``Audience``.

A purchase that follows a click is decided when the click happens (a world timer), against the
cart as it is then: if the customer bought the cart (or anything after a click) in between, the
click adds nothing, and a cart reminder (``recovers_cart``) buys nothing once the cart is gone.
Sessions are a Poisson process on a clock that runs only in the customer's local waking hours
(``sessions_per_day`` per day, evenly spread over those hours); a session is decided at its
start, its cart add and in-session checkout included.

A session may also end in an organic purchase, minutes after it starts: a purchase of something
else than the open cart, that no message led to (``organic_purchase_per_day``, shared among the
customer's sessions: ``organic_purchase_chance``). Its value is drawn from ``purchase_value``, and
the world's cart bookkeeping does not see it: the open cart stays open and may still be bought
(its scheduled return purchase happens, a click on a reminder can still buy it), and no click is
made void by it. The engine sees a purchase event all the same, so a journey that exits on a
purchase exits, and one whose goal is a purchase counts it.

The world talks to its runtime through two callables: ``post(at, customer, message)`` hands a
message to a customer's actor at time ``at``; ``wake(at, customer, what)`` calls ``on_wake`` back
with the ``WorldWake`` record ``what`` (for the world's own wake-ups, an hour of the session
calendar opening or a broadcast, ``customer`` is None), which may return messages the customer
sends at that very instant (a session's first events).
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Callable
from typing import NamedTuple

from actors.durations import next_local_time
from actors.messages import Event, Message, Properties
from scenarios.config import PropertySpec, SimulationConfig
from scenarios.draws import FIRST, ORDER, Draws
from scenarios.draws import SESSION as SESSION_DRAWS
from scenarios.population import Population
from scenarios.responses import DEFAULT_MESSAGE, Audience

SESSION, RETURN, BROADCAST, CLICK_BUY, HOUR = "session", "return", "broadcast", "click_buy", "hour"


class WorldWake(NamedTuple):
    """A world timer: what the world asked to be woken for (``kind``) and its details.

    ``number`` is the cart's number (``RETURN``), the hour (``HOUR``) or the broadcast's index
    (``BROADCAST``); ``sent_at`` and ``message`` name the send that was clicked (``CLICK_BUY``).
    """

    kind: str
    number: int = 0
    sent_at: float = 0.0
    message: str = ""


Post = Callable[[float, int, Message], None]
Wake = Callable[[float, int | None, WorldWake], None]  # customer None: the world's own wake-up

# Shared, never mutated: a session costs no allocation for its two browsing events.
_BROWSE = (Event("session_start"), Event("page_view"))
_SESSION_WAKE = WorldWake(SESSION)


def organic_purchase_chance(per_day: float, sessions_per_day: float) -> float:
    """The chance that a session ends in an organic purchase, for a customer who has
    ``sessions_per_day`` sessions a day: ``per_day`` shared among them, at most 1 (a customer who
    visits less often than ``per_day`` buys at every session, and so less often than that)."""
    return min(per_day / sessions_per_day, 1.0)


class World(Audience):
    """Synthetic customers reacting to the engine: an ``Audience`` that browses and buys.

    Args:
        population: the customers.
        config: the scenario's simulator tables.
        draws: the world's random stream.
        post: hands a message to a customer's actor at a time.
        wake: asks the runtime to call ``on_wake`` at a time.

    Attributes:
        sessions: browsing sessions so far.
        purchases: purchases so far (every source).
        orders_after_click: purchases that followed a click, by message name (attributed orders).
    """

    def __init__(
        self, population: Population, config: SimulationConfig, draws: Draws, post: Post, wake: Wake
    ) -> None:
        super().__init__(population, config, draws, post)
        self.wake = wake
        n = population.size
        self.cart_value = array("d", bytes(8 * n))  # 0: no open cart
        self.cart_no = array("I", bytes(array("I").itemsize * n))
        self.last_purchase_at = array("d", [-math.inf]) * n
        # common random numbers: a customer's n-th session draws the same numbers in every design
        # (``scenarios.draws``)
        self.session_no = array("I", bytes(4 * n))
        self._active_start = float(config.population.active_start)  # seconds, decoded at load
        active = (config.population.active_end - self._active_start) % 86400.0
        self._active_length = active or 86400.0  # equal start and end: awake all day
        # The session calendar: every customer always has a next session, so instead of one queue
        # item each (about 170 bytes), the next session's time waits in a column and the customer
        # number in the list of its hour; when the hour opens, its sessions become queue items.
        self.next_session = array("d", bytes(8 * n))
        self._calendar: dict[int, array[int]] = {}
        self._open_hour = -1
        self.sessions = 0
        self.purchases = 0
        self.orders_after_click: Counter[str] = Counter()

    # -- starting ----------------------------------------------------------------------------------

    def start(self, horizon: float) -> None:
        """Schedule every customer's first session and the broadcast calendar up to ``horizon``."""
        rates = self.population.session_rate
        length = self._active_length
        draws = self.draws
        for customer in range(self.population.size):
            draws.begin(customer, FIRST, 0)
            first = draws.exponential(length / rates[customer])
            self._plan_session(customer, self._after_active(0.0, first, customer))
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
            if kind == HOUR:
                self._open_hour = hour = what.number
                for planned in self._calendar.pop(hour, ()):
                    self.wake(self.next_session[planned], planned, _SESSION_WAKE)
            elif kind == BROADCAST:
                self._broadcast(what.number, now)
            return None
        if kind == SESSION:
            return self._session(customer, now)
        if kind == RETURN:
            if self.cart_value[customer] > 0 and self.cart_no[customer] == what.number:
                self._purchase(customer, now)
        elif kind == CLICK_BUY:
            self.draws.begin(customer, ORDER, what.number)  # (the value, if no cart is open)
            self._buy_after_click(customer, what.sent_at, what.message, now)
        return None

    # -- browsing ----------------------------------------------------------------------------------

    def _session(self, customer: int, now: float) -> tuple[Message, ...]:
        """Play out a session starting ``now``; return the events of its first instant.

        A session opens with ``session_start`` and a page view, then the scenario's session events
        (a cart add, a transfer, a chat message...): they all happen at the session's start, in
        that order, and go to the actor at once; purchases follow minutes later.
        """
        draws = self.draws
        number = self.session_no[customer]
        self.session_no[customer] = number + 1
        draws.begin(customer, SESSION_DRAWS, number)
        self.sessions += 1
        events: tuple[Message, ...] = _BROWSE
        for spec in self.config.session_events:
            if draws.uniform() < spec.p:
                props = {name: self._draw(prop) for name, prop in spec.properties.items()}
                events += (Event(spec.event, props),)
                if spec.event == "cart_add":
                    self._cart(customer, now, props)
        rate = self.population.session_rate[customer]
        if draws.uniform() < organic_purchase_chance(self.config.organic_purchase_per_day, rate):
            self._buy_organic(customer, now + 900.0 * draws.uniform())
        gap = draws.exponential(self._active_length / rate)
        self._plan_session(customer, self._after_active(now, gap, customer))
        return events

    def _plan_session(self, customer: int, at: float) -> None:
        self.next_session[customer] = at
        hour = int(at // 3600.0)
        if hour <= self._open_hour:
            self.wake(at, customer, _SESSION_WAKE)
            return
        planned = self._calendar.get(hour)
        if planned is None:
            planned = self._calendar[hour] = array("l")
            self.wake(hour * 3600.0, None, WorldWake(HOUR, hour))
        planned.append(customer)

    def _cart(self, customer: int, at: float, props: Properties) -> None:
        world, draws = self.config, self.draws
        value = props.get("value")
        self.cart_value[customer] = float(value) if isinstance(value, (int, float)) else 1.0
        self.cart_no[customer] += 1
        if draws.uniform() < world.checkout_after_cart:
            self._purchase(customer, at + 300.0 + 900.0 * draws.uniform())
        elif draws.uniform() < world.return_purchase:
            later = at + draws.exponential(world.return_delay_days * 86400.0)
            self.wake(later, customer, WorldWake(RETURN, self.cart_no[customer]))

    def _purchase(self, customer: int, at: float) -> None:
        """Buy the open cart at ``at`` (with none open, something of a drawn value): the cart is
        gone, and a click on a message sent before ``at`` buys nothing more."""
        value = self.cart_value[customer]
        self.cart_value[customer] = 0.0
        self.last_purchase_at[customer] = at
        self._order(customer, at, value)

    def _buy_organic(self, customer: int, at: float) -> None:
        """Buy something else than the open cart at ``at``: the world's cart bookkeeping (the cart,
        its later purchase, ``last_purchase_at`` that voids a click) stays as it was."""
        self._order(customer, at, 0.0)

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

    def _after_active(self, at: float, active_seconds: float, customer: int) -> float:
        """The time ``active_seconds`` of the customer's waking hours after ``at``.

        Sessions are a Poisson process on a clock that runs only in local waking hours: the
        rate per waking hour is even, with no night, and no burst of displaced sessions at dawn.
        """
        tz: float = self.population.tz_offset[customer]
        local = at + tz
        into = (local - self._active_start) % 86400.0  # seconds since today's window opened
        length = self._active_length
        if into < length:
            window, spent = local - into, into
        else:  # asleep: the clock resumes when the next window opens
            window, spent = local - into + 86400.0, 0.0
        days, rest = divmod(spent + active_seconds, length)
        return window + days * 86400.0 + rest - tz

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

