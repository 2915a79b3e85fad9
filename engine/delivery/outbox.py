"""The outbox: every send leaves through here, with retries, a rate limit and a circuit breaker.

    deliver_nowait(customer, send, at) -> the channel's queue -> one of its workers:
        wait for the channel's breaker to admit the call, then for the rate limit (a token bucket)
        provider.send(send), retried with exponential backoff and jitter (tenacity), honouring
        the provider's Retry-After; a permanent error is not retried; any other exception a
        provider raises is a retryable ``ProviderError`` naming it (cancellation propagates)
        after the last try: the dead-letter list (visible to the admin API and metrics)

Each send carries its idempotency key, derived by the core from (customer, journey, entry, step,
n): a provider that honours keys never delivers one twice, however often it is retried or
re-sent after a restart. Nothing is dropped silently: a send is pending, delivered or dead.
A bounded number of workers per channel: no task per send.

A ``SettledLog`` (``engine.storage.outbox_files``) remembers, across a crash, which sends were settled
(delivered or dead-lettered) since the last snapshot, so a restart re-sends only what may not have
gone out. A ``DeadLetterFile`` keeps the sends given up on, so the dead-letter list survives
restarts too. The breaker and the rate limit are in ``engine.delivery.pacing``. What stays is inherent:
a provider may accept a send an instant before the engine dies, before the engine hears back;
that send goes out again under the same key, at most one per call in flight.

Two ways to end ``run``: ``close`` drains (every queued send is settled, however long that
takes), ``stop(grace)`` ends in bounded time and leaves what is not settled in ``pending``, for
the final snapshot and a restart to hand over again under the same keys.

Memory stays bounded whatever clients and providers do: the dead letters keep the latest
``memory_limit`` in memory, and ``statistics`` counts the rest; a failed write to
either file is counted, never raised into a worker.
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from collections.abc import Mapping
from typing import Annotated, Protocol

import anyio
import anyio.lowlevel
import msgspec
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

from actors.errors import EngineInternalError, ProviderError
from actors.messages import Send
from engine.delivery.pacing import CircuitBreaker, TokenBucket
from engine.runtime.latency import LatencyHistogram
from engine.storage.outbox_files import DeadLetter, DeadLetterFile, SettledLog


class Provider(Protocol):
    """A channel provider: takes one send or raises ``ProviderError``."""

    async def send(self, send: Send) -> None:
        """Deliver one send (its ``key`` is the idempotency key)."""


class OutboxSettings(msgspec.Struct, forbid_unknown_fields=True):
    """The ``[outbox]`` table of a service config file: ``Outbox`` arguments for every channel."""

    workers: Annotated[int, msgspec.Meta(ge=1)] = 8
    max_attempts: Annotated[int, msgspec.Meta(ge=1)] = 5
    base_delay: Annotated[float, msgspec.Meta(ge=0)] = 0.5
    max_delay: Annotated[float, msgspec.Meta(ge=0)] = 60.0
    breaker_failures: Annotated[int, msgspec.Meta(ge=1)] = 5
    breaker_reset: Annotated[float, msgspec.Meta(ge=0)] = 30.0
    memory_limit: Annotated[int, msgspec.Meta(ge=0)] = 10_000


class OutboxStatistics(msgspec.Struct, frozen=True):
    """What an ``Outbox`` has done so far (``Outbox.statistics``), for metrics.

    Attributes:
        pending: sends handed over and not settled.
        delivered: sends a provider accepted.
        attempts: provider calls made.
        receipts_refused: synthetic receipts a saturated engine could not take.
        dead_letters: sends given up on: those in the dead-letter file at start, and since.
        dead_letters_dropped_from_memory: of those, the ones no longer in ``dead_letters``
            (the file keeps them).
        settled_log_write_failures: failed writes to the settled log (0 without one).
        dead_letter_write_failures: failed writes to the dead-letter file (0 without one).
        recalled: marketing sends cancelled while they waited (their run exited or converted).
    """

    pending: int
    delivered: int
    attempts: int
    receipts_refused: int
    dead_letters: int
    dead_letters_dropped_from_memory: int
    settled_log_write_failures: int
    dead_letter_write_failures: int
    recalled: int = 0


Queue = tuple[MemoryObjectSendStream[Send], MemoryObjectReceiveStream[Send]]


class Outbox:
    """Queues, workers, retries and dead letters for every channel's provider.

    Args:
        providers: the provider of each channel (a send on a channel without one is dead-lettered).
        workers: concurrent calls per channel.
        max_attempts: tries per send before it goes to the dead letters.
        base_delay, max_delay: exponential backoff bounds, in seconds (full jitter).
        rates: sends per second allowed per channel (None: unlimited).
        breaker_failures, breaker_reset: the circuit breaker of each channel.
        seed: the jitter's random seed.
        settled_log: where each settled send's key is recorded (None: nowhere).
        dead_letter_file: where sends given up on are kept across restarts (None: in memory
            only); the latest of those already in it are ``dead_letters`` from the start.
        memory_limit: how many dead letters stay in memory (the latest); ``statistics`` counts
            them all.

    Attributes:
        trigger_latency: per send, from its trigger (``deliver_nowait``'s ``at``: the event's
            acceptance or the timer's due time) to its first provider call, rate limit included.
        clock: engine time now (default: Unix time, the engine's own default; a runtime on
            another clock sets its ``now``).

    Raises:
        ValueError: ``memory_limit`` is negative.
    """

    def __init__(
        self,
        providers: Mapping[str, Provider],
        *,
        workers: int = 8,
        max_attempts: int = 5,
        base_delay: float = 0.5,
        max_delay: float = 60.0,
        rates: Mapping[str, float] | None = None,
        breaker_failures: int = 5,
        breaker_reset: float = 30.0,
        seed: int | None = None,
        settled_log: SettledLog | None = None,
        dead_letter_file: DeadLetterFile | None = None,
        memory_limit: int = 10_000,
    ) -> None:
        if memory_limit < 0:
            raise ValueError(f"memory_limit={memory_limit}: give 0 or more entries to keep in memory")
        self.providers = dict(providers)
        self.settled_log = settled_log
        self.dead_letter_file = dead_letter_file
        self.workers = workers
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.random = random.Random(seed)
        self.buckets = {ch: TokenBucket(rate) for ch, rate in (rates or {}).items()}
        self.breakers = {ch: CircuitBreaker(breaker_failures, breaker_reset) for ch in self.providers}
        self.pending: dict[str, Send] = {}  # by idempotency key: handed over, not yet settled
        self.trigger_latency = LatencyHistogram()
        self.clock = time.time
        self._triggered_at: dict[str, float] = {}  # key -> trigger time, until the first call
        self.recalled = 0  # marketing sends cancelled in the queue: their run exited or converted
        self._queued: dict[tuple[str, str], list[str]] = {}  # (customer, journey) -> keys waiting
        self._taken: set[str] = set()  # keys a worker holds (in flight: never recalled)
        self._cancelled: set[str] = set()  # keys recalled while still in a queue
        self.delivered = 0
        self.attempts = 0
        self.dead_letters: deque[DeadLetter] = deque(maxlen=memory_limit)  # the latest
        self.dead_letters_total = 0
        if dead_letter_file is not None:
            for letter in dead_letter_file.load():  # (one at a time: the file may be long)
                self._remember_dead(letter)
        self.receipts_refused = 0  # synthetic receipts a saturated engine could not take
        self._queues: dict[str, Queue] = {
            ch: anyio.create_memory_object_stream[Send](math.inf) for ch in self.providers
        }
        self._closed = self._stopping = False
        self._workers: anyio.CancelScope | None = None  # while ``run`` runs
        self._calls: set[anyio.CancelScope] = set()  # the provider calls in flight

    def deliver_nowait(self, customer_id: str, item: Send, at: float) -> None:
        """Take a send (the ``ChannelAdapter`` interface) caused at ``at`` (what its trigger
        latency counts from).

        A send on a channel without a provider is dead-lettered at once. After ``close`` or
        ``stop`` a send is only added to ``pending`` (for the final snapshot), never queued;
        this never raises.
        """
        if item.key in self.pending:
            return  # handed over again (a restart's re-send) while still queued: once is enough
        queue = self._queues.get(item.channel)
        if queue is None:
            self._dead(item, f"no provider for channel {item.channel!r}")
            return
        self.pending[item.key] = item
        self._triggered_at[item.key] = at
        if not item.transactional:
            self._queued.setdefault((item.customer, item.journey), []).append(item.key)
        if not (self._closed or self._stopping):
            queue[0].send_nowait(item)

    def recall(self, customer_id: str, journey: str, keep: frozenset[str] = frozenset()) -> int:
        """Cancel ``customer_id``'s marketing sends of ``journey`` still waiting in a queue (their
        run was stopped or converted), but those in ``keep``; a send a worker already holds
        completes. Each one recalled is recorded as settled (a restart does not send it) and
        counted; returns how many."""
        keys = self._queued.pop((customer_id, journey), None)
        if not keys:
            return 0
        recalled = 0
        for key in keys:
            if key in keep:
                self._queued.setdefault((customer_id, journey), []).append(key)
                continue
            if key in self._taken or self.pending.pop(key, None) is None:
                continue  # in flight, or settled already
            self._triggered_at.pop(key, None)
            self._cancelled.add(key)
            recalled += 1
            if self.settled_log is not None:
                self.settled_log.record(key, recalled=True)
        self.recalled += recalled
        return recalled

    def close(self) -> None:
        """No more sends: ``run`` returns once every queued one is settled (a drain: unbounded
        with retries, an open breaker or a long queue; ``stop`` is the bounded way)."""
        self._closed = True
        for sender, _ in self._queues.values():
            sender.close()

    def stop(self, grace: float = 10.0) -> None:
        """End ``run`` in bounded time, leaving every send not settled in ``pending``.

        At once, workers take no more sends from the queues and every wait (a backoff, the
        breaker, the rate limit) is cancelled; a provider call in flight may finish within
        ``grace`` seconds (its outcome counts as usual: delivered, or failed and dead-lettered
        when that was its last try), and is cancelled after. ``run`` returns once every worker
        has stopped: within ``grace`` seconds. No send is dead-lettered, counted as delivered or
        recorded in the settled log because of the stop; those in ``pending`` go in the final
        snapshot and a restart hands them over again, under the same idempotency keys. Later
        ``deliver_nowait`` calls only add to ``pending``. Idempotent (a second call may only
        shorten the grace); before ``run``, ``run`` returns at once.

        Call it from the event loop that runs ``run``: it does not wait (await ``run``'s end).
        A cancelled call's provider may still have taken the send (it goes out again under its
        key after a restart): the grace is there to make that rare.
        """
        self._stopping = True
        if self._calls:
            cut_at = anyio.current_time() + grace
            for call in self._calls:
                call.shield = True  # from the workers' cancellation just below...
                call.deadline = min(call.deadline, cut_at)  # ...until the grace runs out
        if self._workers is not None:
            self._workers.cancel()

    async def run(self) -> None:
        """Run every channel's workers until ``close`` and the queues are drained, or ``stop``."""
        try:
            async with anyio.create_task_group() as tasks:
                self._workers = tasks.cancel_scope
                if self._stopping:
                    tasks.cancel_scope.cancel()
                for channel, (_, receiver) in self._queues.items():
                    for _ in range(self.workers):
                        tasks.start_soon(self._worker, channel, receiver.clone())
        finally:
            self._workers = None
            for _, receiver in self._queues.values():
                receiver.close()

    def statistics(self) -> OutboxStatistics:
        """What the outbox has done so far (see ``OutboxStatistics``)."""
        return OutboxStatistics(
            pending=len(self.pending),
            delivered=self.delivered,
            attempts=self.attempts,
            receipts_refused=self.receipts_refused,
            dead_letters=self.dead_letters_total,
            dead_letters_dropped_from_memory=self.dead_letters_total - len(self.dead_letters),
            settled_log_write_failures=self.settled_log.write_failures if self.settled_log else 0,
            dead_letter_write_failures=(
                self.dead_letter_file.write_failures if self.dead_letter_file else 0),
            recalled=self.recalled,
        )

    async def _worker(self, channel: str, receiver: MemoryObjectReceiveStream[Send]) -> None:
        async with receiver:
            async for send in receiver:
                await self._settle(channel, send)

    async def _settle(self, channel: str, send: Send) -> None:
        """Deliver or dead-letter ``send`` (unless it was recalled while it waited); a stop's
        cancellation propagates, leaving it pending."""
        key = send.key
        if key in self._cancelled:
            self._cancelled.discard(key)
            return
        self._taken.add(key)
        try:
            await self._try(channel, send)
        except ProviderError as exc:
            self._dead(send, str(exc))
        else:
            self.delivered += 1
            if self.settled_log is not None:
                self.settled_log.record(key)
        finally:
            self._taken.discard(key)
            self._triggered_at.pop(key, None)  # (a send given up on before any call)
            self._forget_queued(send)
        self.pending.pop(key, None)

    def _forget_queued(self, send: Send) -> None:
        keys = self._queued.get((send.customer, send.journey))
        if keys is not None and send.key in keys:
            keys.remove(send.key)
            if not keys:
                del self._queued[(send.customer, send.journey)]

    async def _try(self, channel: str, send: Send) -> None:
        provider, breaker = self.providers[channel], self.breakers[channel]
        bucket = self.buckets.get(channel)
        try:  # the first attempt: most sends need no more, nor the retry machinery's cost
            await self._attempt(provider, breaker, bucket, send)
            return  # delivered: straight to ``_settle``, no checkpoint (where a stop could cut in)
        except ProviderError as exc:
            if exc.permanent or self.max_attempts == 1:
                raise
            await anyio.sleep(self._delay(1, exc))
        retrying = AsyncRetrying(  # the attempts left, each after the backoff its failure calls for
            stop=stop_after_attempt(self.max_attempts - 1),
            wait=lambda state: self._delay(state.attempt_number + 1, state.outcome.exception()),
            retry=retry_if_exception(lambda exc: isinstance(exc, ProviderError) and not exc.permanent),
            sleep=anyio.sleep,
            reraise=True,  # (a cancellation too: tenacity holds it for a moment, then raises it)
        )
        async for attempt in retrying:
            with attempt:
                await self._attempt(provider, breaker, bucket, send)
                return

    async def _attempt(self, provider: Provider, breaker: CircuitBreaker, bucket: TokenBucket | None,
                       send: Send) -> None:
        """One attempt: through the breaker and the rate limit to the provider (as
        ``CircuitBreaker.admitted`` does, without a context manager's cost)."""
        admission = await breaker.admit()
        try:
            if bucket is not None:
                await bucket.take()
            await self._call(provider, send)
        except BaseException as exc:
            breaker.ended(admission, exc)
            raise
        breaker.ended(admission, None)

    async def _call(self, provider: Provider, send: Send) -> None:
        """One provider call: ``ProviderError`` for any exception it raises but a cancellation."""
        await anyio.lowlevel.checkpoint_if_cancelled()  # a stopped worker starts no call
        self.attempts += 1
        triggered_at = self._triggered_at.pop(send.key, None)  # (the first call only)
        if triggered_at is not None:
            self.trigger_latency.observe(self.clock() - triggered_at)
        with anyio.CancelScope() as call:  # ``stop`` shields it for its grace, then cuts it
            self._calls.add(call)
            try:
                await provider.send(send)
                return
            except ProviderError:
                if not call.cancel_called:
                    raise
            except Exception as exc:  # a provider's bug, or an error it did not translate
                if not call.cancel_called:
                    raise ProviderError(f"{type(exc).__name__}: {exc}") from None
            finally:
                self._calls.discard(call)
        # the stop's grace ran out mid-call: no outcome, and the send stays pending
        await anyio.lowlevel.checkpoint_if_cancelled()  # (the stop cancelled the workers)
        raise EngineInternalError(f"a provider call for {send.key} was cut short outside a stop")

    def _dead(self, send: Send, reason: str) -> None:
        self._remember_dead(DeadLetter(send, reason))
        if self.dead_letter_file is not None and not self.dead_letter_file.record(send, reason):
            return  # not settled, then: a crash before the next snapshot tries it again
        if self.settled_log is not None:
            self.settled_log.record(send.key)  # settled: a restart does not try it again

    def _remember_dead(self, letter: DeadLetter) -> None:
        self.dead_letters.append(letter)  # (the oldest leaves a full deque)
        self.dead_letters_total += 1

    def _delay(self, failed_attempts: int, error: BaseException | None) -> float:
        """The wait after the ``failed_attempts``-th failure: full-jitter exponential backoff, or
        the provider's Retry-After when it gave one."""
        if isinstance(error, ProviderError) and error.retry_after is not None:
            return error.retry_after
        ceiling = min(self.max_delay, self.base_delay * 2 ** (failed_attempts - 1))
        return self.random.uniform(0.0, ceiling)
