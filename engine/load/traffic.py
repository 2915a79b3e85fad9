"""The synthetic world as traffic: Segment calls in the proportions of a scenario's world.

A population is drawn as the simulation draws it (``scenarios.population``): time zones,
reachability, session rates. Sessions then come one after another, each of a customer chosen in
proportion to their session rate: on a customer's first session an identify (their email and
phone as traits where the world gives them one, the time zone in ``context.timezone`` and a push
token in ``context.device.token`` for those who allowed push), then a page view, then each of
the world's session events with its chance and drawn properties (a cart add as Segment's
``Product Added``), a cart checked out in the session (``Order Completed`` with its revenue) at
the world's ``checkout_after_cart``, and an organic purchase at the world's rate. Event names go
out as the tracking plan sends them: the scenario's ``[events]`` table, read backwards (a
journey's ``cart_add`` is sent as the ``Product Added`` it is mapped from).

Every call carries what the official libraries set: a ``messageId`` (a UUID), the ``timestamp``
of the moment it was made, and ``context.library``; ``batch`` wraps calls as the libraries'
batch uploads do, with ``sentAt`` set as the request leaves.
"""

from __future__ import annotations

import uuid
from collections import deque
from datetime import UTC, datetime
from typing import Any

import msgspec
import numpy as np

from actors.profile import CHANNEL_BIT
from engine.scenario_files import Scenario
from scenarios.population import generate_population
from scenarios.sessions import CART, draw_property, organic_purchase_chance

LIBRARY = {"name": "analytics-python", "version": "2.3.4"}  # what the Python library says it is
ZONES = {-8.0: "America/Los_Angeles", -7.0: "America/Denver", -6.0: "America/Chicago",
         -5.0: "America/New_York", -3.0: "America/Sao_Paulo", 0.0: "Europe/London",
         1.0: "Europe/Berlin", 2.0: "Europe/Athens", 3.0: "Europe/Istanbul", 5.5: "Asia/Kolkata",
         8.0: "Asia/Singapore", 9.0: "Asia/Tokyo", 10.0: "Australia/Sydney"}
SESSIONS_AT_A_TIME = 512  # sessions drawn in one numpy pass
_EMAIL, _SMS, _PUSH = CHANNEL_BIT["email"], CHANNEL_BIT["sms"], CHANNEL_BIT["push"]
_ENCODER = msgspec.json.Encoder()


def zone_of(hours: float) -> str:
    """An IANA zone at ``hours`` from UTC (``Etc/GMT-9`` for one not in ``ZONES``)."""
    if hours in ZONES:
        return ZONES[hours]
    whole = round(hours)
    return "UTC" if whole == 0 else f"Etc/GMT{-whole:+d}"  # (Etc/ signs are reversed)


def iso(at: float) -> str:
    """Unix time as Segment's ISO 8601 with milliseconds."""
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Traffic:
    """An endless stream of a scenario's world's Segment calls.

    Args:
        scenario: whose ``[population]`` and ``[world]`` to follow, and whose ``[events]`` names.
        customers: the population's size.
        seed: the same seed gives the same customers and the same sequence of calls.
    """

    def __init__(self, scenario: Scenario, customers: int, seed: int = 1) -> None:
        config = scenario.simulation
        self.world = config.world
        self.population = generate_population(config.population, customers, np.random.default_rng(seed))
        self._rng = np.random.default_rng([seed, 7])
        rate = np.frombuffer(self.population.session_rate, dtype=np.float32).astype(np.float64)
        self._weights = rate / rate.sum()
        self._organic = organic_purchase_chance(self.world.organic_purchase_per_day, rate)
        self._identified = np.zeros(customers, dtype=bool)
        sent_as: dict[str, str] = {}
        for incoming, vocabulary in sorted(scenario.program.event_names.items()):
            sent_as.setdefault(vocabulary, incoming)
        self._name = sent_as  # a journey's event name -> the name the tracking plan sends
        self._calls: deque[dict[str, Any]] = deque()

    def calls(self, count: int) -> list[dict[str, Any]]:
        """The next ``count`` calls (each without ``messageId`` and ``timestamp``: ``batch``
        stamps them)."""
        while len(self._calls) < count:
            self._sessions(SESSIONS_AT_A_TIME)
        return [self._calls.popleft() for _ in range(count)]

    def batch(self, count: int, made_at: float, sent_at: float) -> bytes:
        """A ``/v1/batch`` body of the next ``count`` calls, made at ``made_at`` and sent at
        ``sent_at`` (Unix times), as the official libraries shape it."""
        stamp = iso(made_at)
        calls = self.calls(count)
        for call in calls:
            call["messageId"] = str(uuid.uuid4())
            call["timestamp"] = stamp
        return _ENCODER.encode({"batch": calls, "sentAt": iso(sent_at)})

    # -- drawing -----------------------------------------------------------------------------------

    def _sessions(self, count: int) -> None:
        rng, world, population = self._rng, self.world, self.population
        who = rng.choice(population.size, size=count, p=self._weights)
        specs = world.session_events
        happens = [rng.random(count) < spec.p for spec in specs]
        properties = [{name: draw_property(prop, rng.random(count), rng.random(count))
                       for name, prop in spec.properties.items()} for spec in specs]
        checkout = rng.random(count) < world.checkout_after_cart
        organic = rng.random(count) < self._organic[who]
        mu, sigma = world.purchase_value
        organic_value = np.round(np.exp(mu + sigma * rng.standard_normal(count)), 2).tolist()
        out = self._calls
        for i, customer in enumerate(who.tolist()):
            user = f"c{customer:07d}"
            if not self._identified[customer]:
                self._identified[customer] = True
                out.append(self._identify(customer, user))
            out.append(_call("page", user, name="Home", properties={"path": "/"}))
            for s, spec in enumerate(specs):
                if not happens[s][i]:
                    continue
                props = {name: values[i] for name, values in properties[s].items()}
                name = self._name.get(spec.event, spec.event)
                out.append(_call("track", user, event=name, properties=props))
                if spec.event == CART and checkout[i]:
                    value = props.get("value", organic_value[i])
                    out.append(_call("track", user, event=self._name.get("purchase", "purchase"),
                                     properties={"revenue": value, "currency": "USD"}))
            if organic[i]:
                out.append(_call("track", user, event=self._name.get("purchase", "purchase"),
                                 properties={"revenue": organic_value[i], "currency": "USD"}))

    def _identify(self, customer: int, user: str) -> dict[str, Any]:
        reach = int(self.population.reach[customer])
        traits: dict[str, Any] = {}
        if reach & _EMAIL:
            traits["email"] = f"{user}@example.com"
        if reach & _SMS:
            traits["phone"] = f"+1555{customer:07d}"
        context: dict[str, Any] = {"timezone": zone_of(float(self.population.tz_offset[customer]) / 3600.0)}
        if reach & _PUSH:
            context["device"] = {"token": f"push-{customer:07d}", "type": "ios"}
        return _call("identify", user, traits=traits, extra_context=context)


def _call(kind: str, user: str, *, extra_context: dict[str, Any] | None = None,
          **fields: Any) -> dict[str, Any]:
    context = {"library": LIBRARY, **(extra_context or {})}
    return {"type": kind, "userId": user, **fields, "context": context}

