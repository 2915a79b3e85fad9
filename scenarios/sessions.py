"""Browsing sessions, decided a simulated day at a time for the whole population at once.

Sessions are a Poisson process on a clock that runs only in the customer's local waking hours
(``sessions_per_day`` per day, evenly spread over those hours): the rate per waking hour is even,
with no night and no burst of displaced sessions at dawn. A session is decided at once: which
of the scenario's session events happen and with what properties, whether a cart add is checked
out in the session or bought later anyway, whether the session ends in an organic purchase, and
when the next session comes.

None of that depends on what the engine does (messages change how a customer answers and buys,
not when they browse), so ``SessionClock.day`` decides every session of a day in one go, in
numpy: customers whose next session falls inside the day, their sessions' draws, then their next
sessions, again, until everyone's next session lies beyond the day. Draws are common random
numbers (``scenarios.draws.moment_uniforms``): draw ``s`` of a customer's ``n``-th session is a
fixed function of (seed, customer, n, s), in every design and whatever the batch.

Each session's draws have fixed places (``_Layout``). First those every session needs: 0 the gap
to the next session, 1 whether it ends in an organic purchase, then each session event's chance.
Then, drawn only for the sessions that use them: the organic purchase's time and its value's
normal pair, and per session event two places per property and four for a cart add's checkout
and later purchase.

Since a day's sessions depend only on the world (population, ``[world]``, seed, the events the
engine ignores), a process that runs many designs of one world (a compare's or a sweep's worker)
may keep the days it decided and hand them to the next simulation (``remember_days``): the same
days, decided once. Memory bounds it: worlds of at most ``REMEMBERED_CUSTOMERS`` customers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from actors.messages import Event, Message
from scenarios.config import PropertySpec, SessionEventSpec, SimulationConfig
from scenarios.draws import FIRST, SESSION, moment_uniforms, philox_key
from scenarios.population import Population

DAY = 86400.0
CART = "cart_add"
REMEMBERED_CUSTOMERS = 250_000  # the largest world whose days a process keeps (~0.5 GB a month)
_GAP, _ORGANIC, _CHANCES = 0, 1, 2  # every session's places (the chances: one per event)
_ORGANIC_AT, _ORGANIC_VALUE = 0, 1  # the rest's, from ``_Layout.rest`` (the value takes 1 and 2)
_CHECKOUT, _CHECKOUT_AT, _RETURN, _RETURN_AFTER = 0, 1, 2, 3  # after a cart add's properties


Visit = tuple[tuple[Message, ...], float, "float | None", "float | None"]
"""What a session hands the engine and does to the world's cart, at its start: ``(events, cart,
checkout_at, return_at)``, the events the engine is given, in order (those it ignores left
out); the value of the cart added (0: no cart add); when the cart is bought in the session, and
when, abandoned, it is bought anyway (None: it is not). A plain tuple: a day makes thousands."""


@dataclass(frozen=True)
class Day:
    """A day's sessions.

    Attributes:
        sessions: how many there were.
        ignored: events of them not handed to the engine (it ignores them).
        visits: ``(at, customer, visit)`` of each session the world must play at its time (it
            hands the engine an event or adds a cart), in no particular order.
        purchases: ``(at, customer, value)`` of each organic purchase.
    """

    sessions: int
    ignored: int
    visits: list[tuple[float, int, Visit]]
    purchases: list[tuple[float, int, float]]


_Remembered = dict[tuple[float, float], tuple[Day, np.ndarray, np.ndarray]]  # (start, end) -> day, clock
_remembered: dict[str, _Remembered] | None = None  # by world, once ``remember_days`` is called


def remember_days() -> None:
    """Keep every world's decided days in this process, for the next simulation of that world."""
    global _remembered
    if _remembered is None:
        _remembered = {}


class _Layout:
    """Where each draw of a session sits: ``first`` places for every session, then the
    rest (``rest`` places from place ``first_even``), where ``bases[i]`` is session event
    ``i``'s first."""

    def __init__(self, specs: list[SessionEventSpec]) -> None:
        self.first = _CHANCES + len(specs)
        self.first_even = self.first + self.first % 2  # (draws come two to a Philox block)
        self.bases: list[int] = []
        slot = _ORGANIC_VALUE + 2
        for spec in specs:
            self.bases.append(slot)
            slot += 2 * len(spec.properties) + (4 if spec.event == CART else 0)
        self.rest = slot


