"""Channel adapters: one interface for what the runtime hands its sends to, and the mock.

An adapter takes sends without blocking the engine (``deliver_nowait``); what it does with them
(a provider call, a retry, a dead letter) is its own business. ``MockChannel`` records every send
with the time it was handed over: the engine's test double, and a dry-run channel for users.
"""

from __future__ import annotations

from typing import Protocol

from actors.messages import Escalated, Send


class ChannelAdapter(Protocol):
    """What the real-time runtime hands its sends and escalations to."""

    def deliver_nowait(self, customer_id: str, item: Send | Escalated, at: float) -> None:
        """Take one send (or escalation) for ``customer_id``, handed over at ``at``; must not block.

        (The customer comes first, as the effect router hands every destination its effects.)
        """


class MockChannel:
    """Records every send and escalation as ``(at, item)``, in the order handed over."""

    def __init__(self) -> None:
        self.delivered: list[tuple[float, Send | Escalated]] = []

    def deliver_nowait(self, customer_id: str, item: Send | Escalated, at: float) -> None:
        """Record the item."""
        self.delivered.append((at, item))
