"""The real-time runtime: the same actor core, driven by the wall clock under anyio (trio first).

One task does everything, on purpose (ARCHITECTURE.md: never a task per actor or per timer):

    loop:
        wait for the next message, but only until the next timer is due (move_on_at)
        hand the message, and every other message already queued (receive_nowait), to its actor
        fire every timer that is due, in (time, -priority, sequence) order
        route effects: Schedule -> the one TimerQueue; Send and Escalated -> the channel adapter

Ingestion hands messages over with ``ingest_nowait`` (a bounded memory stream: when it is full,
``anyio.WouldBlock`` tells the caller to push back) or ``await ingest``. Engine time is seconds
since the epoch: ``epoch + anyio.current_time()``; with trio's ``MockClock`` and ``epoch=0`` it
runs on simulated time, which is how it is shown to give the simulation's very trace.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from actors.actor import Actor
from actors.journey import Program
from actors.messages import Effect, Escalated, Message, Schedule, Send, TimerFired
from actors.profile import Profile
from engine.channels import ChannelAdapter
from engine.scheduler import TimerQueue

ProfileFactory = Callable[[str], Profile]


class RealtimeRuntime:
    """Drive actors on the wall clock.

    Args:
        program: the compiled scenario.
        channel: where sends and escalations go.
        profiles: makes the profile of a customer seen for the first time (default: an empty
            profile in UTC, reachable on the always-reachable channels only).
        epoch: engine time at ``anyio.current_time() == 0``; default: now in Unix time.
        buffer: how many messages may wait for the engine before ``ingest_nowait`` refuses.
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
        trace: list[tuple[float, str, Effect]] | None = None,
    ) -> None:
        self.program = program
        self.channel = channel
        self.profiles = profiles
        self.epoch = epoch
        self.actors: dict[str, Actor] = {}
        self.timers = TimerQueue()
        self.trace = trace
        self.handled = 0
        self._inbox, self._outbox = anyio.create_memory_object_stream[tuple[str, Message]](buffer)

    def now(self) -> float:
        """Engine time: seconds since the epoch."""
        return (self.epoch or 0.0) + anyio.current_time()

    def ingest_nowait(self, customer_id: str, message: Message) -> None:
        """Queue a message for a customer's actor.

        Raises:
            anyio.WouldBlock: the engine is saturated; retry later (an HTTP edge answers 429).
        """
        self._inbox.send_nowait((customer_id, message))

    async def ingest(self, customer_id: str, message: Message) -> None:
        """Queue a message, waiting while the engine is saturated."""
        await self._inbox.send((customer_id, message))

    def close(self) -> None:
        """No more messages: ``run`` returns once the queued ones are handled."""
        self._inbox.close()

    async def run(self) -> None:
        """Handle messages and fire timers until ``close`` (pending timers stay pending)."""
        if self.epoch is None:
            self.epoch = time.time() - anyio.current_time()
        outbox: MemoryObjectReceiveStream[tuple[str, Message]] = self._outbox
        while True:
            deadline = self.timers.peek_time()
            wait_until = deadline - self.epoch if deadline != math.inf else math.inf
            with anyio.move_on_at(wait_until):
                try:
                    customer_id, message = await outbox.receive()
                except anyio.EndOfStream:
                    return
                self._apply(customer_id, message)
                while True:  # drain what is already queued: one wake-up per batch, not per event
                    try:
                        customer_id, message = outbox.receive_nowait()
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                    self._apply(customer_id, message)
            self._fire_due()

    def _fire_due(self) -> None:
        now = self.now()
        while self.timers.peek_time() <= now:
            _, _, _, customer_id, timer = self.timers.pop()
            self._apply(customer_id, timer)

    def _apply(self, customer_id: str, message: Message) -> None:
        actor = self.actors.get(customer_id)
        if actor is None:
            actor = self.actors[customer_id] = Actor(self.program, self.profiles(customer_id))
        now = self.now()
        self.handled += 1
        effects = actor.handle(message, now)
        for effect in effects:
            kind = type(effect)
            if kind is Schedule:
                timer = TimerFired(effect.journey, effect.version)  # type: ignore[union-attr]
                self.timers.push(effect.at, customer_id, timer, effect.priority)  # type: ignore[union-attr,arg-type]
            elif kind is Send or kind is Escalated:
                self.channel.deliver_nowait(now, effect)  # type: ignore[arg-type]
        if self.trace is not None:
            self.trace.extend((now, customer_id, effect) for effect in effects)
