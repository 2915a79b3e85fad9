"""The agent API: the desk's queues and cases over HTTP (``engine.runtime.desk``).

    GET  /v1/desk                 per queue: the KPIs (the simulation's definitions), the backlog
                                  and the cases claimed
    GET  /v1/desk/{queue}         the queue's open cases, oldest first, each with the customer's
                                  context: timeline, journey and step that escalated, the event
                                  that entered them into it, and their traits
    GET  /v1/cases/{id}           one case (open, or closed lately)
    POST /v1/cases/{id}/claim     {"agent": "ann"}: a waiting case becomes ann's
    POST /v1/cases/{id}/reply     {"agent": "ann", "text": "..."}: the first reply is the case's
                                  first response
    POST /v1/cases/{id}/resolve   {"agent": "ann", "code": "refunded"}: the customer's actor is
                                  told the queue's resolve event (``ticket_resolved``)

Each needs ``Authorization: Bearer`` with the agent token or the admin token. An action is
checked against the case first (404 for no such case; 409 for a case claimed by someone else,
closed, or not claimed yet, saying which) and then logged like an event, so it is durable once
answered 200 with the case as it now stands; 503 when the engine cannot take it.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from actors.errors import IngestError
from actors.messages import CaseAction, Submission
from engine.edge.segment import decode_body
from engine.runtime.desk import ACTIONS, CLAIMED, Case
from engine.runtime.realtime import RealtimeRuntime

MAX_ACTION_BYTES = 64 * 1024


class ActionBody(msgspec.Struct, forbid_unknown_fields=True):
    """What an agent sends with an action."""

    agent: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    text: Annotated[str, msgspec.Meta(max_length=10_000)] = ""
    code: Annotated[str, msgspec.Meta(max_length=200)] = ""


_DECODER = msgspec.json.Decoder(ActionBody)


def parse_action(case_id: int, action: str, body: bytes) -> CaseAction:
    """The ``CaseAction`` an agent's request asks for.

    Raises:
        IngestError: an unknown action, a body that is not such an object, a reply without text
            or a resolution without a code (naming the field).
    """
    if action not in ACTIONS:
        raise IngestError(f"no action {action!r}; one of {', '.join(ACTIONS)}", field="action")
    decoded: ActionBody = decode_body(_DECODER, body, "body")
    if action == "reply" and not decoded.text.strip():
        raise IngestError("a reply needs its text", field="text")
    if action == "resolve" and not decoded.code.strip():
        raise IngestError("a resolution needs its code", field="code")
    return CaseAction(case_id, action, decoded.agent, decoded.text, decoded.code)


async def apply_action(runtime: RealtimeRuntime, action: CaseAction) -> tuple[int, dict[str, Any] | str]:
    """Check ``action`` against its case, log it and apply it: ``(200, the case)``, or a status
    and why not. Raises ``EngineUnavailable`` when the engine cannot take it."""
    desk = runtime.desk
    refused = desk.refusal(action)
    if refused is not None:
        return refused
    case = desk.case(action.case)
    assert case is not None  # (no refusal: it is open)
    await runtime.submit([Submission(case.customer, action)])
    if action.action == "claim" and (case.status != CLAIMED or case.agent != action.agent):
        return 409, f"case {case.id} was claimed by {case.agent} first"  # (a race, decided by the log)
    return 200, case_view(runtime, case)


def case_view(runtime: RealtimeRuntime, case: Case) -> dict[str, Any]:
    """A case as JSON-ready data, with the customer's traits as they are now."""
    view = case.view()
    view["timeline"] = [{"at": at, "kind": kind, "channel": channel, "detail": detail}
                        for at, kind, channel, detail in case.timeline]
    view["replies"] = [{"at": at, "agent": agent, "text": text} for at, agent, text in case.replies]
    actor = runtime.actor(case.customer)
    view["traits"] = dict(actor.profile.traits or {}) if actor is not None else {}
    return view


def queue_view(runtime: RealtimeRuntime, queue: str) -> dict[str, Any] | None:
    """A queue's KPIs and open cases; None for a queue the desk does not know."""
    desk = runtime.desk
    if queue not in desk.specs and queue not in desk.kpis:
        return None
    return {"queue": queue, "statistics": desk.statistics()[queue],
            "cases": [case_view(runtime, case) for case in desk.queue_cases(queue)]}
