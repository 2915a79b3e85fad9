"""A manual-clock driver for one actor: the test counterpart of h11's connection pair.

``ManualClock`` plays the runtime's part with no real clock: it hands the actor messages at the
times a test names, keeps every ``Schedule`` the actor asks for in a heap keyed
``(at, -priority, seq)`` (the engine scheduler's tie rule), and ``advance_to(t)`` fires the due
timers as ``TimerFired`` messages in that order. Timers the actor cancelled are dropped, as a
runtime may; with ``fire_cancelled=True`` they are delivered anyway (as the lazy production
scheduler does) and the harness checks that the actor ignores them. Every effect is kept in
``trace`` as ``(at, effect)``.
"""

from __future__ import annotations

import heapq
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from actors import Actor, Program, compile_scenario
from actors.messages import Cancel, Effect, Message, Schedule, Send, TimerFired
from actors.profile import CHANNEL_BIT, Profile

ROOT = Path(__file__).resolve().parent.parent
CART_SCENARIO = ROOT / "scenarios" / "cart_abandonment.toml"

HOUR = 3600.0
DAY = 86400.0
T0 = 1_699_956_000.0
"""2023-11-14 10:00:00 UTC: a round epoch time, far from any quiet hours in UTC."""


def compile_toml(text: str, source: str = "inline.toml") -> Program:
    """Compile a scenario written inline as TOML."""
    return compile_scenario(tomllib.loads(text), source)


def load_program(path: Path = CART_SCENARIO) -> Program:
    """Compile a scenario file, named by its file name in errors."""
    return compile_scenario(tomllib.loads(path.read_text()), path.name)


def reach_of(channels: Iterable[str]) -> int:
    """The reachability bit set for ``channels``."""
    bits = 0
    for channel in channels:
        bits |= CHANNEL_BIT[channel]
    return bits


def make_actor(
    program: Program,
    customer_id: str = "c-1",
    *,
    channels: Iterable[str] = ("push", "email", "sms"),
    tz_offset: float = 0.0,
) -> Actor:
    """A fresh actor reachable on ``channels`` (in_app, webhook and agent always are)."""
    profile = Profile(customer_id, tz_offset=tz_offset, reach=reach_of(channels))
    return Actor(program, profile)


class ManualClock:
    """Drive one actor on a manual clock.

    Args:
        actor: the actor to drive.
        start: the clock's starting time (default: the time of the first message).
        fire_cancelled: deliver cancelled timers too, and require that they yield no effects.
    """

    def __init__(
        self, actor: Actor, start: float | None = None, *, fire_cancelled: bool = False
    ) -> None:
        self.actor = actor
        self.now = float("-inf") if start is None else start
        self.fire_cancelled = fire_cancelled
        self.pending: list[tuple[float, int, int, str, int]] = []
        self.cancelled: set[tuple[str, int]] = set()
        self.trace: list[tuple[float, Effect]] = []
        self.log: list[tuple[float, Message, list[Effect]]] = []  # every delivery, in order
        self._seq = 0

    def fork(self, actor: Actor) -> ManualClock:
        """A clock in the same state (time, pending and cancelled timers) driving ``actor``."""
        twin = ManualClock(actor, self.now, fire_cancelled=self.fire_cancelled)
        twin.pending = list(self.pending)
        twin.cancelled = set(self.cancelled)
        twin._seq = self._seq
        return twin

    # -- driving ---------------------------------------------------------------------------------

    def handle(self, message: Message, at: float | None = None) -> list[Effect]:
        """Fire the timers due by ``at``, then hand ``message`` to the actor at ``at``.

        Returns:
            The effects of ``message`` alone (timer effects are in ``trace``).
        """
        at = self.now if at is None else at
        self.advance_to(at)
        return self._deliver(message, at)

    def advance_to(self, t: float) -> list[Effect]:
        """Move the clock to ``t``, firing every due timer in ``(at, -priority, seq)`` order.

        Returns:
            The effects of the timers fired.
        """
        assert t >= self.now, f"the clock runs forward: {t} < {self.now}"
        effects: list[Effect] = []
        while self.pending and self.pending[0][0] <= t:
            at, _, _, journey, version = heapq.heappop(self.pending)
            stale = (journey, version) in self.cancelled
            if stale and not self.fire_cancelled:
                continue
            out = self._deliver(TimerFired(journey, version), at)
            assert not (stale and out), f"cancelled timer {journey}/{version} acted: {out}"
            effects.extend(out)
        self.now = t
        return effects

    def advance_by(self, seconds: float) -> list[Effect]:
        """``advance_to(now + seconds)``."""
        return self.advance_to(self.now + seconds)

    def run_until_idle(self, horizon: float = 365 * 86400.0) -> list[Effect]:
        """Fire timers until none is pending (or ``horizon`` seconds have passed)."""
        return self.advance_to(self.now + horizon)

    # -- reading ---------------------------------------------------------------------------------

    def effects(self) -> list[Effect]:
        """Every effect so far, in order."""
        return [effect for _, effect in self.trace]

    def sends(self) -> list[tuple[float, Send]]:
        """Every send so far with its time."""
        return [(at, e) for at, e in self.trace if isinstance(e, Send)]

    def of_type(self, kind: type[Any]) -> list[Any]:
        """Every effect of one type, in order."""
        return [e for _, e in self.trace if isinstance(e, kind)]

    def live_timers(self) -> list[tuple[float, str, int]]:
        """Pending timers that were not cancelled: ``(at, journey, version)``, soonest first."""
        return [
            (at, j, v) for at, _, _, j, v in sorted(self.pending) if (j, v) not in self.cancelled
        ]

    # -- the runtime's side of the effects --------------------------------------------------------

    def _deliver(self, message: Message, at: float) -> list[Effect]:
        assert at >= self.now, f"message at {at} is before the clock {self.now}"
        self.now = at
        effects = self.actor.handle(message, at)
        self.actor.check_invariants()
        self.log.append((at, message, effects))
        for effect in effects:
            self.trace.append((at, effect))
            if isinstance(effect, Schedule):
                assert effect.at >= at, f"timer scheduled in the past: {effect} at {at}"
                self._seq += 1
                item = (effect.at, -effect.priority, self._seq, effect.journey, effect.version)
                heapq.heappush(self.pending, item)
            elif isinstance(effect, Cancel):
                self.cancelled.add((effect.journey, effect.version))
        return effects
