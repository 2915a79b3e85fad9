"""The outbox: every send leaves through here, with retries, a rate limit and a circuit breaker.

    deliver_nowait(at, send) -> the channel's queue -> one of its workers:
        wait for the channel's breaker to admit the call, then for the rate limit (a token bucket)
        provider.send(send), retried with exponential backoff and jitter (tenacity), honouring
        the provider's Retry-After; a permanent error is not retried; any other exception a
        provider raises is a retryable ``ProviderError`` naming it (cancellation propagates)
        after the last try: the dead-letter list (visible to the admin API and metrics)

Each send carries its idempotency key, derived by the core from (customer, journey, entry, step,
n): a provider that honours keys never delivers one twice, however often it is retried or
re-sent after a restart. Nothing is dropped silently: a send is pending, delivered or dead.
A bounded number of workers per channel: no task per send.

A ``SettledLog`` remembers, across a crash, which sends were settled (delivered or dead-lettered)
since the last snapshot, so a restart re-sends only what may not have gone out. A
``DeadLetterFile`` keeps the sends given up on, so the dead-letter list survives restarts too. What stays is
inherent: a provider may accept a send an instant before the engine dies, before the engine
hears back; that send goes out again under the same key, at most one per call in flight.

Two ways to end ``run``: ``close`` drains (every queued send is settled, however long that
takes), ``stop(grace)`` ends in bounded time and leaves what is not settled in ``pending``, for
the final snapshot and a restart to hand over again under the same keys.

Memory stays bounded whatever clients and providers do: the dead letters and the escalations keep
the latest ``memory_limit`` in memory, and ``statistics`` counts the rest; a failed write to
either file is counted, never raised into a worker.
"""

from __future__ import annotations

import enum
import errno
import json
import math
import os
import random
import sys
from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, NamedTuple, Protocol

import anyio
import anyio.lowlevel
import msgspec
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from actors.codec import send_record
from actors.errors import EngineInternalError, ProviderError
from actors.messages import Escalated, Send


class Provider(Protocol):
    """A channel provider: takes one send or raises ``ProviderError``."""

    async def send(self, send: Send) -> None:
        """Deliver one send (its ``key`` is the idempotency key)."""


class BreakerState(enum.Enum):
    """Where a ``CircuitBreaker`` is."""

    CLOSED = "closed"  # calls go through; failures in a row are counted
    OPEN = "open"  # calls wait until ``opened_at + reset``
    HALF_OPEN = "half_open"  # one trial call is out; every other caller waits for its outcome


class Admission(enum.Enum):
    """What a ``CircuitBreaker`` let a caller make; its outcome goes back with it to ``record``."""

    CALL = "call"  # an ordinary call, through a closed breaker
    TRIAL = "trial"  # the one call that decides whether a half-open breaker closes


