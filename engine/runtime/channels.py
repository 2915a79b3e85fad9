"""Channel adapters: one interface for what the runtime hands its sends to, and the mock.

An adapter takes sends without blocking the engine (``deliver_nowait``); what it does with them
(a provider call, a retry, a dead letter) is its own business. ``MockChannel`` records every send
with the time of its trigger: the engine's test double, and a dry-run channel for users.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from actors.messages import Converted, Effect, Exited, Send, TimerFired
from engine.runtime.effects import EffectRouter, Trace
from engine.runtime.scheduler import TimerQueue

if TYPE_CHECKING:
    from engine.runtime.desk import Desk
    from reports.metrics import RunMetrics

Observe = Callable[[str, list[Effect], float], None]  # (customer, effects, now)


class ChannelAdapter(Protocol):
    """What the real-time runtime hands its sends to."""

    def deliver_nowait(self, customer_id: str, item: Send, at: float) -> None:
        """Take one send for ``customer_id``, caused at ``at`` (when its trigger
        happened: the event's acceptance, or its timer's due time); must not block.

        (The customer comes first, as the effect router hands every destination its effects.)
        """


class MockChannel:
    """Records every send as ``(at, item)`` (``at``: when its trigger happened), in the order
    handed over."""

    def __init__(self) -> None:
        self.delivered: list[tuple[float, Send]] = []

    def deliver_nowait(self, customer_id: str, item: Send, at: float) -> None:
        """Record the item."""
        self.delivered.append((at, item))


def recalling(observe: Observe, channel: ChannelAdapter, count: Callable[[str, int], None]) -> Observe:
    """``observe``, and when a run is stopped (an exit event) or converts, its marketing sends
    still waiting in the channel's queues recalled (``Outbox.recall``) and ``count(journey,
    recalled)`` told: a send must not go out after the purchase that made it pointless. A run
    that reaches its end step keeps its sends, and so does a send made in the same moment as
    the exit. A channel that sends at once (the mock) has nothing to recall: ``observe`` is
    returned as it is."""
    recall: Callable[[str, str, frozenset[str]], int] | None = getattr(channel, "recall", None)
    if recall is None:
        return observe

    def observing(customer: str, effects: list[Effect], now: float) -> None:
        observe(customer, effects, now)
        made_now: frozenset[str] | None = None
        for effect in effects:
            if isinstance(effect, Exited) and effect.reason in _KEEP_SENDS:
                continue
            if isinstance(effect, (Exited, Converted)):
                if made_now is None:  # (once per list, and only for a list that stops a run)
                    made_now = frozenset(e.key for e in effects if isinstance(e, Send))
                recalled = recall(customer, effect.journey, made_now)
                if recalled:
                    count(effect.journey, recalled)

    return observing


_KEEP_SENDS = frozenset({"end", "holdout", "merged"})  # exits that stop nothing a run sent


def routes(
    timers: TimerQueue[str, TimerFired], channel: ChannelAdapter, metrics: RunMetrics, trace: Trace | None,
    desk: Desk,
) -> EffectRouter[str]:
    """The real-time runtime's effect routes: sends to the channel adapter, escalations to the
    agent desk (which also learns of the exits that abandon its waiting cases).

    The destinations are bound methods of the channel, the timer queue and the metrics, each
    already in the router's ``(customer, ...)`` shape, so a routed effect costs no adapter call.
    None is a method of the runtime: a router held by the runtime and holding it would be a
    reference cycle keeping a stopped runtime's actors alive until a full collection, measured
    as 600 MB more peak memory in ``bench.realtime``.
    """
    observe = recalling(metrics.observe, channel, metrics.count_recalled)

    def observing(customer: str, effects: list[Effect], now: float) -> None:
        observe(customer, effects, now)
        if desk.waiting:  # (only while a case waits for an agent)
            desk.exits(customer, effects, now)

    return EffectRouter(timers.push, channel.deliver_nowait, desk.escalate, observing, trace)
