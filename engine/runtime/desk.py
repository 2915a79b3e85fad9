"""The real-time agent desk: escalations become cases that people answer.

A case opens when an actor hands its customer to a queue (``Escalated``: a journey's escalate
step, or a send on the agent channel), in one of the queues the scenario declares
(``[agents.<queue>]``; a queue only a journey names gets the defaults). It carries the
customer's context: the timeline, the journey and step that escalated, and the event that
entered the customer into that journey.

Agents act through the API (``engine.edge.cases``): claim a waiting case, reply (the first reply
is the case's first response), resolve it with a resolution code. Each action is a
``CaseAction`` message logged under the customer's id like any other, so it is as durable as an
event and a recovery replays it; ``actors.routing.way_in`` hands it to ``act`` here, in the log's
order. A resolution tells the customer's actor the queue's resolve event (``ticket_resolved``,
with the queue, the case and the code), which a journey can wait for.

A case still waiting for an agent is abandoned when the customer leaves first: the journey that
escalated is stopped by one of its exit events (``chat_abandoned`` in the support scenario), the
real-time counterpart of the simulated customer's patience running out.

The KPIs are the simulation's (``engine.runtime.agents.QueueKpis``): per queue, and per journey
and queue. The open cases and the KPIs are part of every snapshot (``state``); the cases closed
lately (``CLOSED_KEPT``) stay readable by id, and the percentiles are over each queue's latest
``SAMPLES_KEPT`` times, so memory stays bounded while the counts and means stay exact.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from actors.messages import CaseAction, Effect, Escalated, Event, Exited
from engine.runtime.agents import QueueKpis
from scenarios.config import AgentQueueSpec

CLOSED_KEPT = 1000  # resolved or abandoned cases kept readable by id
SAMPLES_KEPT = 10_000  # times per queue and kind the percentiles are taken over
REPLIES_KEPT = 50  # replies a case keeps (the latest; the first one's time is kept apart)
_NOT_ABANDONING = frozenset({"end", "holdout", "merged"})  # exits that are not the customer leaving

WAITING, CLAIMED, RESOLVED, ABANDONED = "waiting", "claimed", "resolved", "abandoned"
ACTIONS = ("claim", "reply", "resolve")


class Case:
    """One escalation, from its opening to its resolution (times in engine seconds)."""

    __slots__ = ("id", "customer", "queue", "journey", "step", "trigger", "context", "timeline",
                 "opened_at", "status", "agent", "claimed_at", "first_reply_at", "replies",
                 "closed_at", "code")

    def __init__(self, case_id: int, customer: str, escalated: Escalated, at: float) -> None:
        self.id = case_id
        self.customer = customer
        self.queue = escalated.queue
        self.journey = escalated.journey
        self.step = escalated.step
        self.trigger = escalated.trigger
        self.context = dict(escalated.context)
        self.timeline = [list(entry) for entry in escalated.timeline]
        self.opened_at = at
        self.status = WAITING
        self.agent = ""
        self.claimed_at: float | None = None
        self.first_reply_at: float | None = None
        self.replies: list[list[Any]] = []  # [at, agent, text]
        self.closed_at: float | None = None
        self.code = ""

    def view(self) -> dict[str, Any]:
        """The case as plain data (the API's JSON, a snapshot's record)."""
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def from_view(cls, view: dict[str, Any]) -> Case:
        case = cls.__new__(cls)
        for name in cls.__slots__:
            setattr(case, name, view[name])
        return case


class Desk:
    """Every agent queue of a running engine, and their cases.

    Args:
        specs: the scenario's ``[agents]`` tables (a queue named only by a journey gets defaults).
    """

    def __init__(self, specs: dict[str, AgentQueueSpec] | None = None) -> None:
        self.specs = dict(specs or {})
        self.open: dict[int, Case] = {}  # waiting or claimed, by id (in the order they opened)
        self.closed: OrderedDict[int, Case] = OrderedDict()  # the latest CLOSED_KEPT
        self.waiting: dict[tuple[str, str], list[int]] = {}  # (customer, journey) -> waiting case ids
        self.kpis: dict[str, QueueKpis] = {}  # by queue
        self.by_journey: dict[tuple[str, str], QueueKpis] = {}  # by (journey, queue)
        self.next_id = 1

    def spec(self, queue: str) -> AgentQueueSpec:
        """The queue's settings (defaults for a queue the scenario does not declare)."""
        return self.specs.get(queue) or self.specs.setdefault(queue, AgentQueueSpec())

    def case(self, case_id: int) -> Case | None:
        """An open case, or one closed lately; None otherwise."""
        return self.open.get(case_id) or self.closed.get(case_id)

    def queue_cases(self, queue: str) -> list[Case]:
        """A queue's open cases, oldest first."""
        return [case for case in self.open.values() if case.queue == queue]

    # -- what the engine tells the desk ----------------------------------------------------------

    def escalate(self, customer: str, escalated: Escalated, now: float) -> None:
        """Open a case (the effect router's ``escalate``)."""
        case = Case(self.next_id, customer, escalated, now)
        self.next_id += 1
        self.open[case.id] = case
        self.waiting.setdefault((customer, case.journey), []).append(case.id)
        for kpis in self._tallies(case):
            kpis.cases += 1

    def exits(self, customer: str, effects: list[Effect], now: float) -> None:
        """Abandon the waiting cases of the journeys these effects stopped by an exit event."""
        for effect in effects:
            if type(effect) is Exited and effect.reason not in _NOT_ABANDONING:
                for case_id in self.waiting.pop((customer, effect.journey), ()):
                    case = self.open.pop(case_id)
                    case.status, case.closed_at = ABANDONED, now
                    self._close(case)
                    for kpis in self._tallies(case):
                        kpis.abandoned += 1

    def observe(self, customer: str, effects: list[Effect], now: float) -> None:
        """Both of the above, for a recovery's replay (the runtime routes them apart)."""
        for effect in effects:
            if type(effect) is Escalated:
                self.escalate(customer, effect, now)
        if self.waiting:
            self.exits(customer, effects, now)

    def refusal(self, action: CaseAction) -> tuple[int, str] | None:
        """Why ``action`` cannot be applied, as an HTTP status and a sentence; None if it can."""
        case = self.open.get(action.case)
        if case is None:
            closed = self.closed.get(action.case)
            return (404, f"no case {action.case}") if closed is None else (
                409, f"case {action.case} is {closed.status}")
        if action.action == "claim":
            return None if case.status == WAITING else (409, f"case {case.id} is claimed by {case.agent}")
        if case.status == WAITING:
            return 409, f"claim case {case.id} first"
        if case.agent != action.agent:
            return 409, f"case {case.id} is claimed by {case.agent}"
        return None

    def act(self, action: CaseAction, now: float) -> Event | None:
        """Apply an agent's action (a no-op when ``refusal`` objects: the API checked before
        logging it, and a race decides in the log's order); a resolution returns the event for
        the customer's actor."""
        if self.refusal(action) is not None:
            return None
        case = self.open[action.case]
        kpis = self._tallies(case)
        if action.action == "claim":
            case.status, case.agent, case.claimed_at = CLAIMED, action.agent, now
            self.waiting[(case.customer, case.journey)].remove(case.id)
            if not self.waiting[(case.customer, case.journey)]:
                del self.waiting[(case.customer, case.journey)]
            for tally in kpis:
                tally.add("wait", now - case.opened_at)
        elif action.action == "reply":
            if case.first_reply_at is None:
                case.first_reply_at = now
                for tally in kpis:
                    tally.add("first_response", now - case.opened_at)
            case.replies = [*case.replies, [now, action.agent, action.text]][-REPLIES_KEPT:]
        else:  # resolve
            del self.open[case.id]
            case.status, case.closed_at, case.code = RESOLVED, now, action.code
            self._close(case)
            for tally in kpis:
                tally.add("handle", now - (case.claimed_at or now))
                tally.add("resolution", now - case.opened_at)
            resolve_event = self.spec(case.queue).resolve_event
            return Event(resolve_event, {"queue": case.queue, "case": case.id, "code": action.code})
        return None

    # -- what it reports -------------------------------------------------------------------------

    def statistics(self) -> dict[str, dict[str, Any]]:
        """KPIs per queue, with the open cases now (the backlog) and the queue's agents."""
        queues = sorted({*self.specs, *self.kpis})
        return {queue: self._queue_statistics(queue, self._kpis(queue)) for queue in queues}

    def journey_statistics(self) -> dict[str, dict[str, dict[str, Any]]]:
        """KPIs of each journey's own cases, by queue."""
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for (journey, queue), kpis in sorted(self.by_journey.items()):
            out.setdefault(journey, {})[queue] = self._queue_statistics(queue, kpis, journey)
        return out

    def _queue_statistics(self, queue: str, kpis: QueueKpis, journey: str | None = None) -> dict[str, Any]:
        open_cases = [c for c in self.open.values()
                      if c.queue == queue and (journey is None or c.journey == journey)]
        return {"agents": self.spec(queue).agents, **kpis.statistics(),
                "backlog": len(open_cases), "claimed": sum(c.status == CLAIMED for c in open_cases)}

    # -- snapshots -------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Everything the desk holds, as plain data (a snapshot's ``desk``)."""
        return {
            "next_id": self.next_id,
            "open": [case.view() for case in self.open.values()],
            "closed": [case.view() for case in self.closed.values()],
            "kpis": {queue: _kpi_state(k) for queue, k in self.kpis.items()},
            "by_journey": [[journey, queue, _kpi_state(kpis)]
                           for (journey, queue), kpis in self.by_journey.items()],
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Go on from ``state`` (a snapshot's; empty: a snapshot from before the desk)."""
        if not state:
            return
        self.next_id = state["next_id"]
        self.open = {view["id"]: Case.from_view(view) for view in state["open"]}
        self.closed = OrderedDict((view["id"], Case.from_view(view)) for view in state["closed"])
        self.waiting = {}
        for case in self.open.values():
            if case.status == WAITING:
                self.waiting.setdefault((case.customer, case.journey), []).append(case.id)
        self.kpis = {queue: self._restored(queue, kpi) for queue, kpi in state["kpis"].items()}
        self.by_journey = {(journey, queue): self._restored(queue, kpi)
                           for journey, queue, kpi in state["by_journey"]}

    # -- inside ----------------------------------------------------------------------------------

    def _kpis(self, queue: str) -> QueueKpis:
        kpis = self.kpis.get(queue)
        if kpis is None:
            kpis = self.kpis[queue] = QueueKpis(float(self.spec(queue).service_level), SAMPLES_KEPT)
        return kpis

    def _tallies(self, case: Case) -> tuple[QueueKpis, QueueKpis]:
        """The queue's KPIs and those of the journey's cases in it."""
        key = (case.journey, case.queue)
        mine = self.by_journey.get(key)
        if mine is None:
            mine = self.by_journey[key] = QueueKpis(float(self.spec(case.queue).service_level), SAMPLES_KEPT)
        return self._kpis(case.queue), mine

    def _restored(self, queue: str, state: dict[str, Any]) -> QueueKpis:
        kpis = QueueKpis(float(self.spec(queue).service_level), SAMPLES_KEPT)
        kpis.cases, kpis.abandoned, kpis.within_target = state["cases"], state["abandoned"], state["within"]
        kpis.counts.update(state["counts"])
        kpis.sums.update(state["sums"])
        for kind, values in state["samples"].items():
            kpis.samples[kind].extend(values)
        return kpis

    def _close(self, case: Case) -> None:
        self.closed[case.id] = case
        while len(self.closed) > CLOSED_KEPT:
            self.closed.popitem(last=False)


def _kpi_state(kpis: QueueKpis) -> dict[str, Any]:
    return {"cases": kpis.cases, "abandoned": kpis.abandoned, "within": kpis.within_target,
            "counts": dict(kpis.counts), "sums": dict(kpis.sums),
            "samples": {kind: list(values) for kind, values in kpis.samples.items()}}
