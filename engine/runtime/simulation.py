"""The simulation runtime: SimPy owns the clock, one central scheduler drives every actor.

A run draws a population, lets the synthetic world (scenarios/) browse, buy and respond to
messages, and folds every effect into run metrics. There is one SimPy process for the whole
population (the clock loop below) plus one per escalated case waiting for an agent; journey timers
and world events all live in one ``TimerQueue``.

The clock loop: while an agent case is open, it lets SimPy run whatever is due before the next
item, so agents and actors stay in exact time order; otherwise it hands items to actors back to
back, each at its exact time, and advances SimPy's clock whenever the next item is a ``tick`` or
more ahead. A world wake-up (a ``WorldWake`` record) may return messages the customer sends at
that very instant (a session's first events): they go to the actor at once, in order, without a
round trip through the queue. Every message reaches its actor by ``actors.routing.way_in``,
as in the real-time runtime and recovery (customers are keyed by their population number here);
actors are created on their first message, seeded with the customer's time zone and reachability.
Effects go through the shared ``EffectRouter``; escalations to the agent desk's SimPy queues.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, SupportsIndex

import numpy as np
import simpy

from actors.actor import Actor
from actors.durations import next_local_time
from actors.messages import DeliveryReceipt, Effect, Escalated, Message, Scored, Send, TimerFired
from actors.profile import Profile
from actors.routing import Aliases, way_in
from engine.lab.scoring import Scoring
from engine.runtime.agents import AgentDesk
from engine.runtime.calendar import ENTRY, EngineWake, engine_wakes
from engine.runtime.effects import EffectRouter, Trace
from engine.runtime.memory import collecting_rarely
from engine.runtime.scheduler import TimerQueue
from engine.scenario_files import Scenario
from reports.metrics import RunMetrics
from scenarios.behaviour import Post, Wake, World, WorldWake
from scenarios.config import SimulationConfig
from scenarios.draws import Draws
from scenarios.population import Population, customer_id, generate_population

DAY = 86400.0
Apply = Callable[[int, Message, float], tuple[int, list[Effect]]]  # ``actors.routing.way_in``'s
Route = Callable[[int, list[Effect], float], None]  # ``EffectRouter.route``


class WorldLike(Protocol):
    """What the runtime needs of a world: a start, wake-ups, a reaction to each send, and the
    count of events its customers did that it kept from the engine (the program ignores them)."""

    events_ignored: int

    def start(self, horizon: float) -> None: ...

    def on_wake(self, customer: int | None, what: WorldWake, now: float) -> tuple[Message, ...] | None: ...

    def on_send(self, customer: int, send: Send, now: float) -> None: ...


# (population, config, draws, post, wake, events the engine ignores) -> the world
WorldFactory = Callable[[Population, SimulationConfig, Draws, Post, Wake, frozenset[str]], WorldLike]


@dataclass(frozen=True)
class RunStatistics:
    """What a run did, in counts (wall time is measured by the caller, not here)."""

    messages_handled: int  # events, timers and receipts handed to actors
    events_ignored: int  # events the customers did that the program ignores: not handed over
    world_wakes: int  # sessions, returns, days and broadcasts the world handled
    actors: int  # customers who got an actor
    pending_at_end: int  # items still scheduled past the horizon


class ActorList(list[Actor | None]):
    """The simulation's actors by population number (None: no actor yet), as an
    ``actors.routing.ActorTable``: a list, not a dict, because a dict of a million numbered
    actors costs some 80 bytes a customer more (its table and a key object each) and, measured
    at 100,000 customers, a tenth of the run's speed."""

    __slots__ = ()

    if TYPE_CHECKING:

        def get(self, number: int, /) -> Actor | None: ...

    else:
        get = list.__getitem__  # (in C: every message looks its actor up)

    def pop(self, number: SupportsIndex = -1, default: None = None, /) -> Actor | None:
        """Take the actor of ``number`` out, leaving its slot empty (the list keeps its length:
        positions are population numbers). Only a merge would; the simulated world merges no one."""
        actor, self[number] = self[number], None
        return actor


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
        deliver_ignored: hand the actors the events their program ignores too
            (``Program.ignored_events``: browsing no journey listens to). Slower, with the same
            results; by default the world keeps them and counts them.
    """

    def __init__(
        self,
        scenario: Scenario,
        customers: int,
        days: float,
        seed: int,
        tick: float = 60.0,
        world: WorldFactory = World,
        trace: Trace | None = None,
        deliver_ignored: bool = False,
    ) -> None:
        self.scenario = scenario
        self.horizon = days * DAY
        self.tick = tick
        # the population from its own stream; the world's and the agents' draws are keyed by
        # customer and moment (common random numbers: ``scenarios.draws``)
        pop_seed = np.random.SeedSequence(seed).spawn(1)[0]
        config = scenario.simulation
        self.population: Population = generate_population(
            config.population, customers, np.random.default_rng(pop_seed)
        )
        self.env = simpy.Environment()
        # customer None: one of the world's own wake-ups (a day of its calendar, a broadcast)
        self.queue: TimerQueue[int | None, Message | WorldWake | EngineWake] = TimerQueue()
        self.actors = ActorList([None] * customers)  # by population number, made on first message
        self.aliases: Aliases[int] = Aliases()  # (the simulated world merges no one)
        self.metrics = RunMetrics(scenario.program, customers, self.horizon)
        if scenario.program.policy.global_holdout:  # the program's lift counts the whole population
            for number in range(customers):
                self.metrics.count_customer(customer_id(number))
        # the world and the agents post messages and wake-ups straight into the one queue
        ignored = frozenset() if deliver_ignored else scenario.program.ignored_events
        self.world = world(self.population, config, Draws(seed), self.queue.push, self.queue.push, ignored)
        self.trace = trace
        self.agents = AgentDesk(
            self.env, config.agents, Draws(seed), self.queue.push
        )
        self.handled = 0
        self.wakes = 0
        self.scoring = Scoring.of(scenario.program.scoring)
        self.metrics.scoring = self.scoring
        self._shared_tz: dict[float, float] = {}
        agents = self.agents

        def escalate(customer: int, escalated: Escalated, now: float) -> None:
            agents.escalate(customer, escalated.queue, now)  # a SimPy process waits for an agent

        # (closures and other objects' methods, not this one's: no reference cycle through it)
        self.effects: EffectRouter[int] = EffectRouter(
            self.queue.push, self.world.on_send, escalate, self.metrics.observe, trace, customer_id
        )

    # -- running -----------------------------------------------------------------------------------

    def run(self, on_progress: Callable[[float], None] | None = None, paths: bool = True) -> RunStatistics:
        """Run to the horizon; ``on_progress(simulated_seconds)`` is called every simulated hour.
        ``paths=False`` leaves out the null paths of the last entries (a scan of every actor at
        the end: a sweep's points, which report no attribution, save it)."""
        self.world.start(self.horizon)
        for at, wake in engine_wakes(self.scenario.program, 0.0, self.horizon):
            self.queue.push(at, None, wake)
        self.env.process(self._clock(on_progress))
        with collecting_rarely():
            self.env.run(until=self.horizon)
        if on_progress is not None:
            on_progress(self.horizon)
        if paths:
            self._last_null_paths()
        return RunStatistics(
            self.handled, self.world.events_ignored, self.wakes,
            sum(a is not None for a in self.actors), len(self.queue)
        )

    def _last_null_paths(self) -> None:
        """The null paths of the last entries that ended without converting, their goal window
        closed within the run (the earlier ones were said by the entry after them)."""
        paths = self.metrics.paths
        for actor in self.actors:
            if actor is None or actor.runs is None:
                continue
            for journey, run in zip(self.scenario.program.journeys, actor.runs, strict=True):
                if run is not None and run.entered_at + journey.goal_within <= self.horizon:
                    paths.lapsed(journey.id, run.null_path(actor.profile, journey.goal_within))

    def _on_engine_wake(self, wake: EngineWake, at: float, apply: Apply, route: Route) -> None:
        """A scoring pass (each actor the pass scores is handed its scores), or a scheduled entry
        (every customer is handed its event at the local time it names)."""
        if wake.kind == ENTRY:
            fired, tz, push = TimerFired(wake.event, 0), self.population.tz_offset, self.queue.push
            for number in range(len(self.actors)):
                push(next_local_time(at, float(tz[number]), wake.local_at), number, fired)
            return
        assert self.scoring is not None
        buyers = [(n, actor.profile) for n, actor in enumerate(self.actors)
                  if actor is not None and Scoring.scored(actor.profile)]
        numbers, profiles = [n for n, _ in buyers], [profile for _, profile in buyers]
        for number, values in zip(numbers, self.scoring.score(profiles, at), strict=True):
            self.handled += 1
            number, effects = apply(number, Scored(values, at), at)
            if effects:
                route(number, effects, at)

    def _new_actor(self, customer: int) -> Actor:
        """A customer's actor, seeded with their time zone and reachability."""
        tz = float(self.population.tz_offset[customer])
        tz = self._shared_tz.setdefault(tz, tz)  # a few distinct offsets: one float object each
        profile = Profile(customer_id(customer), tz_offset=tz, reach=self.population.reach[customer])
        return Actor(self.scenario.program, profile)

    def _clock(self, on_progress: Callable[[float], None] | None) -> Generator[Any, Any, None]:
        # One loop for the whole population, on purpose: it is the hot path, and a call per item
        # into smaller functions would cost a fifth of the run. Two calls it does make: the one
        # way in (way_in) and the one effect router, shared with the real-time runtime.
        env, queue, agents = self.env, self.queue, self.agents
        horizon, tick, route = self.horizon, self.tick, self.effects.route
        apply = way_in(self.actors, self.aliases, self._new_actor)
        peek_time, pop = queue.peek_time, queue.pop
        on_wake, observe_receipt = self.world.on_wake, self.metrics.observe_receipt
        report = on_progress if on_progress is not None else _no_progress
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
                report(at)
                next_report = at - at % 3600.0 + 3600.0
            _, _, _, customer, payload = pop()
            if isinstance(payload, WorldWake):
                wakes += 1
                messages = on_wake(customer, payload, at)  # what the customer does right now
                if not messages:
                    continue
            elif isinstance(payload, EngineWake):  # (the engine's own calendar)
                self.handled = handled
                self._on_engine_wake(payload, at, apply, route)
                handled = self.handled
                continue
            else:
                messages = (payload,)
            # (only the world's own wake-ups have no customer, and they return no messages; an
            # assert, not a cast: a cast is a call, and this runs for every item)
            assert customer is not None
            number = customer
            for message in messages:
                handled += 1
                number, effects = apply(number, message, at)
                if type(message) is DeliveryReceipt:
                    observe_receipt(message, number)
                if effects:
                    route(number, effects, at)


def _no_progress(at: float) -> None:
    """No one asked to be told."""