class CircuitBreaker:
    """Opens after ``failures`` failures in a row; after ``reset`` seconds, one trial call decides.

        CLOSED     -- ``failures`` failures in a row -->           OPEN (``opened_at`` = now)
        OPEN       -- ``reset`` passed, one caller admitted -->    HALF_OPEN (it is the trial)
        HALF_OPEN  -- the trial succeeds -->                       CLOSED (every waiter goes)
        HALF_OPEN  -- the trial fails -->                          OPEN for another ``reset``
        HALF_OPEN  -- the trial abandoned (cancelled, or an        OPEN, ``reset`` already passed:
                      unexpected error) -->                        the next caller is the trial

    Only the trial moves a breaker that is not closed: the outcomes of calls admitted before it
    opened change nothing. ``admit_nowait`` and ``record`` take the time as an argument;
    ``admit`` waits on the running clock, and ``admitted`` pairs it with ``record``/``abandon``.

    Args:
        failures: failures in a row that open the breaker.
        reset: seconds an open breaker waits before its trial.
    """

    def __init__(self, failures: int = 5, reset: float = 30.0) -> None:
        self.failures = failures
        self.reset = reset
        self.state = BreakerState.CLOSED
        self.consecutive = 0
        self.opened_at: float | None = None
        self._changed: anyio.Event | None = None  # made by the first waiter (needs a running loop)

    def admit_nowait(self, now: float) -> Admission:
        """Let a call through now.

        Returns:
            ``Admission.CALL`` when closed; ``Admission.TRIAL`` to the first caller once an open
            breaker's ``reset`` has passed (the breaker is then HALF_OPEN).

        Raises:
            anyio.WouldBlock: open before its reset, or half-open (the trial is out): await
                ``admit`` instead.
        """
        if self.state is BreakerState.CLOSED:
            return Admission.CALL
        if self.state is BreakerState.OPEN and now >= self._admits_at():
            self.state = BreakerState.HALF_OPEN
            return Admission.TRIAL
        raise anyio.WouldBlock

    async def admit(self) -> Admission:
        """Wait until a call may go through (as ``admit_nowait`` says), then let it; cancellable."""
        while True:
            try:
                return self.admit_nowait(anyio.current_time())
            except anyio.WouldBlock:
                pass
            if self._changed is None:
                self._changed = anyio.Event()
            changed = self._changed
            with anyio.move_on_at(self._admits_at()):  # the trial's time, or a change of state
                await changed.wait()

    def record(self, admission: Admission, ok: bool, now: float) -> None:
        """Count the outcome of a call this breaker admitted (see the table above)."""
        if admission is Admission.TRIAL:  # (the breaker is half-open: only the trial leaves it)
            self._enter(BreakerState.CLOSED if ok else BreakerState.OPEN, now)
        elif self.state is BreakerState.CLOSED:
            self.consecutive = 0 if ok else self.consecutive + 1
            if self.consecutive >= self.failures:
                self._enter(BreakerState.OPEN, now)

    def abandon(self, admission: Admission) -> None:
        """A call this breaker admitted ended without an outcome: a trial's turn passes on."""
        if admission is Admission.TRIAL:
            self.state = BreakerState.OPEN  # its reset has passed: the next caller is the trial
            self._notify()

    @asynccontextmanager
    async def admitted(self) -> AsyncIterator[Admission]:
        """``admit``, then tell the outcome by how the body ends.

        Normally: a success. With ``ProviderError``: a failure. With anything else (a
        cancellation, an unexpected error): ``abandon``. The exception propagates either way.
        """
        admission = await self.admit()
        try:
            yield admission
        except ProviderError:
            self.record(admission, False, anyio.current_time())
            raise
        except BaseException:
            self.abandon(admission)
            raise
        self.record(admission, True, anyio.current_time())

    def _admits_at(self) -> float:
        if self.state is BreakerState.OPEN:
            assert self.opened_at is not None
            return self.opened_at + self.reset
        return -math.inf if self.state is BreakerState.CLOSED else math.inf

    def _enter(self, state: BreakerState, now: float) -> None:
        self.state, self.consecutive = state, 0
        self.opened_at = None if state is BreakerState.CLOSED else now
        self._notify()

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None


class TokenBucket:
    """At most ``rate`` calls a second on average, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, rate)
        self.tokens = self.capacity
        self.updated = -math.inf

    async def take(self) -> None:
        """Wait for a token."""
        while True:
            now = anyio.current_time()
            if self.updated != -math.inf:
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            if self.tokens >= 1.0 - 1e-9:  # tolerance: a refill of exactly one token rounds below it
                self.tokens = max(0.0, self.tokens - 1.0)
                return
            await anyio.sleep((1.0 - self.tokens) / self.rate)


class _JsonLines:
    """An append-only file of JSON values, one a line, each written at once (not fsynced).

    A killed process loses no line: the kernel has them. A power cut may lose the last ones, and
    a line torn by a crash mid-write is skipped when read: both files below are built so that a
    lost line costs at most a repeat under the same idempotency key, or a missing list entry.

    Writes go straight to the file descriptor, unbuffered: a write that fails (a full disk)
    leaves nothing behind to be written later, at most a torn line, and the next write starts on
    a fresh line. A failed write is counted in ``write_failures`` and reported once on stderr
    until a write succeeds again; it is never raised.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.write_failures = 0
        self._open()

    def _open(self) -> None:
        """Open ``path`` to append (after a line torn by a crash, the next write starts afresh)."""
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._torn = _ends_mid_line(self.path)

    def read(self) -> Iterator[Any]:
        """Every whole line's value, oldest first."""
        return _JsonLines.read_file(self.path)

    @staticmethod
    def read_file(path: Path) -> Iterator[Any]:
        """Every whole line's value in ``path``, oldest first, read one line at a time."""
        with open(path, encoding="utf-8", errors="replace") as file:
            for line in file:
                try:
                    yield json.loads(line)
                except ValueError:
                    continue  # torn by a crash mid-write, or an empty line after a failed write

    def write(self, value: Any) -> bool:
        """Append one value; return False (and count it) when the write failed."""
        line = ("\n" if self._torn else "") + json.dumps(value) + "\n"
        data = memoryview(line.encode("utf-8"))
        try:
            while data:  # (a full disk may take part of it, then refuse the rest)
                written = os.write(self._fd, data)
                if not written:
                    raise OSError(errno.EIO, "the file took no byte")
                data = data[written:]
        except OSError as exc:
            if not self._torn:
                print(f"{self.path}: cannot write ({exc}); counting failed writes in "
                      "touchpoint_storage_write_failures", file=sys.stderr, flush=True)
            self.write_failures += 1
            self._torn = True  # a part may be there: the next write starts a fresh line
            return False
        self._torn = False
        return True

    def close(self) -> None:
        """Close the file."""
        os.close(self._fd)


