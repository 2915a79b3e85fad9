"""Agent queues for escalations, modelled as SimPy Resources (one per queue).

An escalated customer waits for a free agent (or abandons after an exponential patience), is
handled for an exponential handle time, and the world is told when the case is resolved: the
actor receives the queue's ``resolve_event`` (or ``chat_abandoned``). KPIs follow REFERENCE.md
section 5: wait (the average speed of answer), first response time (the wait plus the agent's
first reply), service level (answered within the target wait), abandonment, handle and
resolution time, occupancy, backlog.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Generator
from typing import Any

import numpy as np
import simpy

from actors.messages import Event, Message
from scenarios.config import AgentQueueSpec
from scenarios.draws import AGENT, Draws


class _Queue:
    __slots__ = ("name", "spec", "resource", "handle_mean", "patience_mean", "reply_mean", "target",
                 "waits", "first_responses", "handles", "resolutions", "abandoned", "cases", "busy")

    def __init__(self, env: simpy.Environment, name: str, spec: AgentQueueSpec) -> None:
        self.name = name
        self.spec = spec
        self.resource = simpy.Resource(env, capacity=spec.agents)
        self.handle_mean = float(spec.handle_time)  # seconds, decoded when the scenario was read
        self.patience_mean = float(spec.patience)
        self.reply_mean = float(spec.first_reply)
        self.target = float(spec.service_level)
        self.waits: list[float] = []
        self.first_responses: list[float] = []
        self.handles: list[float] = []
        self.resolutions: list[float] = []
        self.abandoned = 0
        self.cases = 0
        self.busy = 0.0


class AgentDesk:
    """Every agent queue of a simulation.

    Args:
        env: the SimPy environment (the simulation clock).
        specs: the scenario's ``[agents]`` tables; a queue named only by a journey gets defaults.
        draws: the random stream for patience and handle times.
        post: hands a message to a customer's actor at a time.
    """

    def __init__(
        self,
        env: simpy.Environment,
        specs: dict[str, AgentQueueSpec],
        draws: Draws,
        post: Callable[[float, int, Message], None],
    ) -> None:
        self.env = env
        self.draws = draws
        self.post = post
        self.queues = {name: _Queue(env, name, spec) for name, spec in sorted(specs.items())}
        self.open_cases = 0  # cases not yet resolved or abandoned: while 0, SimPy has no work
        self._cases_of: Counter[int] = Counter()  # cases so far by customer

    def escalate(self, customer: int, queue: str, at: float) -> None:
        """A customer joins ``queue`` at ``at`` (not before the SimPy clock's now)."""
        if queue not in self.queues:
            self.queues[queue] = _Queue(self.env, queue, AgentQueueSpec())
        self.open_cases += 1
        self.env.process(self._case(customer, self.queues[queue], at))

    def _case(self, customer: int, queue: _Queue, at: float) -> Generator[Any, Any, None]:
        try:
            yield from self._serve(customer, queue, at)
        finally:
            self.open_cases -= 1

    def _serve(self, customer: int, queue: _Queue, at: float) -> Generator[Any, Any, None]:
        env = self.env
        if at > env.now:
            yield env.timeout(at - env.now)
        queue.cases += 1
        arrived = env.now
        # the case's draws all at once, keyed by the customer's case number (common random
        # numbers: the same customer's n-th case is the same in every design)
        number = self._cases_of[customer]
        self._cases_of[customer] = number + 1
        draws = self.draws
        draws.begin(customer, AGENT, number)
        patience = draws.exponential(queue.patience_mean)
        handle = draws.exponential(queue.handle_mean)
        reply = draws.exponential(queue.reply_mean)
        with queue.resource.request() as request:
            outcome = yield request | env.timeout(patience)
            if request not in outcome:
                queue.abandoned += 1
                self.post(env.now, customer, Event("chat_abandoned", {"queue": queue.name}))
                return
            wait = env.now - arrived
            queue.waits.append(wait)
            # the agent's first reply comes during the handling, after reading the timeline
            queue.first_responses.append(wait + min(reply, handle))
            yield env.timeout(handle)
            queue.handles.append(handle)
            queue.busy += handle
        queue.resolutions.append(env.now - arrived)
        self.post(env.now, customer, Event(queue.spec.resolve_event, {"queue": queue.name}))

    def statistics(self, horizon: float) -> dict[str, dict[str, float]]:
        """KPIs per queue over a run of ``horizon`` seconds."""
        out = {}
        for name, q in self.queues.items():
            waits = np.asarray(q.waits)
            firsts = np.asarray(q.first_responses)
            answered = len(q.waits)
            out[name] = {
                "agents": q.spec.agents,
                "cases": q.cases,
                "answered": answered,
                "abandoned": q.abandoned,
                "abandonment_rate": q.abandoned / q.cases if q.cases else 0.0,
                "wait_mean_s": float(waits.mean()) if answered else 0.0,
                "wait_p90_s": float(np.percentile(waits, 90)) if answered else 0.0,
                "first_response_mean_s": float(firsts.mean()) if answered else 0.0,
                "first_response_p90_s": float(np.percentile(firsts, 90)) if answered else 0.0,
                "service_level": float((waits <= q.target).sum() / q.cases) if q.cases else 1.0,
                "service_level_target_s": q.target,
                "handle_time_mean_s": float(np.mean(q.handles)) if q.handles else 0.0,
                "resolution_mean_s": float(np.mean(q.resolutions)) if q.resolutions else 0.0,
                "resolution_p90_s": float(np.percentile(q.resolutions, 90)) if q.resolutions else 0.0,
                "occupancy": q.busy / (q.spec.agents * horizon) if horizon > 0 else 0.0,
                "backlog_at_end": len(q.resource.queue) + q.resource.count,
            }
        return out
