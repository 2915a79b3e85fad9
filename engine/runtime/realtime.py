"""The real-time runtime: the same actor core, driven by the wall clock under anyio (trio first).

One task does everything, on purpose (ARCHITECTURE.md: never a task per actor or per timer):

    loop:
        wait for the next batch, but only until the next timer is due (move_on_at)
        take every batch already queued too (receive_nowait): one wake-up for many events
        add the timers now due, in (time, -priority, sequence) order, up to TIMERS_PER_BATCH
        append all of it to the write-ahead log: one write, one fsync (group commit)
        release the submitters waiting for durability (the point an HTTP edge answers 2xx)
        hand each message to its actor at its time (the round's, or an event's own timestamp:
        engine.runtime.ingest) by actors.routing.way_in, the one way in; route the effects
        (engine.runtime.effects.EffectRouter):
            Schedule -> the one TimerQueue; Send -> the channel adapter; Escalated -> the
            agent desk (engine.runtime.desk), which agents' CaseAction messages reach too

Ingestion hands batches of ``Submission(customer_id, message, message_id)`` records over with
``submit`` (returns once they are durable), ``ingest`` or ``ingest_nowait`` (a bounded memory
stream: when it is full, ``anyio.WouldBlock`` tells the caller to push back). ``submit`` never
waits for ever: it raises ``EngineUnavailable`` (an edge answers 503) when the log cannot be
written (a full disk: the batch is not applied, the timers of that round are put back and tried
again a second later, and the next batch that can be written succeeds) or when the engine has
failed or is stopping.

Failure is loud, never half-alive: if anything raises inside the loop (our bug), ``run`` refuses
every batch waiting for it and every later one, records the error in ``failure`` and re-raises,
for the service to stop the process (a supervisor restarts it; the log is the truth). ``close``
is bounded: the batches already queued are handled, and timers still due stay with their actors
(a snapshot keeps them; they fire at the next start).

The log holds timer firings too, with their times, so replaying it through the pure core
(``engine.storage.recovery.recover``) rebuilds exactly the state the engine had. Engine time is seconds
since the epoch: ``epoch + anyio.current_time()``; with trio's ``MockClock`` and ``epoch=0`` it
runs on simulated time, which is how it is shown to give the simulation's very trace.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from actors.actor import Actor
from actors.journey import Program
from actors.messages import Message, Schedule, Submission, TimerFired
from actors.profile import Profile
from actors.routing import Aliases, current_actor, way_in
from engine.runtime.channels import ChannelAdapter, routes
from engine.runtime.dedupe import SeenMessageIds
from engine.runtime.desk import Desk
from engine.runtime.effects import Trace
from engine.runtime.ingest import EVENT_TIME_BOUND, Batch, EngineUnavailable, Ticket, Work, when_applied
from engine.runtime.latency import LatencyHistogram
from engine.runtime.scheduler import Item, TimerQueue
from engine.storage.dormant import Dormant
from engine.storage.errors import StorageError
from engine.storage.snapshots import collector_paused
from engine.storage.wal import Logged, WriteAheadLog
from reports.metrics import RunMetrics

ProfileFactory = Callable[[str], Profile]
TIMERS_PER_BATCH = 8192  # due timers beyond this wait for the next round, so events get a turn
STORAGE_RETRY = 1.0  # seconds before due timers are tried again after the log could not be written


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
        metrics: the running statistics to go on from (a recovery's); default: new ones.
        event_time_bound: how far back (seconds) an event is applied at its corrected
            timestamp; an older one is ``Recorded`` (counted in the profile, acted on by no
            journey), and any event is applied no earlier than its customer's latest
            interaction (``Actor.handle``).
        desk: the agent desk escalations open cases in (a recovery's; default: a new one);
            agents' ``CaseAction`` messages go to it.
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
        trace: Trace | None = None,
        metrics: RunMetrics | None = None,
        event_time_bound: float = EVENT_TIME_BOUND,
        desk: Desk | None = None,
    ) -> None:
        self.program = program
        self.event_time_bound = event_time_bound
        self.channel = channel
        self.profiles = profiles
        self.epoch = epoch
        self.log = log
        self.actors: dict[str, Actor] = {}
        self.dormant = Dormant()  # actors restored from a snapshot, woken by their first message
        self.timers: TimerQueue[str, TimerFired] = TimerQueue()
        self.trace = trace
        self.handled = 0
        self.applied_lsn = log.next_lsn - 1 if log is not None else 0  # state includes the log to here
        self.seen = SeenMessageIds()  # client message ids applied in the last 24 hours
        self.aliases: Aliases[str] = Aliases()  # ids merged into others (identify, alias)
        # journey tallies, as the simulation keeps them (a recovery's, restored and replayed)
        self.metrics = metrics if metrics is not None else RunMetrics(program, 0, close_windows=True)
        self.desk = desk if desk is not None else Desk()
        self.effects = routes(self.timers, channel, self.metrics, trace, self.desk)
        self.failure: BaseException | None = None  # what stopped the engine (our bug), if anything
        self.storage_error: StorageError | None = None  # the log's last append failed with this
        self.storage_failures = 0  # rounds whose log append failed (nothing of them applied)
        self.timer_lateness = LatencyHistogram()  # due time to firing, per timer fired
        self.unlogged = 0  # messages without a waiting submitter lost to such rounds (receipts)
        self._storage_retry_at = -math.inf  # due timers wait until then after a failed append
        self._round: list[Batch] = []  # the batches being handled (refused if the loop fails)
        self._closed = False
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

    def state(self) -> dict[str, Any]:
        """The running statistics and the agent desk as plain data (a snapshot's ``metrics``)."""
        return {**self.metrics.state(), "desk": self.desk.state()}

    def actor(self, customer_id: str) -> Actor | None:
        """The actor of a customer (or of whom the id merged into), woken if it was dormant;
        None for a customer never seen."""
        return current_actor(self.actors, self.aliases, customer_id, self.dormant.wake)[1]

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
        """Engine time: seconds since the epoch (fixed at the first call, in the event loop, when
        none was given: an edge may stamp an event before the engine's loop first runs)."""
        if self.epoch is None:
            self.epoch = time.time() - anyio.current_time()
        return self.epoch + anyio.current_time()

    def ingest_nowait(self, customer_id: str, message: Message, message_id: str | None = None) -> None:
        """Queue a message for a customer's actor (one with an id already applied is skipped).

        Raises:
            anyio.WouldBlock: the engine is saturated; retry later (an HTTP edge answers 429).
        """
        self._inbox.send_nowait(([Submission(customer_id, message, message_id)], None))

    def ingest_batch_nowait(self, entries: Sequence[Submission]) -> None:
        """Queue a batch of submissions as one item: an edge that receives events in batches
        hands each over in one go (one wake-up, one queue slot).

        Raises:
            anyio.WouldBlock: the engine is saturated; retry later.
        """
        self._inbox.send_nowait((entries, None))

    async def ingest(self, customer_id: str, message: Message, message_id: str | None = None) -> None:
        """Queue a message, waiting while the engine is saturated."""
        await self._inbox.send(([Submission(customer_id, message, message_id)], None))

    @property
    def accepting(self) -> bool:
        """Whether a batch submitted now can be applied: the engine is running (not failed or
        stopping) and its log's last append worked."""
        return self.failure is None and self.storage_error is None and not self._closed

    async def submit(self, entries: Sequence[Submission]) -> None:
        """Queue a batch of submissions and return once it is in the write-ahead log (durable
        under fsync=batch). Entries whose message id was applied in the last 24 hours, or earlier
        in the same batch, are skipped: a client's retry applies once.

        Raises:
            EngineUnavailable: the batch was not applied: the log could not be written, or the
                engine failed or is stopping.
        """
        if self.failure is not None:
            raise EngineUnavailable("the engine has failed and is stopping")
        ticket = Ticket(self.now())
        try:
            await self._inbox.send((entries, ticket))
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            raise EngineUnavailable("the engine is stopping") from None
        await ticket.done.wait()
        if ticket.error is not None:
            raise ticket.error

    def close(self) -> None:
        """No more messages: ``run`` returns once the queued ones are handled."""
        self._closed = True
        self._inbox.close()

    async def run(self) -> None:
        """Handle messages and fire timers until ``close``; then handle what was queued, and
        return (timers still due stay pending: their actors keep them).

        Raises:
            whatever failed inside the loop (our bug), after refusing every waiting batch and
            recording it in ``failure``.
        """
        try:
            await self._loop()
        except anyio.get_cancelled_exc_class():
            self._refuse_waiting(EngineUnavailable("the engine is stopping"))
            raise
        except BaseException as exc:
            self.failure = exc
            self._refuse_waiting(EngineUnavailable("the engine has failed and is stopping"))
            raise

    def _refuse_waiting(self, error: EngineUnavailable) -> None:
        """Refuse the batches of the round in hand and every queued one; take no more."""
        self.close()
        waiting = list(self._round)
        while True:
            try:
                waiting.append(self._outbox.receive_nowait())
            except (anyio.WouldBlock, anyio.EndOfStream):
                break
        for _, ticket in waiting:
            if ticket is not None and not ticket.done.is_set():
                ticket.settle(error)

    async def _loop(self) -> None:
        self.now()  # (fixes the epoch, if no call did yet)
        epoch = self.epoch
        assert epoch is not None
        outbox: MemoryObjectReceiveStream[Batch] = self._outbox
        closing = False
        while not closing:
            batches: list[Batch] = []
            deadline = max(self.timers.peek_time(), self._storage_retry_at)
            with anyio.move_on_at(deadline - epoch if deadline != math.inf else math.inf):
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
        work: list[Work] = []
        times: list[float] = []  # when each message is applied (an event: when it happened)
        triggers: list[float] = []  # what each message's sends count their latency from
        fresh_ids: dict[str, None] = {}  # (a dict: a batch may hold thousands)
        seen, oldest = self.seen, now - self.event_time_bound
        for entries, ticket in batches:
            accepted = now if ticket is None else ticket.accepted_at
            for entry in entries:
                mid = entry.message_id
                if mid is not None:
                    if seen.seen(mid) or mid in fresh_ids:
                        continue  # a retry of what was already applied
                    fresh_ids[mid] = None
                entry, at = when_applied(entry, now, oldest)
                work.append(entry)
                times.append(at)
                triggers.append(accepted)
        due = self.timers.pop_due(now, TIMERS_PER_BATCH) if now >= self._storage_retry_at else []
        for at, _, _, customer_id, timer in due:  # (the rest: next round)
            work.append((customer_id, timer, None))
            times.append(now)
            triggers.append(at)  # (a timer's sends count from its due time)
        self._round = batches
        try:
            lsn = await self._log(work, times)
        except StorageError as exc:
            self._unlogged(batches, due, exc, now)
            return
        for _, ticket in batches:
            if ticket is not None:
                ticket.settle()
        seen.remember(fresh_ids, now)
        for at, *_ in due:
            self.timer_lateness.observe(now - at)
        self._apply(work, times, triggers)
        # the null paths of the windows that closed (a late event may yet convert: ``ingest``)
        self.metrics.paths.close_due(now - self.event_time_bound, self._peek)
        self.applied_lsn = lsn  # no await since the append: a snapshot sees all of it or none
        self._round = []

    async def _log(self, work: list[Work], times: list[float]) -> int:
        """Append the round to the write-ahead log, each message with the time it is applied at;
        return the last position it took."""
        if self.log is None or not work:
            return self.applied_lsn
        logged = [Logged(at, customer_id, message, mid)
                  for (customer_id, message, mid), at in zip(work, times, strict=True)]
        if self.log.fsync == "none":
            lsn = self.log.append(logged)
        else:  # fsync in a worker thread: batches keep queueing meanwhile (group commit).
            # (Under trio's MockClock the wait lets the clock jump: tests log with fsync="none".)
            lsn = await anyio.to_thread.run_sync(self.log.append, logged)
        if self.storage_error is not None:
            print("write-ahead log writable again", file=sys.stderr, flush=True)
            self.storage_error = None
        return lsn

    def _unlogged(
        self, batches: list[Batch], due: list[Item[str, TimerFired]], error: StorageError, now: float
    ) -> None:
        """A round the log could not take: refuse its batches, put its timers back (tried again
        ``STORAGE_RETRY`` seconds later), apply nothing of it."""
        if self.storage_error is None:  # told once an episode, not once a round
            print(f"cannot write to the log, refusing events (503) until it can: {error}",
                  file=sys.stderr, flush=True)
        self.storage_error = error
        self.storage_failures += 1
        refusal = EngineUnavailable(f"events cannot be stored now ({error}); retry later")
        for entries, ticket in batches:
            if ticket is None:
                self.unlogged += len(entries)
            else:
                ticket.settle(refusal)
        for at, negative_priority, _, customer_id, timer in due:
            self.timers.push(at, customer_id, timer, -negative_priority)
        self._storage_retry_at = now + STORAGE_RETRY
        self._round = []

    def _apply(self, work: list[Work], times: list[float], triggers: list[float]) -> None:
        """Hand each message to its actor at its time (``times``) and route the effects at the
        time of its trigger (``triggers``: its batch's acceptance, or its timer's due time; a
        send's trigger latency counts from there), in the hot loop: names are local."""
        # (made each round, not kept: a runtime holding a closure over its own method would be a
        # reference cycle)
        apply = way_in(self.actors, self.aliases, self._new_actor, self.dormant.wake, self.desk.act,
                       self.metrics.uncount_customer)
        route = self.effects.route
        for (customer_id, message, _), now, trigger in zip(work, times, triggers, strict=True):
            # (a merged id's messages, and its stale timers, go to the customer it merged into)
            customer_id, effects = apply(customer_id, message, now)
            if effects:
                route(customer_id, effects, trigger)
        self.handled += len(work)

    def _peek(self, customer_id: str) -> Actor | None:  # (a dormant one is read, not woken)
        customer = self.aliases.resolve(customer_id)
        return self.actors.get(customer) or self.dormant.peek(customer)

    def _new_actor(self, customer_id: str) -> Actor:
        self.metrics.count_customer(customer_id)  # (the global holdout's denominators)
        return Actor(self.program, self.profiles(customer_id))

    def _arm(self, customer_id: str, timer: Schedule) -> None:
        fired = TimerFired(timer.journey, timer.version)
        self.timers.push(timer.at, customer_id, fired, timer.priority)

