"""The real-time runtime: the same actor core, driven by the wall clock under anyio (trio first).

One task does everything, on purpose (ARCHITECTURE.md: never a task per actor or per timer):

    loop:
        wait for the next batch, but only until the next timer is due (move_on_at)
        take every batch already queued too (receive_nowait): one wake-up for many events
        add the timers now due, in (time, -priority, sequence) order, up to TIMERS_PER_BATCH
        append all of it to the write-ahead log: one write, one fsync (group commit)
        release the submitters waiting for durability (the point an HTTP edge answers 2xx)
        hand each message to its actor at the batch's time; route the effects:
            Schedule -> the one TimerQueue; Send and Escalated -> the channel adapter

Ingestion hands batches over with ``submit`` (returns once they are durable), ``ingest`` or
``ingest_nowait`` (a bounded memory stream: when it is full, ``anyio.WouldBlock`` tells the caller
to push back). The log holds timer firings too, with their times, so replaying it through the
pure core (``engine.snapshots.recover``) rebuilds exactly the state the engine had. Engine time is seconds
since the epoch: ``epoch + anyio.current_time()``; with trio's ``MockClock`` and ``epoch=0`` it
runs on simulated time, which is how it is shown to give the simulation's very trace.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from actors.actor import Actor
from actors.journey import Program
from actors.messages import Effect, Escalated, Message, Schedule, Send, TimerFired
from actors.profile import Profile
from engine.channels import ChannelAdapter
from engine.dedupe import SeenMessageIds
from engine.identities import Aliases, apply_message
from engine.scheduler import TimerQueue
from engine.snapshots import Dormant, collector_paused
from engine.wal import WriteAheadLog
from reports.metrics import RunMetrics

ProfileFactory = Callable[[str], Profile]
Submitted = tuple[str, Message] | tuple[str, Message, str | None]  # (customer, message[, id])
Batch = tuple[Sequence[Submitted], anyio.Event | None]  # (entries, set when durable)
TIMERS_PER_BATCH = 8192  # due timers beyond this wait for the next round, so events get a turn


class RealtimeRuntime:
    """Drive actors on the wall clock.

    Args:
        program: the compiled scenario.
        channel: where sends and escalations go.
        profiles: makes the profile of a customer seen for the first time (default: an empty
            profile in UTC, reachable on the always-reachable channels only).
        epoch: engine time at ``anyio.current_time() == 0``; default: now in Unix time.
        buffer: how many batches may wait for the engine before ``ingest_nowait`` refuses.
        log: the write-ahead log every handled message goes to first (None: no durability).
        trace: when given, every effect is appended to it as ``(at, customer_id, effect)``.
    """

    def __init__(
        self,
        program: Program,
        channel: ChannelAdapter,
        *,
        profiles: ProfileFactory = Profile,
        epoch: float | None = None,
        buffer: int = 65_536,
        log: WriteAheadLog | None = None,
        trace: list[tuple[float, str, Effect]] | None = None,
    ) -> None:
        self.program = program
        self.channel = channel
        self.profiles = profiles
        self.epoch = epoch
        self.log = log
        self.actors: dict[str, Actor] = {}
        self.dormant = Dormant()  # actors restored from a snapshot, woken by their first message
        self.timers = TimerQueue()
        self.trace = trace
        self.handled = 0
        self.applied_lsn = log.next_lsn - 1 if log is not None else 0  # state includes the log to here
        self.seen = SeenMessageIds()  # client message ids applied in the last 24 hours
        self.aliases = Aliases()  # ids merged into others (identify, alias)
        self.metrics = RunMetrics(program, 0)  # journey tallies, as the simulation keeps them
        self._inbox, self._outbox = anyio.create_memory_object_stream[Batch](buffer)

    def restore(
        self,
        actors: dict[str, Actor],
        timers: list[tuple[str, Schedule]],
        seen: dict[str, float] | None = None,
        aliases: dict[str, str] | None = None,
        dormant: Dormant | None = None,
    ) -> None:
        """Take over recovered actors (and dormant ones), message ids and aliases, and re-arm
        the live timers of all of them (overdue ones fire at once)."""
        self.actors = actors
        self.seen.restore(seen or {})
        self.aliases = Aliases(aliases)
        for customer_id, timer in timers:
            self._arm(customer_id, timer)
        if dormant is not None:
            self.dormant = dormant
            with collector_paused():  # (a million new tuples: no collection needs to look)
                self.timers.push_many(dormant.live_timers())

    def actor(self, customer_id: str) -> Actor | None:
        """The actor of a customer (or of whom the id merged into), woken if it was dormant;
        None for a customer never seen."""
        customer_id = self.aliases.resolve(customer_id)
        actor = self.actors.get(customer_id)
        if actor is None:
            actor = self.dormant.wake(customer_id)
            if actor is not None:
                self.actors[customer_id] = actor
        return actor

    @property
    def actor_count(self) -> int:
        """Customers with state: actors and dormant ones."""
        return len(self.actors) + len(self.dormant)

    @property
    def saturated(self) -> bool:
        """Whether the inbox is full (an HTTP edge answers 429 then)."""
        stats = self._inbox.statistics()
        return stats.current_buffer_used >= stats.max_buffer_size

    @property
    def inbox_depth(self) -> int:
        """Batches waiting for the engine."""
        return self._inbox.statistics().current_buffer_used

    def now(self) -> float:
        """Engine time: seconds since the epoch."""
        return (self.epoch or 0.0) + anyio.current_time()

    def ingest_nowait(self, customer_id: str, message: Message, message_id: str | None = None) -> None:
        """Queue a message for a customer's actor (one with an id already applied is skipped).

        Raises:
            anyio.WouldBlock: the engine is saturated; retry later (an HTTP edge answers 429).
        """
        self._inbox.send_nowait(([(customer_id, message, message_id)], None))

    def ingest_batch_nowait(self, entries: Sequence[Submitted]) -> None:
        """Queue a batch of ``(customer_id, message[, message_id])`` as one item: an edge that
        receives events in batches hands each over in one go (one wake-up, one queue slot).

        Raises:
            anyio.WouldBlock: the engine is saturated; retry later.
        """
        self._inbox.send_nowait((entries, None))

    async def ingest(self, customer_id: str, message: Message, message_id: str | None = None) -> None:
        """Queue a message, waiting while the engine is saturated."""
        await self._inbox.send(([(customer_id, message, message_id)], None))

    async def submit(self, entries: Sequence[Submitted]) -> None:
        """Queue a batch of ``(customer_id, message[, message_id])`` and return once it is in the
        write-ahead log (durable under fsync=batch). Entries whose message id was applied in the
        last 24 hours, or earlier in the same batch, are skipped: a client's retry applies once."""
        durable = anyio.Event()
        await self._inbox.send((entries, durable))
        await durable.wait()

    def close(self) -> None:
        """No more messages: ``run`` returns once the queued ones are handled and the due timers fired."""
        self._inbox.close()

    async def run(self) -> None:
        """Handle messages and fire timers until ``close``; then handle what was queued and fire
        the timers already due, and return (timers due later stay pending)."""
        if self.epoch is None:
            self.epoch = time.time() - anyio.current_time()
        outbox: MemoryObjectReceiveStream[Batch] = self._outbox
        closing = False
        while not closing or self.timers.peek_time() <= self.now():
            batches: list[Batch] = []
            deadline = self.timers.peek_time()
            with anyio.move_on_at(deadline - self.epoch if deadline != math.inf else math.inf):
                try:
                    batches.append(await outbox.receive())
                except anyio.EndOfStream:
                    closing = True
            while not closing:  # everything already queued joins this batch
                try:
                    batches.append(outbox.receive_nowait())
                except anyio.WouldBlock:
                    break
                except anyio.EndOfStream:
                    closing = True
            await self._handle(batches)

    async def _handle(self, batches: list[Batch]) -> None:
        now = self.now()
        work: list[tuple[str, Message, str | None]] = []
        fresh_ids: dict[str, None] = {}  # (a dict: a batch may hold thousands)
        seen = self.seen
        for entries, _ in batches:
            for entry in entries:
                if len(entry) == 2:
                    work.append((*entry, None))
                    continue
                mid = entry[2]
                if mid is not None:
                    if seen.seen(mid) or mid in fresh_ids:
                        continue  # a retry of what was already applied
                    fresh_ids[mid] = None
                work.append(entry)  # type: ignore[arg-type]
        for _, _, _, customer_id, timer in self.timers.pop_due(now, TIMERS_PER_BATCH):  # the rest:
            work.append((customer_id, timer, None))  # next round
        lsn = self.applied_lsn
        if self.log is not None and work:
            logged = [(now, *entry) for entry in work]
            if self.log.fsync == "none":
                lsn = self.log.append(logged)
            else:  # fsync in a worker thread: batches keep queueing meanwhile (group commit).
                # (Under trio's MockClock the wait lets the clock jump: tests log with fsync="none".)
                lsn = await anyio.to_thread.run_sync(self.log.append, logged)
        for _, durable in batches:
            if durable is not None:
                durable.set()
        seen.remember(fresh_ids, now)
        self._apply(work, now)
        self.applied_lsn = lsn  # no await since the append: a snapshot sees all of it or none

    def _apply(self, work: list[tuple[str, Message, str | None]], now: float) -> None:
        """Hand each message to its actor and route the effects (the hot loop: names are local)."""
        actors, aliases, new_actor, wake = self.actors, self.aliases, self._new_actor, self.dormant.wake
        push, deliver = self.timers.push, self.channel.deliver_nowait
        observe, trace = self.metrics.observe_journeys, self.trace
        for customer_id, message, _ in work:
            # (a merged id's messages, and its stale timers, go to the customer it merged into)
            customer_id, effects = apply_message(actors, aliases, new_actor, customer_id, message, now,
                                                 wake)
            if not effects:
                continue
            for effect in effects:
                kind = type(effect)
                if kind is Schedule:
                    timer: Schedule = effect  # type: ignore[assignment]
                    push(timer.at, customer_id, TimerFired(timer.journey, timer.version), timer.priority)
                elif kind is Send or kind is Escalated:
                    deliver(now, effect)  # type: ignore[arg-type]
            observe(effects)
            if trace is not None:
                trace.extend((now, customer_id, effect) for effect in effects)
        self.handled += len(work)

    def _new_actor(self, customer_id: str) -> Actor:
        return Actor(self.program, self.profiles(customer_id))

    def _arm(self, customer_id: str, timer: Schedule) -> None:
        fired = TimerFired(timer.journey, timer.version)
        self.timers.push(timer.at, customer_id, fired, timer.priority)  # type: ignore[arg-type]
