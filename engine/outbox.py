"""The outbox: every send leaves through here, with retries, a rate limit and a circuit breaker.

    deliver_nowait(at, send) -> the channel's queue -> one of its workers:
        wait for the rate limit (a token bucket) and for the breaker to let calls through
        provider.send(send), retried with exponential backoff and jitter (tenacity), honouring
        the provider's Retry-After; a permanent error is not retried
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
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Protocol

import anyio
import msgspec
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from actors.codec import send_record
from actors.errors import ProviderError
from actors.messages import Escalated, Send


class Provider(Protocol):
    """A channel provider: takes one send or raises ``ProviderError``."""

    async def send(self, send: Send) -> None:
        """Deliver one send (its ``key`` is the idempotency key)."""


class CircuitBreaker:
    """Opens after ``failures`` failures in a row; lets one call through after ``reset`` seconds."""

    def __init__(self, failures: int = 5, reset: float = 30.0) -> None:
        self.failures = failures
        self.reset = reset
        self.consecutive = 0
        self.opened_at: float | None = None

    def wait_time(self, now: float) -> float:
        """Seconds to wait before calling (0 when closed or half-open)."""
        if self.opened_at is None:
            return 0.0
        return max(0.0, self.opened_at + self.reset - now)

    def record(self, ok: bool, now: float) -> None:
        """Count an outcome: success closes the breaker; enough failures open it."""
        if ok:
            self.consecutive, self.opened_at = 0, None
            return
        self.consecutive += 1
        if self.consecutive >= self.failures:
            self.opened_at = now


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
    """An append-only file of JSON values, one a line, written (flushed, not fsynced) at once.

    A killed process loses no line: the kernel has them. A power cut may lose the last ones, and
    a line torn by a crash mid-write is skipped when read: both files below are built so that a
    lost line costs at most a repeat under the same idempotency key, or a missing list entry.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = open(path, "a", encoding="utf-8")

    def read(self) -> list[Any]:
        """Every whole line's value, oldest first."""
        return _JsonLines.read_file(self.path)

    @staticmethod
    def read_file(path: Path) -> list[Any]:
        """Every whole line's value in ``path``, oldest first."""
        values = []
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                values.append(json.loads(line))
            except ValueError:
                continue  # torn by a crash mid-write
        return values

    def write(self, value: Any) -> None:
        """Append one value."""
        self._file.write(json.dumps(value) + "\n")
        self._file.flush()

    def close(self) -> None:
        """Close the file."""
        self._file.close()


class SettledLog(_JsonLines):
    """The idempotency keys of the sends settled since the last snapshot, one JSON string a line.

    Each key is written the moment its send settles; a key lost to a power cut only means that
    send goes out again under its key. While a snapshot is being written in the background, the
    keys settled before it started wait in a second file (``<path>.prev``) until it is in place
    (``rotate``, ``drop_rotated``); a restart reads both.

    Args:
        path: the file (created if missing); the keys already in it, and in ``<path>.prev``,
            are ``settled_before``.
    """

    def __init__(self, path: Path) -> None:
        self.previous = path.with_name(path.name + ".prev")
        if self.previous.exists():  # a background snapshot did not finish: its keys still count
            self._append_to_previous(path)
        super().__init__(path)
        before = self.read() + (_JsonLines.read_file(self.previous) if self.previous.exists() else [])
        self.settled_before = {key for key in before if isinstance(key, str)}

    def record(self, key: str) -> None:
        """Remember that the send with this key is settled."""
        self.write(key)

    def restart(self) -> None:
        """Forget every key: call once a snapshot holds the state (its pending sends included)."""
        self._file.truncate(0)
        self.previous.unlink(missing_ok=True)

    def rotate(self) -> None:
        """Set the keys settled so far aside, as a background snapshot starts: keys from now on
        go to a fresh file. The snapshot's pending sends are exactly those not set aside."""
        self._file.close()
        self._append_to_previous(self.path)
        self._file = open(self.path, "a", encoding="utf-8")

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


class DeadLetterFile(_JsonLines):
    """The sends given up on, kept across restarts: one JSON object a line, ``{"send", "error"}``.

    The file only grows: it is the operator's list of what did not go out, to act on and then
    archive or delete.

    Args:
        path: the file (created if missing).
    """

    def load(self) -> list[tuple[Send, str]]:
        """The sends given up on so far, oldest first, with the reason."""
        letters = []
        for entry in self.read():
            try:
                letters.append((Send(*entry["send"]), str(entry["error"])))
            except (KeyError, TypeError):
                continue  # not one of ours
        return letters

    def record(self, send: Send, reason: str) -> None:
        """Keep a send given up on, with the reason."""
        self.write({"send": send_record(send), "error": reason})


