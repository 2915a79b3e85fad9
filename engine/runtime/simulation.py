"""The simulation runtime: SimPy owns the clock, one central scheduler drives every actor.

A run draws a population, lets the synthetic world (scenarios/) browse, buy and respond to
messages, and folds every effect into run metrics. There is one SimPy process for the whole
population (the clock loop below) plus one per escalated case waiting for an agent; journey timers
and world events all live in one ``TimerQueue``.

The clock loop: while an agent case is open, it lets SimPy run whatever is due before the next
item, so agents and actors stay in exact time order; otherwise it hands items to actors back to
back, each at its exact time, and advances SimPy's clock whenever the next item is a ``tick`` or
more ahead. A world wake-up may return messages the customer sends at that very instant (a
session's first events): they go to the actor at once, in order, without a round trip through the
queue. Actors are created on their first message, seeded with the customer's time zone and
reachability.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import simpy

from actors.actor import Actor
from actors.messages import DeliveryReceipt, Effect, Escalated, Message, Schedule, Send, TimerFired
from actors.profile import Profile
from engine.runtime.agents import AgentDesk
from engine.runtime.scheduler import TimerQueue
from engine.scenario_files import Scenario
from reports.metrics import RunMetrics
from scenarios.behaviour import Post, Wake, World
from scenarios.config import SimulationConfig
from scenarios.draws import Draws
from scenarios.population import Population, customer_id, generate_population

DAY = 86400.0


class WorldLike(Protocol):
    """What the runtime needs of a world: a start, wake-ups, and a reaction to each send."""

    def start(self, horizon: float) -> None: ...

    def on_wake(self, customer: int, what: tuple[object, ...], now: float) -> tuple[Message, ...] | None: ...

    def on_send(self, customer: int, send: Send, now: float) -> None: ...


WorldFactory = Callable[[Population, SimulationConfig, Draws, Post, Wake], WorldLike]


@dataclass(frozen=True)
class RunStatistics:
    """What a run did, in counts (wall time is measured by the caller, not here)."""

    messages_handled: int  # events, timers and receipts handed to actors
    world_wakes: int  # sessions, returns and broadcasts the world handled
    actors: int  # customers who got an actor
    pending_at_end: int  # items still scheduled past the horizon


class Simulation:
    """One simulated run of a scenario.

    Args:
        scenario: the loaded scenario.
        customers: population size.
        days: simulated days.
        seed: the run's seed; population, world and agents get independent child streams.
        tick: the most SimPy's clock may lag behind the item being handled, in seconds.
        world: makes the world the customers live in (default: the synthetic ``World``; a
            ``ScriptedWorld`` replays a fixed script of messages instead).
        trace: when given, every effect is appended to it as ``(at, customer_id, effect)``.
    """

    def __init__(
        self,
        scenario: Scenario,
        customers: int,
        days: float,
        seed: int,
        tick: float = 60.0,
        world: WorldFactory = World,
        trace: list[tuple[float, str, Effect]] | None = None,
    ) -> None:
        self.scenario = scenario
        self.horizon = days * DAY
        self.tick = tick
        pop_seed, world_seed, agent_seed = np.random.SeedSequence(seed).spawn(3)
        config = scenario.simulation
        self.population: Population = generate_population(
            config.population, customers, np.random.default_rng(pop_seed)
        )
        self.env = simpy.Environment()
        self.queue = TimerQueue()
        self.actors: list[Actor | None] = [None] * customers
        self.metrics = RunMetrics(scenario.program, customers)
        # the world and the agents post messages and wake-ups straight into the one queue
        self.world = world(
            self.population, config, Draws(np.random.default_rng(world_seed)), self.queue.push,
            self.queue.push,
        )
        self.trace = trace
        self.agents = AgentDesk(
            self.env, config.agents, Draws(np.random.default_rng(agent_seed)), self.queue.push
        )
        self.handled = 0
        self.wakes = 0

    # -- running -----------------------------------------------------------------------------------

    def run(self, on_progress: Callable[[float], None] | None = None) -> RunStatistics:
        """Run to the horizon; ``on_progress(simulated_seconds)`` is called every simulated hour."""
        self.world.start(self.horizon)
        self.env.process(self._clock(on_progress))
        # A run allocates millions of short-lived records and keeps every actor: freeze what is
        # already there and collect the young generation less often (measured: about 7% faster).
        threshold = gc.get_threshold()
        gc.freeze()
        gc.set_threshold(100_000, 50, 100)
        try:
            self.env.run(until=self.horizon)
        finally:
            gc.set_threshold(*threshold)
            gc.unfreeze()
        if on_progress is not None:
            on_progress(self.horizon)
        return RunStatistics(
            self.handled, self.wakes, sum(a is not None for a in self.actors), len(self.queue)
        )

    def _clock(self, on_progress: Callable[[float], None] | None) -> Generator[Any, Any, None]:
        # One loop for the whole population, on purpose: it is the hot path, and a call per item
        # into smaller functions would cost a fifth of the run.
        env, queue, actors, world, metrics = self.env, self.queue, self.actors, self.world, self.metrics
        program, population, agents = self.scenario.program, self.population, self.agents
        horizon, tick = self.horizon, self.tick
        push, peek_time, pop = queue.push, queue.peek_time, queue.pop
        tz_offsets, reaches, trace = population.tz_offset, population.reach, self.trace
        shared_tz: dict[float, float] = {}
        on_wake, on_send, observe = world.on_wake, world.on_send, metrics.observe
        next_report = 3600.0 if on_progress is not None else math.inf
        handled, wakes = self.handled, self.wakes
        while True:
            at = peek_time()
            if agents.open_cases and env.peek() <= at and env.peek() <= horizon:
                self.handled, self.wakes = handled, wakes
                yield env.timeout(env.peek() - env.now)  # agent queues first, in time order
                continue
            if at > horizon:
                self.handled, self.wakes = handled, wakes
                return
            if at - env.now >= tick:
                self.handled, self.wakes = handled, wakes
                yield env.timeout(at - env.now)
            if at >= next_report:
                on_progress(at)  # type: ignore[misc]
                next_report = at - at % 3600.0 + 3600.0
            _, _, _, customer, payload = pop()
            if type(payload) is tuple:
                wakes += 1
                messages = on_wake(customer, payload, at)  # what the customer does right now
                if not messages:
                    continue
            else:
                messages = (payload,)
            actor = actors[customer]
            if actor is None:
                tz = tz_offsets[customer]
                tz = shared_tz.setdefault(tz, tz)  # a few distinct offsets: one float object each
                profile = Profile(customer_id(customer), tz_offset=tz, reach=reaches[customer])
                actor = actors[customer] = Actor(program, profile)
            for message in messages:
                handled += 1
                effects = actor.handle(message, at)
                if type(message) is DeliveryReceipt:
                    metrics.observe_receipt(message)
                if not effects:
                    continue
                if trace is not None:
                    trace.extend((at, actor.customer_id, effect) for effect in effects)
                for effect in effects:
                    kind = type(effect)
                    if kind is Schedule:
                        push(effect.at, customer, TimerFired(effect.journey, effect.version),
                             effect.priority)
                    elif kind is Send:
                        on_send(customer, effect, at)
                    elif kind is Escalated:
                        agents.escalate(customer, effect.queue, at)
                observe(customer, effects)
