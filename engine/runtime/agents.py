"""Agent queues for escalations, modelled as SimPy Resources (one per queue).

An escalated customer waits for a free agent (or abandons after an exponential patience), is
handled for an exponential handle time, and the world is told when the case is resolved: the
actor receives the queue's ``resolve_event`` (or ``chat_abandoned``). KPIs follow REFERENCE.md
section 5: wait (the average speed of answer), first response time (the wait plus the agent's
first reply), service level (answered within the target wait), abandonment, handle and
resolution time, occupancy, backlog.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Generator
from typing import Any

import numpy as np
import simpy

from actors.messages import Event, Message
from scenarios.config import AgentQueueSpec
from scenarios.draws import AGENT, Draws


class QueueKpis:
    """One agent queue's KPIs as its cases go, defined once for the simulated desk (here) and the
    real one (``engine.runtime.desk``): REFERENCE.md section 5.

    A case counts when it arrives; an answered case's wait is the speed of answer, its first
    response the time from arrival to the agent's first reply, its handle time from pick-up to
    resolution, its resolution time from arrival to resolution. The service level is the share
    of all cases answered within the target wait; abandonment the share given up before an
    answer. Counts and means are exact; the 90th percentiles are over the last ``keep`` values
    (None: all of them, as a simulation keeps).
    """

    __slots__ = ("target", "cases", "abandoned", "within_target", "counts", "sums", "samples")

    KINDS = ("wait", "first_response", "handle", "resolution")

    def __init__(self, target: float, keep: int | None = None) -> None:
        self.target = target
        self.cases = 0
        self.abandoned = 0
        self.within_target = 0
        self.counts = dict.fromkeys(self.KINDS, 0)
        self.sums = dict.fromkeys(self.KINDS, 0.0)
        self.samples: dict[str, deque[float]] = {kind: deque(maxlen=keep) for kind in self.KINDS}

    def add(self, kind: str, seconds: float) -> None:
        """One case's ``kind`` of time (``wait``, ``first_response``, ``handle``, ``resolution``)."""
        self.counts[kind] += 1
        self.sums[kind] += seconds
        self.samples[kind].append(seconds)
        if kind == "wait" and seconds <= self.target:
            self.within_target += 1

    def statistics(self) -> dict[str, float]:
        """The KPIs so far."""
        counts = self.counts

        def mean(kind: str) -> float:
            return self.sums[kind] / counts[kind] if counts[kind] else 0.0

        def p90(kind: str) -> float:
            values = self.samples[kind]
            return float(np.percentile(np.fromiter(values, float, len(values)), 90)) if values else 0.0

        return {
            "cases": self.cases,
            "answered": counts["wait"],
            "abandoned": self.abandoned,
            "abandonment_rate": self.abandoned / self.cases if self.cases else 0.0,
            "wait_mean_s": mean("wait"),
            "wait_p90_s": p90("wait"),
            "first_response_mean_s": mean("first_response"),
            "first_response_p90_s": p90("first_response"),
            "service_level": self.within_target / self.cases if self.cases else 1.0,
            "service_level_target_s": self.target,
            "handle_time_mean_s": mean("handle"),
            "resolution_mean_s": mean("resolution"),
            "resolution_p90_s": p90("resolution"),
        }


class _Queue:
    __slots__ = ("name", "spec", "resource", "handle_mean", "patience_mean", "reply_mean", "kpis", "busy")

    def __init__(self, env: simpy.Environment, name: str, spec: AgentQueueSpec) -> None:
        self.name = name
        self.spec = spec
        self.resource = simpy.Resource(env, capacity=spec.agents)
        self.handle_mean = float(spec.handle_time)  # seconds, decoded when the scenario was read
        self.patience_mean = float(spec.patience)
        self.reply_mean = float(spec.first_reply)
        self.kpis = QueueKpis(float(spec.service_level))
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
        queue.kpis.cases += 1
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
                queue.kpis.abandoned += 1
                self.post(env.now, customer, Event("chat_abandoned", {"queue": queue.name}))
                return
            wait = env.now - arrived
            kpis = queue.kpis
            kpis.add("wait", wait)
            # the agent's first reply comes during the handling, after reading the timeline
            kpis.add("first_response", wait + min(reply, handle))
            yield env.timeout(handle)
            kpis.add("handle", handle)
            queue.busy += handle
        kpis.add("resolution", env.now - arrived)
        self.post(env.now, customer, Event(queue.spec.resolve_event, {"queue": queue.name}))

    def statistics(self, horizon: float) -> dict[str, dict[str, float]]:
        """KPIs per queue over a run of ``horizon`` seconds."""
        return {
            name: {"agents": q.spec.agents, **q.kpis.statistics(),
                   "occupancy": q.busy / (q.spec.agents * horizon) if horizon > 0 else 0.0,
                   "backlog_at_end": len(q.resource.queue) + q.resource.count}
            for name, q in self.queues.items()
        }