def _ends_mid_line(path: Path) -> bool:
    """Whether the file at ``path`` ends without a line break (a line torn by a crash)."""
    with open(path, "rb") as file:
        if file.seek(0, os.SEEK_END) == 0:
            return False
        file.seek(-1, os.SEEK_END)
        return file.read(1) != b"\n"


class SettledLog(_JsonLines):
    """The idempotency keys of the sends settled since the last snapshot, one JSON string a line.

    Each key is written the moment its send settles; a key lost to a power cut or a failed write
    only means that send goes out again under its key. While a snapshot is being written in the
    background, the keys settled before it started wait in a second file (``<path>.prev``) until
    it is in place (``rotate``, ``drop_rotated``); a restart reads both.

    Args:
        path: the file (created if missing); the keys already in it, and in ``<path>.prev``,
            are ``settled_before``.
    """

    def __init__(self, path: Path) -> None:
        self.previous = path.with_name(path.name + ".prev")
        if self.previous.exists():  # a background snapshot did not finish: its keys still count
            self._append_to_previous(path)
        super().__init__(path)
        before = list(self.read()) + (list(_JsonLines.read_file(self.previous))
                                      if self.previous.exists() else [])
        self.settled_before = {key for key in before if isinstance(key, str)}

    def record(self, key: str) -> bool:
        """Remember that the send with this key is settled; False when the write failed."""
        return self.write(key)

    def restart(self) -> None:
        """Forget every key: call once a snapshot holds the state (its pending sends included)."""
        os.ftruncate(self._fd, 0)
        self._torn = False
        self.previous.unlink(missing_ok=True)

    def rotate(self) -> None:
        """Set the keys settled so far aside, as a background snapshot starts: keys from now on
        go to a fresh file. The snapshot's pending sends are exactly those not set aside."""
        os.close(self._fd)
        try:
            self._append_to_previous(self.path)
        finally:  # (keys keep being recorded, whatever became of the set-aside ones)
            self._open()

    def drop_rotated(self) -> None:
        """Forget the keys set aside: the background snapshot is in place."""
        self.previous.unlink(missing_ok=True)

    def _append_to_previous(self, path: Path) -> None:
        if not path.exists():
            return
        if self.previous.exists():  # an older background snapshot failed: keep adding
            with open(self.previous, "a", encoding="utf-8") as previous:  # (after a line break:
                previous.write("\n" + path.read_text(encoding="utf-8"))  # a torn line stays alone)
            path.unlink()
        else:
            path.rename(self.previous)


class DeadLetter(NamedTuple):
    """A send given up on, and why (the last error)."""

    send: Send
    reason: str


