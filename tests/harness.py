"""What the tests share: journey designs, drivers on manual clocks, and the scripts they play.

``ManualClock`` is the test counterpart of h11's connection pair: it plays the runtime's part
for one actor with no real clock. It hands the actor messages at the times a test names, keeps
every ``Schedule`` the actor asks for in a heap keyed ``(at, -priority, seq)`` (the engine
scheduler's tie rule), and ``advance_to(t)`` fires the due timers as ``TimerFired`` messages in
that order. Timers the actor cancelled are dropped, as a runtime may; with
``fire_cancelled=True`` they are delivered anyway (as the lazy production scheduler does) and the
harness checks that the actor ignores them. Every effect is kept in ``trace`` as ``(at, effect)``.

The journey designs the tests run are small TOML files in ``tests/journeys/``, each named for
what it tests: ``journey_program(name, ...)`` compiles them, ``journey_path(name)`` gives the
file to a runtime or a CLI. ``make_script`` is the seeded event script two runtimes must agree
on; ``scripts`` and its kin are hypothesis strategies for message scripts, ``run_script`` plays
one on a ``ManualClock``. ``log_records`` makes log records of ``(at, customer_id, message)`` tuples.
``run_outbox`` drains an outbox on trio's mock clock;
``settled_at_restart`` and ``dead_letters_at_restart`` read its files as a restart does, and
close them again.
"""

from __future__ import annotations

import heapq
import random
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import trio
import trio.testing
from hypothesis import strategies as st

from actors import Actor, Program
from actors.errors import ProviderError
from actors.messages import (
    RECEIPT_STATUSES,
    Cancel,
    DeliveryReceipt,
    Effect,
    Event,
    Identified,
    Message,
    Schedule,
    Send,
    TimerFired,
)
from actors.profile import CHANNEL_BIT, Profile
from engine.delivery.outbox import Outbox
from engine.scenario_files import scenario_from_document
from engine.storage.outbox_files import DeadLetter, DeadLetterFile, SettledLog
from engine.storage.wal import Logged

ROOT = Path(__file__).resolve().parent.parent
CART_SCENARIO = ROOT / "scenarios" / "cart_abandonment.toml"
JOURNEY_DESIGNS = Path(__file__).resolve().parent / "journeys"

HOUR = 3600.0
DAY = 86400.0
T0 = 1_699_956_000.0
"""2023-11-14 10:00:00 UTC: a round epoch time, far from any quiet hours in UTC."""


def compile_toml(text: str, source: str = "inline.toml") -> Program:
    """Compile a scenario written inline as TOML (through the loader, as a file would be)."""
    return scenario_from_document(tomllib.loads(text), source).program


def load_program(path: Path = CART_SCENARIO) -> Program:
    """Compile a scenario file, named by its file name in errors."""
    return scenario_from_document(tomllib.loads(path.read_text()), path.name).program


# -- journey designs -----------------------------------------------------------------------------


def journey_path(name: str) -> Path:
    """The file of the journey design ``name``: ``tests/journeys/NAME.toml``.

    Raises:
        FileNotFoundError: there is no such design.
    """
    path = JOURNEY_DESIGNS / f"{name}.toml"
    if not path.is_file():
        designs = sorted(p.stem for p in JOURNEY_DESIGNS.glob("*.toml"))
        raise FileNotFoundError(f"no journey design {name!r} in {JOURNEY_DESIGNS}; there are {designs}")
    return path


def journey_text(name: str) -> str:
    """The TOML of the journey design ``name``, to put after a ``[policy]`` or another design."""
    return journey_path(name).read_text(encoding="utf-8")


def journey_program(*names: str) -> Program:
    """The journey designs ``names`` compiled as one scenario, their tables in that order."""
    text = "\n".join(journey_text(name) for name in names)
    return compile_toml(text, " + ".join(f"{name}.toml" for name in names))


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


# -- scripts of messages -------------------------------------------------------------------------

SCRIPT_CUSTOMERS = 40
"""Customers 0..39 in a ``make_script`` script (``scenarios.population.customer_id`` names them)."""


def make_script(seed: int) -> list[tuple[float, int, Message]]:
    """Cart adds (some under the entry filter), purchases, sessions and clicks, at odd times:
    ``(at, customer number, message)`` in time order, from time 0 on."""
    rng = random.Random(seed)
    script: list[tuple[float, int, Message]] = []
    for customer in range(SCRIPT_CUSTOMERS):
        at = rng.uniform(0, DAY)
        for _ in range(rng.randint(1, 6)):
            at += rng.expovariate(1 / (DAY / 2))
            kind = rng.random()
            if kind < 0.45:
                message: Message = Event("cart_add", {"value": round(rng.uniform(5, 150), 2)})
            elif kind < 0.65:
                message = Event("purchase", {"value": round(rng.uniform(5, 150), 2)})
            elif kind < 0.8:
                message = Event("session_start")
            else:
                status = rng.choice(["clicked", "opened", "unsubscribed", "bounced"])
                channel = rng.choice(["push", "email", "sms"])
                message = DeliveryReceipt("cart_abandonment", 1, channel, "cart_reminder", status)
            script.append((at, customer, message))
    return sorted(script, key=lambda line: line[0])


