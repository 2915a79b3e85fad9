"""How fast, and whether, a channel's provider may be called: a circuit breaker and a token bucket.

The outbox's workers ask both before each provider call (``engine.delivery.outbox``). The breaker is a
state machine (its table is in ``CircuitBreaker``'s docstring): failures in a row open it, and
once its reset time has passed exactly one trial call goes through while every other caller
waits for that call's outcome. The bucket spreads calls to at most ``rate`` a second.
"""

from __future__ import annotations

import enum
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from actors.errors import ProviderError


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
        if self.state is BreakerState.CLOSED:  # (the usual case: no clock, no wait)
            return Admission.CALL
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
        except BaseException as exc:
            self.ended(admission, exc)
            raise
        self.ended(admission, None)

    def ended(self, admission: Admission, error: BaseException | None) -> None:
        """A call this breaker admitted ended: a success (no ``error``), a failure
        (``ProviderError``), or without an outcome (anything else: ``abandon``). The clock is read
        only where a state changes with it."""
        if error is None:  # (a success's time matters only to a trial, which closes the breaker)
            self.record(admission, True, anyio.current_time() if admission is Admission.TRIAL else 0.0)
        elif isinstance(error, ProviderError):
            self.record(admission, False, anyio.current_time())
        else:
            self.abandon(admission)

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