class DeadLetterFile(_JsonLines):
    """The sends given up on, kept across restarts: one JSON object a line, ``{"send", "error"}``.

    The file only grows: it is the operator's list of what did not go out, to act on and then
    archive or delete.

    Args:
        path: the file (created if missing).
    """

    def load(self) -> Iterator[DeadLetter]:
        """The sends given up on so far, oldest first, read one line at a time."""
        for entry in self.read():
            try:
                yield DeadLetter(Send(*entry["send"]), str(entry["error"]))
            except (KeyError, TypeError):
                continue  # not one of ours

    def record(self, send: Send, reason: str) -> bool:
        """Keep a send given up on, with the reason; False when the write failed."""
        return self.write({"send": send_record(send), "error": reason})


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
        escalations: escalations handed over since start.
        escalations_dropped_from_memory: of those, the ones no longer in ``escalations``.
        settled_log_write_failures: failed writes to the settled log (0 without one).
        dead_letter_write_failures: failed writes to the dead-letter file (0 without one).
    """

    pending: int
    delivered: int
    attempts: int
    receipts_refused: int
    dead_letters: int
    dead_letters_dropped_from_memory: int
    escalations: int
    escalations_dropped_from_memory: int
    settled_log_write_failures: int
    dead_letter_write_failures: int


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
        memory_limit: how many dead letters, and how many escalations, stay in memory (the
            latest); ``statistics`` counts them all.

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
        self.delivered = 0
        self.attempts = 0
        self.dead_letters: deque[DeadLetter] = deque(maxlen=memory_limit)  # the latest
        self.dead_letters_total = 0
        if dead_letter_file is not None:
            for letter in dead_letter_file.load():  # (one at a time: the file may be long)
                self._remember_dead(letter)
        self.escalations: deque[tuple[float, Escalated]] = deque(maxlen=memory_limit)  # (agent desk)
        self.escalations_total = 0
        self.receipts_refused = 0  # synthetic receipts a saturated engine could not take
        self._queues: dict[str, Queue] = {
            ch: anyio.create_memory_object_stream[Send](math.inf) for ch in self.providers
        }
        self._closed = self._stopping = False
        self._workers: anyio.CancelScope | None = None  # while ``run`` runs
        self._calls: set[anyio.CancelScope] = set()  # the provider calls in flight

    def deliver_nowait(self, at: float, item: Send | Escalated) -> None:
        """Take a send (the ``ChannelAdapter`` interface); escalations wait in ``escalations``.

        A send on a channel without a provider is dead-lettered at once. After ``close`` or
        ``stop`` a send is only added to ``pending`` (for the final snapshot), never queued;
        this never raises.
        """
        if not isinstance(item, Send):
            self.escalations.append((at, item))
            self.escalations_total += 1
            return
        if item.key in self.pending:
            return  # handed over again (a restart's re-send) while still queued: once is enough
        queue = self._queues.get(item.channel)
        if queue is None:
            self._dead(item, f"no provider for channel {item.channel!r}")
            return
        self.pending[item.key] = item
        if not (self._closed or self._stopping):
            queue[0].send_nowait(item)

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
            escalations=self.escalations_total,
            escalations_dropped_from_memory=self.escalations_total - len(self.escalations),
            settled_log_write_failures=self.settled_log.write_failures if self.settled_log else 0,
            dead_letter_write_failures=(
                self.dead_letter_file.write_failures if self.dead_letter_file else 0),
        )

    async def _worker(self, channel: str, receiver: MemoryObjectReceiveStream[Send]) -> None:
        async with receiver:
            async for send in receiver:
                await self._settle(channel, send)

    async def _settle(self, channel: str, send: Send) -> None:
        """Deliver or dead-letter ``send``; a stop's cancellation propagates, leaving it pending."""
        try:
            await self._try(channel, send)
        except ProviderError as exc:
            self._dead(send, str(exc))
        else:
            self.delivered += 1
            if self.settled_log is not None:
                self.settled_log.record(send.key)
        self.pending.pop(send.key, None)

    async def _try(self, channel: str, send: Send) -> None:
        provider, breaker = self.providers[channel], self.breakers[channel]
        bucket = self.buckets.get(channel)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=self._backoff,
            retry=retry_if_exception(lambda exc: isinstance(exc, ProviderError) and not exc.permanent),
            sleep=anyio.sleep,
            reraise=True,  # (a cancellation too: tenacity holds it for a moment, then raises it)
        )
        async for attempt in retrying:
            with attempt:
                async with breaker.admitted():
                    if bucket is not None:
                        await bucket.take()
                    await self._call(provider, send)
                return  # delivered: straight to ``_settle``, no checkpoint (where a stop could cut in)

    async def _call(self, provider: Provider, send: Send) -> None:
        """One provider call: ``ProviderError`` for any exception it raises but a cancellation."""
        await anyio.lowlevel.checkpoint_if_cancelled()  # a stopped worker starts no call
        self.attempts += 1
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

    def _backoff(self, state: RetryCallState) -> float:
        """Full-jitter exponential backoff, or the provider's Retry-After when it gave one."""
        error = state.outcome.exception() if state.outcome is not None else None
        if isinstance(error, ProviderError) and error.retry_after is not None:
            return error.retry_after
        ceiling = min(self.max_delay, self.base_delay * 2 ** (state.attempt_number - 1))
        return self.random.uniform(0.0, ceiling)
