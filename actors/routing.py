"""One way in: a message reaches its actor by ``way_in``, in every runtime and in recovery.

Identity first. When an anonymous visitor identifies (Segment ``identify`` with both ids) or one
id is aliased to another (``alias``), the edge hands the known customer a ``Merged(source)``
message. It is applied here, because it needs both actors: the source's actor folds into the
target's (``Actor.absorb``) and leaves the table, and the source id becomes an alias, so every
later message for it (events, receipts, the timers still queued for it) reaches the target.
Messages are logged under the id they came with and routed as they are applied, by the runtime
and by recovery alike, so one sent to the old id in the very batch of the merge lands on the
target too. The write-ahead log holds the ``Merged`` messages and the snapshots the alias table,
so a restart routes the same way.

Then the actor: a customer without one is woken from a snapshot (``wake``) or else gets a new
one (``new_actor``); ``current_actor`` is that lookup without the new actor, for what reads a
profile (the admin API, a provider's address). The key is whatever a runtime names customers
by: string ids in the real-time runtime and recovery, population numbers in the simulation
(which merges no one, so its alias table stays empty and costs a dict lookup a message). Pure:
no clock, no I/O.

An agent's ``CaseAction`` (claim, reply, resolve: the real-time desk) is logged under the
customer's id like any message, and goes to the desk (``act``) rather than the actor; a
resolution comes back as the event the actor is told.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, Protocol, TypeVar, cast

from actors.actor import Actor
from actors.messages import CaseAction, Effect, Event, Merged, Message

K = TypeVar("K", bound=Hashable)
K_contra = TypeVar("K_contra", bound=Hashable, contravariant=True)


class ActorTable(Protocol[K_contra]):
    """Where a runtime keeps its actors awake: a ``dict`` by customer id, or the simulation's
    list by population number (``engine.runtime.simulation.ActorList``)."""

    def get(self, customer: K_contra, /) -> Actor | None: ...

    def __setitem__(self, customer: K_contra, actor: Actor, /) -> None: ...

    def pop(self, customer: K_contra, default: None, /) -> Actor | None: ...


def _nobody(customer: object) -> None:
    """No actor to wake (no snapshot's dormant actors)."""
    return None


def _no_desk(action: CaseAction, now: float) -> None:
    """No agent desk (the simulation's agents are simulated): an action changes nothing."""
    return None


class Aliases(Generic[K]):
    """Customer ids merged into others: ``source -> target`` (targets may merge again later)."""

    def __init__(self, known: dict[K, K] | None = None) -> None:
        self.of: dict[K, K] = dict(known or {})

    def resolve(self, customer: K) -> K:
        """The key the customer's actor lives under now."""
        of = self.of
        while customer in of:
            customer = of[customer]
        return customer

    def merge(
        self,
        actors: ActorTable[K],
        target: K,
        into: Actor,
        source: K,
        now: float,
        wake: Callable[[K], Actor | None] = _nobody,
        gone: Callable[[K], None] = _nobody,
    ) -> list[Effect]:
        """Fold the actor of ``source`` (if it exists, in ``actors`` or to ``wake`` from a
        snapshot) into ``into``, the actor of ``target``, telling ``gone(source)`` that its
        actor is no more; return the effects.

        The source resolves to ``target`` from now on. Merging a customer into itself, or
        twice, changes nothing.
        """
        source = self.resolve(source)
        if source == target:
            return []
        self.of[source] = target
        absorbed = actors.pop(source, None)
        if absorbed is None:
            absorbed = wake(source)
        if absorbed is None:
            return []
        gone(source)
        return into.absorb(absorbed, now)


Apply = Callable[[K, Message, float], tuple[K, list[Effect]]]


def current_actor(
    actors: ActorTable[K],
    aliases: Aliases[K],
    customer: K,
    wake: Callable[[K], Actor | None] = _nobody,
) -> tuple[K, Actor | None]:
    """The key a customer's actor lives under (``customer``, or whom it merged into) and the
    actor, woken and added to ``actors`` if it was dormant; None for a customer never seen."""
    customer = aliases.resolve(customer)
    actor = actors.get(customer)
    if actor is None:
        actor = wake(customer)
        if actor is not None:
            actors[customer] = actor
    return customer, actor


def way_in(
    actors: ActorTable[K],
    aliases: Aliases[K],
    new_actor: Callable[[K], Actor],
    wake: Callable[[K], Actor | None] = _nobody,
    act: Callable[[CaseAction, float], Event | None] | None = None,
    gone: Callable[[K], None] = _nobody,
) -> Apply[K]:
    """The one way a runtime's messages reach their actors: ``apply(customer, message, now)``
    hands one message to the actor it concerns and returns ``(key, effects)``.

    Args:
        actors: the actors awake, by key; a new or woken actor is added.
        aliases: merged keys; a ``Merged`` message adds one.
        new_actor: makes the actor of a customer seen for the first time.
        wake: the actor of a customer kept dormant (from a snapshot), or None.
        act: the agent desk: takes a ``CaseAction`` and returns the event it tells the
            customer's actor (a resolution), or None (no desk: an action changes nothing).
        gone: told the key of an actor a merge folded into another (it counted as a customer
            when it was made: one person now, counted once).

    ``apply`` takes the key the message came with (it may be an alias), the message (a
    ``Merged`` folds its source's actor into this one) and the time it is applied at; it returns
    the key the actor lives under and the effects it produced. (A closure over the tables, made
    once per runtime: it runs for every message, and three arguments cost less than seven.)
    """
    get, merged_ids = actors.get, aliases.of
    act = act or _no_desk

    def apply(customer: K, message: Message, now: float) -> tuple[K, list[Effect]]:
        actor = None if customer in merged_ids else get(customer)
        if actor is None:  # (a merged id, or no actor awake: rare, so the full lookup is called)
            customer, actor = current_actor(actors, aliases, customer, wake)
            if actor is None:
                actor = new_actor(customer)
                actors[customer] = actor
        if type(message) is Merged:
            # (a Merged names its source by string id: only the string-keyed runtimes see one,
            # the simulated world merges no one)
            return customer, aliases.merge(actors, customer, actor, cast(K, message.source), now, wake, gone)
        if type(message) is CaseAction:  # (for the desk; what it tells the actor, if anything)
            told = act(message, now)
            return customer, [] if told is None else actor.handle(told, now)
        return customer, actor.handle(message, now)

    return apply
