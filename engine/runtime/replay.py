"""The replay runtime: a design run against recorded history, in simulated time.

A record is a call of the log as the service would have received it: ``(received_at,
submissions)``, the submissions made by the same edge (``engine.edge.segment.to_messages``).
Records are taken in the log's order, put back in time order within an hour (``in_time_order``:
an archive is in order only roughly). Before each, the journeys' timers due before its time fire
at their due times, from the one ``TimerQueue``; then its messages reach their actors as
the service applies them (``engine.runtime.ingest.when_applied``): an event at its own timestamp
when that lies within ``event_time_bound`` before its arrival, ``Recorded`` when older; a client's
retry (a message id applied within 24 hours) once; every message by ``actors.routing.way_in``.
After the last record, ``finish(until)`` fires the timers due up to ``until``.

Nothing answers the sends: there is no behaviour model. The only receipts are those the log
itself holds (Segment's "Email Opened" and the like, naming the send's journey and entry), and
an escalation opens a case no agent takes. A record stamped earlier than one already replayed
(out of place by more than the reorder window) arrives when the replay has got to: it is applied
at its own time as the service applies a late event, after the timers that came due meanwhile,
and counted as ``late``.

Pure: no clock and no I/O; sends and suppressions go to the callbacks the caller gives.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from operator import itemgetter

from actors.actor import Actor
from actors.journey import Program
from actors.messages import (
    Converted,
    DeliveryReceipt,
    Effect,
    Escalated,
    Event,
    Send,
    Submission,
    Suppressed,
    TimerFired,
)
from actors.profile import Profile
from actors.routing import Aliases, current_actor, way_in
from engine.runtime.dedupe import SeenMessageIds
from engine.runtime.effects import EffectRouter, Trace
from engine.runtime.ingest import EVENT_TIME_BOUND, when_applied
from engine.runtime.scheduler import TimerQueue
from reports.metrics import RunMetrics

# One call of the log: (when the service would have received it, its messages). A bare tuple: a
# NamedTuple costs some 200 ns more to make, a twentieth of reading a call.
Record = tuple[float, list[Submission]]


REORDER_WINDOW = 3600.0  # seconds: records out of order by less than this are put back in order
REORDER_RECORDS = 1_000_000  # and at most this many are held to do it (memory stays bounded)
CHUNK = 4096  # records sorted in at a time


def in_time_order(records: Iterable[Record], window: float = REORDER_WINDOW,
                  most: int = REORDER_RECORDS, chunk: int = CHUNK) -> Iterator[Record]:
    """``records`` in the order of their times, as far as a record is out of place by less than
    ``window`` seconds (an archive's calls are in order only roughly: clients flush at their own
    pace), holding at most ``most`` records; ties keep their order in the log. A record further
    out of place comes after those already released: the replay applies it late.

    Records are held in a list kept sorted by time: every ``chunk`` records the new ones are
    sorted (in C, and stably: ties stay in the log's order) and merged in, which for a log in
    order is only appending them, and those older than the newest by ``window`` are released.
    """
    held: list[Record] = []  # in time order
    fresh: list[Record] = []  # read since, in the log's order
    newest = -math.inf
    by_time = itemgetter(0)
    chunk = max(1, min(chunk, most))
    for record in records:
        fresh.append(record)
        if record[0] > newest:
            newest = record[0]
        if len(fresh) >= chunk:
            held = _merged(held, fresh, by_time)
            fresh = []
            ready = max(bisect_right(held, newest - window, key=by_time), len(held) - most)
            if ready:
                yield from held[:ready]
                del held[:ready]
    yield from _merged(held, fresh, by_time)


def _merged(held: list[Record], fresh: list[Record], by_time: Callable[[Record], float]) -> list[Record]:
    """``held`` (in time order) with ``fresh`` sorted in; ``held``'s first on equal times."""
    fresh.sort(key=by_time)
    if not held or not fresh or fresh[0][0] >= held[-1][0]:
        held.extend(fresh)
        return held
    return list(heapq.merge(held, fresh, key=by_time))


OnSend = Callable[[float, str, Send], None]  # (at, customer_id, send)
OnSuppressed = Callable[[float, str, Suppressed], None]
OnConverted = Callable[[float, str, Converted], None]


def _ignore(at: float, customer: str, effect: object) -> None:
    """No one asked for each send or suppression, only for the counts."""


class Replay:
    """Replay records through ``program``.

    Args:
        program: the compiled design.
        on_send: told each send as ``(at, customer_id, send)``.
        on_suppressed: told each suppressed send the same way.
        on_converted: told each conversion the same way (with its path and touches).
        trace: when given, every effect is appended to it as ``(at, customer_id, effect)``.
        event_time_bound: as the service's (``RealtimeRuntime``).
    """

    def __init__(
        self,
        program: Program,
        *,
        on_send: OnSend = _ignore,
        on_suppressed: OnSuppressed = _ignore,
        on_converted: OnConverted = _ignore,
        trace: Trace | None = None,
        event_time_bound: float = EVENT_TIME_BOUND,
    ) -> None:
        self.program = program
        self.bound = event_time_bound
        self.timers: TimerQueue[str, TimerFired] = TimerQueue()
        self.actors: dict[str, Actor] = {}
        self.aliases: Aliases[str] = Aliases()
        self.metrics = RunMetrics(program, 0, close_windows=True)  # (null paths as windows close)
        self.seen = SeenMessageIds()
        self.now = -math.inf  # how far the replay has got
        self.first: float | None = None  # the first record's time
        self.records = 0
        self.duplicates = 0  # messages of a client's retry, applied once
        self.late = 0  # records stamped earlier than the replay had got to
        self.receipts = 0  # receipts the log held
        self.messaged: Counter[str] = Counter()  # sends per customer
        metrics = self.metrics

        def send(customer: str, item: Send, at: float) -> None:
            self.messaged[customer] += 1
            on_send(at, customer, item)

        def observe(customer: str, effects: list[Effect], at: float) -> None:
            metrics.observe(customer, effects, at)
            for effect in effects:
                if type(effect) is Suppressed:
                    on_suppressed(at, customer, effect)
                elif type(effect) is Converted:
                    on_converted(at, customer, effect)

        def escalate(customer: str, escalated: Escalated, at: float) -> None:
            """No agent takes the case (counted by the metrics)."""

        self.effects: EffectRouter[str] = EffectRouter(self.timers.push, send, escalate, observe, trace)
        self._apply = way_in(self.actors, self.aliases, self._new_actor, gone=metrics.uncount_customer)

    def feed(self, records: Iterable[Record]) -> None:
        """Replay ``records`` in their order, firing the timers due between them."""
        # (the hot loop: names are local, and the counters too until the end)
        apply, route, seen = self._apply, self.effects.route, self.seen
        actors, merged, ignored = self.actors, self.aliases.of, self.program.ignored_events
        fire, peek, bound = self._fire_before, self.timers.peek_time, self.bound
        paths, actor_of = self.metrics.paths, self._actor_of
        known = seen.seen
        fresh_ids: list[str] = []  # ids applied since they were last handed to ``seen`` (in bulk)
        fresh_set: set[str] = set()
        since = self.now if math.isfinite(self.now) else -math.inf  # (when ``fresh_ids`` began)
        now, late, count, duplicates = self.now, 0, 0, 0
        try:
            for received_at, submissions in records:
                if received_at < now:
                    late += 1
                    received_at = now
                else:
                    if peek() < received_at:
                        fire(received_at)
                    if paths.next_close() < received_at - bound:  # (a late event may yet convert)
                        paths.close_due(received_at - bound, actor_of)
                now = received_at
                if not count and self.first is None:
                    self.first = received_at
                count += 1
                oldest = received_at - bound
                for entry in submissions:
                    message, customer = entry.message, entry.customer_id
                    if type(message) is Event and message.name in ignored and (
                            customer in actors or customer in merged):
                        # (browsing nothing reacts to, of a customer known already: it changes
                        continue  # nothing, ``Program.ignored_events``, and is left out)
                    mid = entry.message_id
                    if mid is not None:
                        if mid in fresh_set or known(mid):
                            duplicates += 1
                            continue
                        fresh_ids.append(mid)
                        fresh_set.add(mid)
                    if type(message) is Event:
                        entry, at = when_applied(entry, received_at, oldest)
                        message = entry.message
                    else:
                        at = received_at
                        if type(message) is DeliveryReceipt:
                            self.receipts += 1
                            self.metrics.observe_receipt(message)
                    customer, effects = apply(customer, message, at)
                    if effects:
                        route(customer, effects, received_at)
                if len(fresh_ids) >= 4096 or received_at - since > 3600.0:  # (ids expire to within an hour)
                    seen.remember(fresh_ids, received_at)
                    fresh_ids, fresh_set, since = [], set(), received_at
        finally:
            seen.remember(fresh_ids, now)
            self.now = now
            self.late += late
            self.records += count
            self.duplicates += duplicates

    def finish(self, until: float) -> int:
        """Fire the timers due up to ``until``; return how many are still queued after it."""
        self._fire_before(math.nextafter(until, math.inf))
        self.metrics.paths.close_due(math.nextafter(until, math.inf), self._actor_of)
        self.now = max(self.now, until)
        return len(self.timers)

    def _fire_before(self, at: float) -> None:
        """Fire every timer due before ``at``, each at its due time."""
        timers, apply, route = self.timers, self._apply, self.effects.route
        peek, pop = timers.peek_time, timers.pop
        while peek() < at:
            due, _, _, customer, timer = pop()
            customer, effects = apply(customer, timer, due)
            if effects:
                route(customer, effects, due)

    def _actor_of(self, customer_id: str) -> Actor | None:
        return current_actor(self.actors, self.aliases, customer_id)[1]

    def _new_actor(self, customer_id: str) -> Actor:
        self.metrics.count_customer(customer_id)  # (the global holdout's denominators)
        return Actor(self.program, Profile(customer_id))