class OutboxSettings(msgspec.Struct, forbid_unknown_fields=True):
    """The ``[outbox]`` table of a service config file: ``Outbox`` arguments for every channel."""

    workers: Annotated[int, msgspec.Meta(ge=1)] = 8
    max_attempts: Annotated[int, msgspec.Meta(ge=1)] = 5
    base_delay: Annotated[float, msgspec.Meta(ge=0)] = 0.5
    max_delay: Annotated[float, msgspec.Meta(ge=0)] = 60.0
    breaker_failures: Annotated[int, msgspec.Meta(ge=1)] = 5
    breaker_reset: Annotated[float, msgspec.Meta(ge=0)] = 30.0


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
            only); those already in it are ``dead_letters`` from the start.
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
    ) -> None:
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
        self.dead_letters = [] if dead_letter_file is None else dead_letter_file.load()
        self.escalations: list[tuple[float, Escalated]] = []  # for the agent desk (not a provider's)
        self.receipts_refused = 0  # synthetic receipts a saturated engine could not take
        self._queues: dict[str, tuple[MemoryObjectSendStream[Send], MemoryObjectReceiveStream[Send]]] = {
            ch: anyio.create_memory_object_stream[Send](math.inf) for ch in self.providers
        }

    def deliver_nowait(self, at: float, item: Send | Escalated) -> None:
        """Take a send (the ``ChannelAdapter`` interface); escalations wait in ``escalations``."""
        if not isinstance(item, Send):
            self.escalations.append((at, item))
            return
        if item.key in self.pending:
            return  # handed over again (a restart's re-send) while still queued: once is enough
        queue = self._queues.get(item.channel)
        if queue is None:
            self._dead(item, f"no provider for channel {item.channel!r}")
            return
        self.pending[item.key] = item
        queue[0].send_nowait(item)

    def close(self) -> None:
        """No more sends: ``run`` returns once every queued one is settled."""
        for sender, _ in self._queues.values():
            sender.close()

    async def run(self) -> None:
        """Run every channel's workers until ``close`` and the queues are drained."""
        async with anyio.create_task_group() as tasks:
            for channel, (_, receiver) in self._queues.items():
                for _ in range(self.workers):
                    tasks.start_soon(self._worker, channel, receiver.clone())
        for _, receiver in self._queues.values():
            receiver.close()

    async def _worker(self, channel: str, receiver: MemoryObjectReceiveStream[Send]) -> None:
        async with receiver:
            async for send in receiver:
                await self._settle(channel, send)

    async def _settle(self, channel: str, send: Send) -> None:
        provider, breaker = self.providers[channel], self.breakers[channel]
        bucket = self.buckets.get(channel)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=self._backoff,
            retry=retry_if_exception(lambda exc: isinstance(exc, ProviderError) and not exc.permanent),
            sleep=anyio.sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await anyio.sleep(breaker.wait_time(anyio.current_time()))
                    if bucket is not None:
                        await bucket.take()
                    self.attempts += 1
                    try:
                        await provider.send(send)
                    except ProviderError:
                        breaker.record(False, anyio.current_time())
                        raise
                    breaker.record(True, anyio.current_time())
        except ProviderError as exc:
            self._dead(send, str(exc))
        else:
            self.delivered += 1
            if self.settled_log is not None:
                self.settled_log.record(send.key)
        finally:
            self.pending.pop(send.key, None)

    def _dead(self, send: Send, reason: str) -> None:
        self.dead_letters.append((send, reason))
        if self.dead_letter_file is not None:
            self.dead_letter_file.record(send, reason)  # before it counts as settled
        if self.settled_log is not None:
            self.settled_log.record(send.key)  # settled too: a restart does not try it again

    def _backoff(self, state: RetryCallState) -> float:
        """Full-jitter exponential backoff, or the provider's Retry-After when it gave one."""
        error = state.outcome.exception() if state.outcome is not None else None
        if isinstance(error, ProviderError) and error.retry_after is not None:
            return error.retry_after
        ceiling = min(self.max_delay, self.base_delay * 2 ** (state.attempt_number - 1))
        return self.random.uniform(0.0, ceiling)