class SessionClock:
    """Every customer's next session, and each day's sessions decided in bulk.

    Args:
        population: the customers.
        config: the scenario's simulator tables.
        seed: the run's seed.
        ignored: events the engine does nothing with (``Program.ignored_events``): a session
            of only those is decided and counted but not played.
    """

    def __init__(self, population: Population, config: SimulationConfig, seed: int,
                 ignored: frozenset[str] = frozenset()) -> None:
        self.world = config.world
        self._key = philox_key(seed)
        self._rate = np.frombuffer(population.session_rate, dtype=np.float32).astype(np.float64)
        self._tz = np.frombuffer(population.tz_offset, dtype=np.float32).astype(np.float64)
        self._active_start = float(config.population.active_start)  # seconds, decoded at load
        active = (config.population.active_end - self._active_start) % DAY
        self._active_length = active or DAY  # equal start and end: awake all day
        self._layout = _Layout(self.world.session_events)
        browsing = ("session_start", "page_view")  # what every session holds
        self._browse = tuple(Event(name) for name in browsing if name not in ignored)
        self._browse_ignored = len(browsing) - len(self._browse)  # per session, counted not delivered
        self._delivered = [spec.event not in ignored for spec in self.world.session_events]
        self._organic = organic_purchase_chance(self.world.organic_purchase_per_day, self._rate)
        customers = np.arange(population.size)
        first = moment_uniforms(self._key, customers, FIRST, np.zeros(population.size), 1)[:, 0]
        self.next_at = self._after_active(np.zeros(population.size), self._gap(customers, first), customers)
        self.number = np.zeros(population.size, dtype=np.uint32)  # sessions so far, per customer
        self._days: _Remembered | None = None
        if _remembered is not None and population.size <= REMEMBERED_CUSTOMERS:
            world = repr((seed, population.size, config.population, config.world, sorted(ignored)))
            self._days = _remembered.setdefault(world, {})

    def day(self, start: float, end: float) -> Day:
        """Decide the sessions in ``[start, end)``: everyone whose next session falls there (or
        take them as this process decided them already, for the same world and clock)."""
        if self._days is None:
            return self._decide_day(start, end)
        known = self._days.get((start, end))
        if known is not None:
            decided, next_at, number = known
            self.next_at, self.number = next_at.copy(), number.copy()
            return decided
        decided = self._decide_day(start, end)
        self._days[(start, end)] = (decided, self.next_at.copy(), self.number.copy())
        return decided

    def _decide_day(self, start: float, end: float) -> Day:
        batches = []
        layout = self._layout
        due = np.flatnonzero(self.next_at < end)
        while due.size:
            at, number = self.next_at[due], self.number[due]
            u = moment_uniforms(self._key, due, SESSION, number, layout.first)
            batches.append((due, at, number, u))
            self.number[due] = number + 1
            self.next_at[due] = following = self._after_active(at, self._gap(due, u[:, _GAP]), due)
            due = due[following < end]
        if not batches:
            return Day(0, 0, [], [])
        customers, at, number, u = (np.concatenate(column) for column in zip(*batches, strict=True))
        return self._decide(customers, at, number, u)

    # -- deciding ----------------------------------------------------------------------------------

    def _decide(self, customers: np.ndarray, at: np.ndarray, number: np.ndarray, u: np.ndarray) -> Day:
        """The day's sessions from their first draws (``u``), drawing the rest where needed."""
        world, layout = self.world, self._layout
        count = len(customers)
        specs = world.session_events
        occurs = [u[:, _CHANCES + i] < spec.p for i, spec in enumerate(specs)]
        organic = u[:, _ORGANIC] < self._organic[customers]
        played = np.zeros(count, dtype=bool) if not self._browse else np.ones(count, dtype=bool)
        ignored = self._browse_ignored * count
        drawn = organic.copy()
        for spec, happens, delivered in zip(specs, occurs, self._delivered, strict=True):
            drawn |= happens
            if delivered or spec.event == CART:
                played |= happens
            if not delivered:
                ignored += int(happens.sum())
        rest = np.empty((count, layout.rest))
        rows = np.flatnonzero(drawn)
        rest[rows] = moment_uniforms(self._key, customers[rows], SESSION, number[rows], layout.rest,
                                     first=layout.first_even)
        visits = self._visits(np.flatnonzero(played), customers, at, rest, occurs)
        buyers = np.flatnonzero(organic)
        mu, sigma = world.purchase_value
        normal = _normal(rest[buyers, _ORGANIC_VALUE], rest[buyers, _ORGANIC_VALUE + 1])
        value = np.round(np.exp(mu + sigma * normal), 2)
        bought = at[buyers] + 900.0 * rest[buyers, _ORGANIC_AT]
        purchases = list(zip(bought.tolist(), customers[buyers].tolist(), value.tolist(), strict=True))
        return Day(count, ignored, visits, purchases)

    def _visits(self, played: np.ndarray, customers: np.ndarray, at: np.ndarray, u: np.ndarray,
                occurs: list[np.ndarray]) -> list[tuple[float, int, Visit]]:
        """The sessions ``played`` (indexes into the day's), each as ``(at, customer, visit)``:
        every value worked out for all of them at once, column by column, then put together."""
        world, u, starts = self.world, u[played], at[played]
        events: list[tuple[Message, ...]] = [self._browse] * len(played)
        cart: list[float] = [0.0] * len(played)
        checkout_at: list[float | None] = [None] * len(played)
        return_at: list[float | None] = [None] * len(played)
        for spec, base, happens, delivered in zip(world.session_events, self._layout.bases, occurs,
                                                   self._delivered, strict=True):
            rows = np.flatnonzero(happens[played])
            columns = {
                name: draw_property(prop, u[rows, base + 2 * k], u[rows, base + 1 + 2 * k])
                for k, (name, prop) in enumerate(spec.properties.items())
            }
            if delivered:
                names = list(columns)
                rows_values = zip(*columns.values(), strict=True) if names else [()] * len(rows)
                for row, values in zip(rows.tolist(), rows_values, strict=True):
                    events[row] += (Event(spec.event, dict(zip(names, values, strict=True))),)
            if spec.event != CART or not len(rows):
                continue
            slot = base + 2 * len(spec.properties)
            cart_values = columns.get("value", [None] * len(rows))
            checkout = u[rows, slot + _CHECKOUT] < world.checkout_after_cart
            returns = ~checkout & (u[rows, slot + _RETURN] < world.return_purchase)
            paid = (starts[rows] + 300.0 + 900.0 * u[rows, slot + _CHECKOUT_AT]).tolist()
            delay = -world.return_delay_days * DAY * np.log1p(-u[rows, slot + _RETURN_AFTER])
            later = (starts[rows] + delay).tolist()
            for k, (row, does_checkout, does_return) in enumerate(
                    zip(rows.tolist(), checkout.tolist(), returns.tolist(), strict=True)):
                value = cart_values[k]
                cart[row] = float(value) if isinstance(value, (int, float)) and value > 0 else 1.0
                checkout_at[row] = paid[k] if does_checkout else None
                return_at[row] = later[k] if does_return else None
        visits: list[Visit] = list(zip(events, cart, checkout_at, return_at, strict=True))
        return list(zip(starts.tolist(), customers[played].tolist(), visits, strict=True))

    # -- the waking-hours clock ---------------------------------------------------------------------

    def _gap(self, customers: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Waking seconds to the next session: exponential with mean (waking day) / rate."""
        gap: np.ndarray = -(self._active_length / self._rate[customers]) * np.log1p(-u)
        return gap

    def _after_active(self, at: np.ndarray, active_seconds: np.ndarray, customers: np.ndarray) -> np.ndarray:
        """The time ``active_seconds`` of each customer's waking hours after ``at``."""
        tz = self._tz[customers]
        local = at + tz
        into = np.mod(local - self._active_start, DAY)  # seconds since today's window opened
        length = self._active_length
        awake = into < length  # else asleep: the clock resumes when the next window opens
        window = np.where(awake, local - into, local - into + DAY)
        days, rest = np.divmod(np.where(awake, into, 0.0) + active_seconds, length)
        return window + days * DAY + rest - tz  # type: ignore[no-any-return]


def organic_purchase_chance(per_day: float, sessions_per_day: np.ndarray) -> np.ndarray:
    """The chance that a session ends in an organic purchase, for customers who have
    ``sessions_per_day`` sessions a day: ``per_day`` shared among them, at most 1 (a customer who
    visits less often than ``per_day`` buys at every session, and so less often than that)."""
    return np.minimum(per_day / sessions_per_day, 1.0)


def _normal(u1: np.ndarray, u2: np.ndarray) -> np.ndarray:
    """Standard normal numbers from pairs of draws (Box-Muller)."""
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * math.pi * u2)  # type: ignore[no-any-return]


def draw_property(spec: PropertySpec, u1: np.ndarray, u2: np.ndarray) -> list[Any]:
    """One event property for many events, from two draws each."""
    if spec.uniform is not None:
        low, high = spec.uniform
        return np.round(low + (high - low) * u1, 4).tolist()  # type: ignore[no-any-return]
    if spec.lognormal is not None:
        mu, sigma = spec.lognormal
        return np.round(np.exp(mu + sigma * _normal(u1, u2)), 2).tolist()  # type: ignore[no-any-return]
    if spec.choice is not None:
        return [spec.choice[i] for i in (u1 * len(spec.choice)).astype(np.int64).tolist()]
    return [spec.const] * len(u1)
