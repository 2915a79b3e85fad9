"""Recovery: the engine's state rebuilt from a data folder, as the newest complete snapshot
(``snapshots.py``) plus the write-ahead log after it (``wal.py``), replayed through the pure core
and routed as the runtime routed it. The actors come back with their live timers, which the
runtime re-arms (a timer that came due while the engine was down fires once, at restart), and
with the sends to hand to the outbox again: pending at the snapshot, or produced by the replay.
The running statistics come back too: the snapshot's, plus the effects of the replay folded in,
so they are what one uninterrupted run would show.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from actors.actor import Actor
from actors.journey import Program
from actors.messages import Effect, Schedule, Send
from actors.profile import Profile
from actors.routing import Aliases, way_in
from engine.storage.dormant import Dormant
from engine.storage.snapshots import load_latest
from engine.storage.wal import WriteAheadLog

if TYPE_CHECKING:
    from engine.runtime.desk import Desk


class Tallies(Protocol):
    """Running statistics a recovery rebuilds (``reports.metrics.RunMetrics``)."""

    def restore(self, state: dict[str, Any]) -> None: ...

    def observe(self, customer: Any, effects: list[Effect], now: float) -> None: ...

    def count_customer(self, customer_id: str) -> None: ...

    def uncount_customer(self, customer_id: str) -> None: ...


def _no_tallies(customer_id: str) -> None:
    return None


class Recovered(NamedTuple):
    """What ``recover`` rebuilds from a data folder."""

    actors: dict[str, Actor]
    timers: list[tuple[str, Schedule]]
    log: WriteAheadLog
    seen: dict[str, float]
    resend: list[Send]
    aliases: dict[str, str]
    dormant: Dormant


def recover(
    data: Path,
    program: Program,
    profiles: Callable[[str], Profile] = Profile,
    fsync: str = "batch",
    wake: bool = True,
    tallies: Tallies | None = None,
    desk: Desk | None = None,
) -> Recovered:
    """Rebuild the engine's state from ``data``: the newest snapshot plus the log after it.

    ``fsync`` is the policy of the reopened log (see ``engine.storage.wal``). With ``wake=False``, the
    actors the log does not concern are left dormant (``Recovered.dormant``), their timers
    with them (``Dormant.live_timers``). ``tallies``, when given, takes the snapshot's statistics
    and then the effects of every replayed message, as the runtime observed them; ``desk``,
    when given, the snapshot's agent desk, and then the cases the replay opens and the agents'
    actions it applies, in the log's order, as the runtime did.

    Returns:
        The actors by id, their live timers ``(customer_id, schedule)`` to re-arm, the open log
        ready for appends, the client message ids applied (id -> when), and the sends to hand
        to the outbox again: those pending at the snapshot and those the replay produced. They
        may have gone out before the crash; their idempotency keys make a second try harmless
        at a provider that honours keys, and forgetting them is not an option. And the merged
        ids (source -> target), which the runtime keeps routing.

    Raises:
        StorageError: the newest complete snapshot is of a format this engine does not read, or
            the log is corrupted before its end (``engine.storage.errors``).
    """
    snapshot = load_latest(data / "snapshots", program, wake)
    actors, seen, resend = snapshot.actors, snapshot.seen, list(snapshot.pending)
    aliases: Aliases[str] = Aliases(snapshot.aliases)
    log = WriteAheadLog(data / "wal", fsync=fsync)

    def new_actor(customer_id: str) -> Actor:
        if tallies is not None:
            tallies.count_customer(customer_id)  # (as the runtime counted it: a customer seen)
        return Actor(program, profiles(customer_id))

    if desk is not None:
        desk.restore(snapshot.metrics.get("desk", {}))
    apply = way_in(actors, aliases, new_actor, snapshot.dormant.wake, desk.act if desk is not None else None,
                   tallies.uncount_customer if tallies is not None else _no_tallies)
    if tallies is not None:
        tallies.restore(snapshot.metrics)
    for entry in log.replay(after=snapshot.lsn):
        at = entry.at
        if entry.message_id is not None:
            seen[entry.message_id] = at
        # the pure core rebuilds the state, routed as the runtime routed it; of the effects only
        # the sends matter again
        customer, effects = apply(entry.customer_id, entry.message, at)
        resend.extend(e for e in effects if isinstance(e, Send))
        if tallies is not None and effects:
            tallies.observe(customer, effects, at)
        if desk is not None and effects:
            desk.observe(customer, effects, at)
    timers = [(cid, timer) for cid, actor in actors.items() for timer in actor.live_timers()]
    return Recovered(actors, timers, log, seen, resend, aliases.of, snapshot.dormant)
