"""A send step: the channel the policy allows, the ``Send`` it makes, or why it was held back.

The actor routes what comes out (``deliver``): a send to a channel adapter, to the in-app
queue until the next session, or to the agent desk. Sends and suppressions are noted on the
customer's timeline, which doubles as the send history the policies read, by ``note``: the actor
notes its events and escalations through it too, and ``take_receipt`` a receipt.
"""

from __future__ import annotations

import math
from array import array
from typing import TYPE_CHECKING

from actors.durations import local_time_of_day
from actors.journey import Journey, Program, SendStep
from actors.messages import DeliveryReceipt, Effect, Escalated, Send, Suppressed, send_key
from actors.policy import decide, on_block, rank_channels
from actors.profile import CLICKED, DELIVERED, OPENED, SENDS, SENT, Profile, about_send
from actors.runs import JourneyRun

if TYPE_CHECKING:
    from actors.actor import Actor

_NOT_THERE = ("unreachable", "no_consent")  # a channel the customer cannot be reached on at all


def try_send(
    program: Program,
    profile: Profile,
    journey: Journey,
    run: JourneyRun,
    step: SendStep,
    now: float,
    effects: list[Effect],
) -> tuple[Send | None, float | None]:
    """Send on the first channel the policy allows.

    Returns:
        ``(send, None)`` when a channel allowed it (the send is counted and noted, not routed);
        ``(None, retry_at)`` when every channel refused: ``Suppressed`` is in ``effects``, and
        ``retry_at`` is when to try again, or None when the send is dropped.
    """
    policy = program.policy
    channels = step.channels
    if step.best:  # with no engagement yet, the ranking is the one the compiler worked out
        no_history = profile.engagement is None and step.by_prior
        channels = step.by_prior if no_history else rank_channels(policy, profile, step.channels)
    blocked: tuple[str, str, float | None] | None = None
    for channel in channels:
        verdict = decide(policy, profile, step, channel, now)
        if verdict.allowed:
            return _make_send(program, profile, journey, run, step, channel, now), None
        rule = verdict.rule or ""
        if blocked is None or (rule not in _NOT_THERE and blocked[1] in _NOT_THERE):
            blocked = (channel, rule, verdict.retry_at)
    assert blocked is not None  # a send step has at least one channel (compiler)
    channel, rule, retry_at = blocked
    if retry_at is None or on_block(policy, rule) != "defer":
        retry_at = None
    elif retry_at <= now:  # a window edge rounded onto ``now``: retrying now would loop
        retry_at = math.nextafter(now, math.inf)
    effects.append(Suppressed(journey.id, step.id, channel, step.message, rule, retry_at))
    note(program, profile, now, "suppressed", channel, f"{step.message}:{rule}")
    return None, retry_at


def escalation(profile: Profile, journey: Journey, run: JourneyRun, step: str, queue: str) -> Escalated:
    """The hand-off of this customer to ``queue`` by ``step``, with their context: the timeline,
    and the event that entered them into the journey."""
    return Escalated(profile.customer_id, journey.id, queue, profile.timeline(), step, journey.entry_event,
                     run.context)


def note(program: Program, profile: Profile, now: float, kind: str, channel: str, detail: str) -> None:
    """Append an interaction to ``profile``'s timeline (``Profile.note``), keeping the sends the
    program's rolling-window policies may still read."""
    profile.note(now, kind, channel, detail, keep_sends_after=now - program.send_horizon)


def _make_send(
    program: Program,
    profile: Profile,
    journey: Journey,
    run: JourneyRun,
    step: SendStep,
    channel: str,
    now: float,
) -> Send:
    customer_id = profile.customer_id
    run.sends += 1
    key = send_key(customer_id, journey.id, run.entry, step.id, run.sends)
    send = Send(
        customer_id, journey.id, run.entry, step.id, channel, step.message, key, step.transactional
    )
    profile.count(channel, SENDS)
    # the timeline doubles as the send history the rolling-window policies read
    kind = "sent_transactional" if step.transactional else SENT
    note(program, profile, now, kind, channel, about_send(journey.id, step.message))
    return send


_RECEIPT_COUNTER = {"delivered": DELIVERED, "opened": OPENED, "clicked": CLICKED}


def take_receipt(program: Program, profile: Profile, receipt: DeliveryReceipt, now: float) -> None:
    """What a delivery receipt tells the profile: engagement counters, a lost address or consent,
    and (but for the routine ``delivered``) a timeline entry."""
    counter = _RECEIPT_COUNTER.get(receipt.status)
    if counter is not None:
        profile.count(receipt.channel, counter, now)
        if counter != DELIVERED:  # an open or a click: at which hour of their day
            hours = profile.engaged_hours
            if hours is None:
                hours = profile.engaged_hours = array("I", bytes(96))
            hours[int(local_time_of_day(now, profile.zone) // 3600) % 24] += 1
    elif receipt.status == "bounced":
        profile.set_reachable(receipt.channel, False)
    elif receipt.status == "unsubscribed":
        profile.withdraw_consent(receipt.channel)
    if receipt.status != "delivered":  # the routine outcome: counted, not worth a timeline slot
        detail = about_send(receipt.journey, receipt.message)
        note(program, profile, now, receipt.status, receipt.channel, detail)


def deliver(actor: Actor, journey: Journey, run: JourneyRun, send: Send, effects: list[Effect]) -> None:
    """Route a send the policy allowed: to a channel, the actor's in-app queue, or the agent desk."""
    if send.channel == "in_app":
        if actor.in_app is None:
            actor.in_app = []
        actor.in_app.append(send)
    elif send.channel == "agent":  # an agent's outreach: queued for people, like an escalation
        effects.append(escalation(actor.profile, journey, run, send.step, "agent"))
    else:
        effects.append(send)


def still_relevant(actor: Actor, send: Send) -> bool:
    """An in-app message waiting for a session is dropped once its journey entry converted or was
    superseded by a new entry."""
    journey = actor.program.by_id.get(send.journey)
    run = actor.runs[journey.index] if journey is not None and actor.runs is not None else None
    return run is not None and run.entry == send.entry and not run.converted