# The property tests' scenario: every rule and step kind, and (for the snapshot properties) an
# in-app banner. In-app sends are decided when queued but emitted at the next session, so the
# policy checker (which sees emission times) runs without them.
PROGRAM = journey_program("every_rule_and_step")
PROGRAM_WITH_IN_APP = journey_program("every_rule_and_step", "in_app_banner")
SCRIPT_JOURNEYS = ("cart", "browse", "winback", "welcome", "banner")
SCRIPT_MESSAGES = ("cart_reminder", "cart_last_call", "promo", "digest", "receipt", "welcome", "banner")
SCRIPT_CHANNELS = ("email", "sms", "push")

values = st.one_of(st.integers(0, 300), st.floats(0, 300, allow_nan=False))
events = st.one_of(
    st.builds(lambda v: Event("cart_add", {"value": v}), values),
    st.builds(lambda v: Event("purchase", {"value": v}), values),
    st.sampled_from([Event("session_start"), Event("page_view"), Event("signup"), Event("other")]),
)
receipts = st.builds(
    DeliveryReceipt,
    st.sampled_from(SCRIPT_JOURNEYS),
    st.integers(0, 3),
    st.sampled_from(SCRIPT_CHANNELS),
    st.sampled_from(SCRIPT_MESSAGES),
    st.sampled_from(RECEIPT_STATUSES + ("clicked", "unsubscribed", "bounced")),
)
timers = st.builds(TimerFired, st.sampled_from(SCRIPT_JOURNEYS), st.integers(0, 8))
traits = st.dictionaries(
    st.sampled_from(["tier", "name", "score"]),
    st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=4)),
    max_size=2,
)
identifies = st.builds(
    Identified,
    traits,
    st.dictionaries(st.sampled_from(SCRIPT_CHANNELS), st.booleans(), max_size=3),
    st.dictionaries(st.sampled_from(SCRIPT_CHANNELS), st.booleans(), max_size=2),
)
messages = st.one_of(events, events, events, receipts, receipts, timers, identifies)
gaps = st.one_of(
    st.sampled_from([0.0, 1.0, 60.0, HOUR, 5 * HOUR, 11 * HOUR, DAY, 3 * DAY]),
    st.integers(0, 2 * 86400).map(float),
)
scripts = st.lists(st.tuples(gaps, messages), min_size=4, max_size=40)
"""``(gap in seconds, message)`` lists for ``run_script``."""
customers = st.sampled_from(["cust-1", "cust-3", "cust-7", "cust-14", "cust-22"])
tz_offsets = st.sampled_from([0.0, -5 * HOUR, 5.5 * HOUR, 9 * HOUR, -9.5 * HOUR])
reaches = st.lists(st.sampled_from(SCRIPT_CHANNELS), unique=True)


def run_script(
    customer: str,
    tz: float,
    reach: Iterable[str],
    script: list[tuple[float, Message]],
    start: float = T0,
    program: Program = PROGRAM,
) -> ManualClock:
    """Play ``script`` (``(gap, message)`` pairs) to a fresh actor from ``start``, cancelled
    timers delivered too; return its clock, at the time of the last message."""
    actor = make_actor(program, customer, channels=reach, tz_offset=tz)
    clock = ManualClock(actor, start, fire_cancelled=True)
    at = start
    for gap, message in script:
        at += gap
        clock.handle(message, at)
    return clock


# -- the outbox ----------------------------------------------------------------------------------


def sends(n: int, channel: str = "email") -> list[Send]:
    """``n`` sends on ``channel``, from a step of that name (keys differ across channels)."""
    return [Send(f"c{i}", "j", 1, channel, channel, "m", f"c{i}:j:1:{channel}:1") for i in range(n)]


def run_outbox(outbox: Outbox, items: list[Send]) -> float:
    """Hand ``items`` over, drain the outbox on a mock clock; return the simulated time taken."""
    took = {}

    async def main() -> None:
        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(outbox.run)
            for item in items:
                outbox.deliver_nowait(item.customer, item, 0.0)
            outbox.close()
        took["t"] = trio.current_time() - start

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return took["t"]


class Refusing:
    """A provider that refuses every send, for good (``permanent``) or for now; counts its calls."""

    def __init__(self, permanent: bool) -> None:
        self.permanent = permanent
        self.calls = 0

    async def send(self, send: Send) -> None:
        self.calls += 1
        raise ProviderError("no", permanent=self.permanent)


def settled_at_restart(path: Path) -> set[str]:
    """``SettledLog(path).settled_before``: the keys a restart reads as settled (merging the keys
    set aside in ``<path>.prev`` back, as a restart does), the file closed again."""
    log = SettledLog(path)
    log.close()
    return log.settled_before


def dead_letters_at_restart(path: Path) -> list[DeadLetter]:
    """``list(DeadLetterFile(path).load())``: the dead letters a restart reads (the file created
    if missing, as a restart does), the file closed again."""
    letters = DeadLetterFile(path)
    try:
        return list(letters.load())
    finally:
        letters.close()


def log_records(entries: Iterable[tuple[Any, ...]]) -> list[Logged]:
    """Records for ``WriteAheadLog.append`` from ``(at, customer_id, message[, message_id])``."""
    return [Logged(*entry) for entry in entries]
