"""Identity merges at the runtime level: which customer ids became other names of whom.

When an anonymous visitor identifies (Segment ``identify`` with both ids) or one id is aliased
to another (``alias``), the edge hands the known customer a ``Merged(source)`` message. The
runtime applies it here, because it needs both actors: the source's actor folds into the
target's (``Actor.absorb``) and leaves the table, and the source id becomes an alias, so every
later message for it (events, receipts, the timers still queued for it) reaches the target.
Messages are logged under the id they came with and routed as they are applied, by the runtime
and by recovery alike, so one sent to the old id in the very batch of the merge lands on the
target too. The write-ahead log holds the ``Merged`` messages and the snapshots the alias table,
so a restart routes the same way.
"""

from __future__ import annotations

from collections.abc import Callable

from actors.actor import Actor
from actors.messages import Effect, Merged, Message


def _nobody(customer_id: str) -> None:
    """No actor to wake (no snapshot's dormant actors)."""
    return None


class Aliases:
    """Customer ids merged into others: ``source -> target`` (targets may merge again later)."""

    def __init__(self, known: dict[str, str] | None = None) -> None:
        self.of: dict[str, str] = dict(known or {})

    def resolve(self, customer_id: str) -> str:
        """The id the customer's actor lives under now."""
        of = self.of
        while customer_id in of:
            customer_id = of[customer_id]
        return customer_id

    def merge(
        self,
        actors: dict[str, Actor],
        target: Actor,
        source_id: str,
        now: float,
        wake: Callable[[str], Actor | None] = _nobody,
    ) -> list[Effect]:
        """Fold the actor of ``source_id`` (if it exists, in ``actors`` or to ``wake`` from a
        snapshot) into ``target``; return the effects.

        The source id resolves to ``target`` from now on. Merging a customer into itself, or
        twice, changes nothing.
        """
        source_id = self.resolve(source_id)
        if source_id == target.customer_id:
            return []
        self.of[source_id] = target.customer_id
        source = actors.pop(source_id, None)
        if source is None:
            source = wake(source_id)
        return [] if source is None else target.absorb(source, now)


def apply_message(
    actors: dict[str, Actor],
    aliases: Aliases,
    new_actor: Callable[[str], Actor],
    customer_id: str,
    message: Message,
    now: float,
    wake: Callable[[str], Actor | None] = _nobody,
) -> tuple[str, list[Effect]]:
    """Hand one message to the actor it concerns, as the runtime and recovery both must: an
    aliased id resolves first, a customer not in ``actors`` is woken from a snapshot
    (``wake(id)``) or else gets ``new_actor(id)``, a ``Merged`` folds its source in. Returns the
    id the actor lives under and the effects."""
    if customer_id in aliases.of:
        customer_id = aliases.resolve(customer_id)
    actor = actors.get(customer_id)
    if actor is None:
        actor = wake(customer_id)
        if actor is None:
            actor = new_actor(customer_id)
        actors[customer_id] = actor
    if type(message) is Merged:
        return customer_id, aliases.merge(actors, actor, message.source, now, wake)
    return customer_id, actor.handle(message, now)
