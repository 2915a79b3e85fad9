"""The compiled form of a scenario: an immutable journey graph and the policy set.

A scenario file is validated and compiled (``actors.compiler``) into a ``Program``: journeys whose
steps are frozen records naming their successors by id, structured conditions (never strings to
eval), and the policies that guard every send. The actor core walks this graph; nothing here
changes after compilation, so one ``Program`` is shared by every actor.
"""

from __future__ import annotations

import hashlib
import math
from typing import TYPE_CHECKING

import msgspec

from actors.messages import BROWSING_EVENTS, Properties, Scalar

if TYPE_CHECKING:
    from actors.segments import Segment


class _Frozen(msgspec.Struct, frozen=True, gc=False):
    """Base of the compiled graph's records."""


# -- conditions ----------------------------------------------------------------------------------


class Condition(_Frozen, frozen=True):
    """``<source>.<path> <op> <value>``, e.g. ``event.value > 20`` or ``engagement.email.clicks >= 1``.

    Sources: ``event`` (the triggering event's properties), ``traits``, ``profile`` (``purchases``,
    ``revenue``, ``days_since_purchase``) and ``engagement`` (``<channel>.<sends|delivered|opened|
    clicked|click_rate>``).
    """

    source: str
    path: tuple[str, ...]
    op: str
    value: Scalar | tuple[Scalar, ...]


def _compare(left: Scalar, op: str, right: Scalar | tuple[Scalar, ...]) -> bool:
    if op == "exists":
        return (left is not None) == bool(right)
    if op == "in":
        return isinstance(right, tuple) and left in right
    if op == "not_in":
        return isinstance(right, tuple) and left not in right
    if op == "==":
        return left == right
    if op == "!=":
        return left != right
    if left is None or isinstance(right, tuple) or right is None:
        return False
    try:
        if op == ">":
            return left > right  # type: ignore[operator]
        if op == ">=":
            return left >= right  # type: ignore[operator]
        if op == "<":
            return left < right  # type: ignore[operator]
        if op == "<=":
            return left <= right  # type: ignore[operator]
    except TypeError:  # a string compared with a number is simply false
        return False
    return False


OPERATORS = ("==", "!=", ">", ">=", "<", "<=", "in", "not_in", "exists")


def all_hold(conditions: tuple[Condition, ...], lookup: dict[str, object]) -> bool:
    """Whether every condition holds; ``lookup`` maps a source to its resolver.

    A resolver is a mapping (``event``, ``traits``) or a callable taking the path tuple.
    """
    for cond in conditions:
        resolver = lookup[cond.source]
        if callable(resolver):
            left: Scalar = resolver(cond.path)
        elif isinstance(resolver, dict):
            left = resolver.get(cond.path[0]) if resolver else None
        else:
            left = None
        if not _compare(left, cond.op, cond.value):
            return False
    return True


def properties_match(conditions: tuple[Condition, ...], properties: Properties) -> bool:
    """Whether event properties satisfy ``event.*`` conditions (entry and wait_for filters)."""
    for cond in conditions:
        if not _compare(properties.get(cond.path[0]), cond.op, cond.value):
            return False
    return True


# -- steps ---------------------------------------------------------------------------------------


class WaitStep(_Frozen, frozen=True):
    """Wait ``seconds``, or until the local time of day ``until`` (seconds after midnight), or
    (``best_hour``) until the customer's best hour (``actors.policy.best_time``)."""

    id: str
    next: str
    seconds: float | None = None
    until: float | None = None
    best_hour: bool = False


class WaitForStep(_Frozen, frozen=True):
    """Wait for an event (optionally filtered) or a timeout, whichever comes first."""

    id: str
    event: str
    timeout: float
    on_event: str
    on_timeout: str
    where: tuple[Condition, ...] = ()


class SendStep(_Frozen, frozen=True):
    """Send ``message`` on a fixed channel, or on the best of ``channels`` when ``best``."""

    id: str
    message: str
    channels: tuple[str, ...]
    best: bool
    next: str
    transactional: bool = False
    by_prior: tuple[str, ...] = ()  # ``best``: the ranking for a customer with no engagement yet


class BranchStep(_Frozen, frozen=True):
    """Go to the first rule's target whose conditions all hold, else ``otherwise``."""

    id: str
    rules: tuple[tuple[tuple[Condition, ...], str], ...]
    otherwise: str


class SplitStep(_Frozen, frozen=True):
    """A/B split by a stable hash of (journey, step, customer): cumulative thresholds in [0, 1]."""

    id: str
    arms: tuple[tuple[float, str], ...]


class UpdateStep(_Frozen, frozen=True):
    """Set profile traits."""

    id: str
    values: dict[str, Scalar]
    next: str


class EscalateStep(_Frozen, frozen=True):
    """Hand the customer to an agent queue with the timeline attached."""

    id: str
    queue: str
    next: str


class EndStep(_Frozen, frozen=True):
    """The journey ends here."""

    id: str


Step = WaitStep | WaitForStep | SendStep | BranchStep | SplitStep | UpdateStep | EscalateStep | EndStep
INSTANT_STEPS = (SendStep, BranchStep, SplitStep, UpdateStep, EscalateStep)


def successors(step: Step) -> tuple[str, ...]:
    """Ids of the steps that may follow ``step``."""
    if isinstance(step, (WaitStep, SendStep, UpdateStep, EscalateStep)):
        return (step.next,)
    if isinstance(step, WaitForStep):
        return (step.on_event, step.on_timeout)
    if isinstance(step, BranchStep):
        return tuple(target for _, target in step.rules) + (step.otherwise,)
    if isinstance(step, SplitStep):
        return tuple(target for _, target in step.arms)
    return ()


# -- journeys and policies -----------------------------------------------------------------------


class Journey(_Frozen, frozen=True):
    """One compiled journey."""

    id: str
    entry_event: str
    start: str
    steps: dict[str, Step]
    entry_where: tuple[Condition, ...] = ()
    exit_events: tuple[str, ...] = ()
    reentry: float | None = None  # None: a customer enters once
    holdout: float = 0.0  # the share of entrants held out (sent nothing); 1.0: every one of them
    priority: int = 0
    goal_event: str = "purchase"
    goal_within: float = 7 * 86400.0
    index: int = 0  # position in ``Program.journeys``: where an actor keeps its run
    keeps_context: bool = False  # whether a branch reads ``event.*`` (the triggering event), or a
    # hand-off to agents shows it
    step_bits: dict[str, int] = msgspec.field(default_factory=dict)  # step -> its bit in a run's ``passed``
    marketing: bool = False  # whether any send step is not transactional (the global holdout's)
    entry_segment: int = -1  # the segment (by index) a customer must be in to enter; -1: none
    schedule: tuple[float, float, float] | None = None  # a scheduled entry: (every, first, local at)
    skip_active: bool = False  # a broadcast: not entered by a customer active in another
    # marketing journey (they get that one's targeted message instead)
    enabled: bool = True  # False: switched off (a design without it): no one enters it

    def steps_passed(self, passed: int) -> tuple[str, ...]:
        """The steps whose bits are set in ``passed`` (``JourneyRun.passed``), in file order."""
        return tuple(step for step, bit in self.step_bits.items() if passed & bit)


class Cap(_Frozen, frozen=True):
    """At most ``max`` marketing sends per rolling ``per`` seconds (on one channel, or all)."""

    max: int
    per: float
    channel: str | None = None

    @property
    def rule(self) -> str:
        """The reason code reported when this cap blocks a send."""
        return "frequency_cap" if self.channel is None else "channel_cap"


class Cooldown(_Frozen, frozen=True):
    """No marketing send within ``seconds`` after an event (``purchase``: after conversion)."""

    rule: str
    event: str
    seconds: float
    where: tuple[Condition, ...] = ()


class Policy(_Frozen, frozen=True):
    """The rules that guard every send; ``on_block`` says per rule: ``defer`` or ``skip``."""

    caps: tuple[Cap, ...] = ()
    quiet_start: float | None = None
    quiet_end: float | None = None
    cooldowns: tuple[Cooldown, ...] = ()
    same_message_window: float | None = None
    on_block: dict[str, str] = msgspec.field(default_factory=dict)
    channel_priors: dict[str, float] = msgspec.field(default_factory=dict)
    prior_weight: float = 20.0
    global_holdout: float = 0.0  # the share of customers no marketing journey enters
    best_hour: tuple[float, float, int] = (86400.0, 19 * 3600.0, 3)  # within, default, min_history

    def holds_out(self, customer_id: str) -> bool:
        """Whether the customer is in the global holdout: a stable draw from their id alone, so
        the same in every runtime and process (0 share: no one)."""
        share = self.global_holdout
        return share > 0.0 and stable_fraction("global-holdout", customer_id) < share

    @property
    def send_horizon(self) -> float:
        """How long a send must be remembered for the rolling windows to be exact
        (``Program.send_horizon`` keeps it at hand)."""
        windows = [cap.per for cap in self.caps]
        if self.same_message_window is not None:
            windows.append(self.same_message_window)
        return max(windows, default=0.0)


class Program(_Frozen, frozen=True):
    """A compiled scenario: journeys (highest priority first) and the policy, with indexes."""

    name: str
    journeys: tuple[Journey, ...]
    policy: Policy
    by_id: dict[str, Journey]
    by_entry: dict[str, tuple[Journey, ...]]
    by_exit: dict[str, tuple[Journey, ...]]
    by_goal: dict[str, tuple[Journey, ...]]
    cooldown_events: frozenset[str] = frozenset()
    wait_events: frozenset[str] = frozenset()
    journey_events: frozenset[str] = frozenset()  # every event some journey reacts to
    send_horizon: float = 0.0  # the policy's: computed once, read on every timeline note
    event_names: dict[str, str] = msgspec.field(default_factory=dict)  # incoming -> vocabulary
    ignored_events: frozenset[str] = frozenset()  # events that change nothing: see ``build_program``
    segments: tuple[Segment, ...] = ()  # the live segments (``actors.segments``)
    segment_bits: dict[str, int] = msgspec.field(default_factory=dict)  # segment id -> its bit
    segment_events: frozenset[str] = frozenset()  # events some segment's window records
    segment_reads: frozenset[str] = frozenset()  # the condition sources segments read
    segment_everyone: bool = False  # a segment has no condition: each customer is in it from the first
    scoring: tuple[float, float, float, float] | None = None  # ``[scores]``: every, refit, horizon,
    # churn_below (in seconds, and a probability); None: the scenario reads no score


def build_program(name: str, journeys: list[Journey], policy: Policy,
                  event_names: dict[str, str] | None = None, segments: tuple[Segment, ...] = (),
                  scoring: tuple[float, float, float, float] | None = None) -> Program:
    """Index journeys by the events that concern them; ties in priority keep file order."""
    ordered = tuple(
        msgspec.structs.replace(journey, index=i, keeps_context=_reads_event(journey),
                                step_bits={step: 1 << k for k, step in enumerate(journey.steps)},
                                marketing=any(isinstance(step, SendStep) and not step.transactional
                                              for step in journey.steps.values()))
        for i, journey in enumerate(sorted(journeys, key=lambda j: -j.priority))
    )

    def index(events_of: object) -> dict[str, tuple[Journey, ...]]:
        table: dict[str, list[Journey]] = {}
        for journey in ordered:
            for event in events_of(journey):  # type: ignore[operator]
                table.setdefault(event, []).append(journey)
        return {event: tuple(js) for event, js in table.items()}

    wait_events = frozenset(
        step.event for j in ordered for step in j.steps.values() if isinstance(step, WaitForStep)
    )
    journey_events = frozenset(
        {j.entry_event for j in ordered}
        | {e for j in ordered for e in j.exit_events}
        | {j.goal_event for j in ordered}
        | wait_events
    )
    cooldown_events = frozenset(c.event for c in policy.cooldowns)
    from actors.segments import segment_reads, watched_events  # (made of this module's records)

    segment_events = watched_events(segments)
    return Program(
        name=name,
        journeys=ordered,
        policy=policy,
        by_id={j.id: j for j in ordered},
        by_entry=index(lambda j: (j.entry_event,) if j.enabled else ()),
        by_exit=index(lambda j: j.exit_events),
        by_goal=index(lambda j: (j.goal_event,)),
        cooldown_events=cooldown_events,
        wait_events=wait_events,
        journey_events=journey_events,
        send_horizon=policy.send_horizon,
        event_names=dict(event_names or {}),
        ignored_events=_ignored(ordered, journey_events | cooldown_events | segment_events
                                | set(event_names or ())),
        segments=segments,
        segment_bits={s.id: 1 << s.index for s in segments},
        segment_events=segment_events,
        segment_reads=segment_reads(segments),
        segment_everyone=any(not s.where and not s.behaviour for s in segments),
        scoring=scoring,
    )


def _ignored(journeys: tuple[Journey, ...], used: frozenset[str] | set[str]) -> frozenset[str]:
    """The browsing events an actor of this program does nothing with: kept off the timeline
    (``BROWSING_EVENTS``), named by no journey, cooldown or translation, and, for
    ``session_start``, shown no in-app message (a journey that may send in-app shows it at the
    customer's next session). A runtime may leave them undelivered: the results are the same."""
    in_app = any(
        "in_app" in step.channels for j in journeys for step in j.steps.values() if isinstance(step, SendStep)
    )
    return frozenset(BROWSING_EVENTS - used - ({"session_start"} if in_app else set()))


def _reads_event(journey: Journey) -> bool:
    if any(isinstance(step, EscalateStep) or (isinstance(step, SendStep) and "agent" in step.channels)
           for step in journey.steps.values()):
        return True  # (an agent sees the event that started it all)
    return any(
        cond.source == "event"
        for step in journey.steps.values()
        if isinstance(step, BranchStep)
        for conditions, _ in step.rules
        for cond in conditions
    )


# -- determinism ---------------------------------------------------------------------------------


def stable_fraction(*parts: str) -> float:
    """A number in [0, 1) fixed by ``parts``: the same on every run, machine and runtime.

    Holdout membership and A/B arms use it, so they depend on the customer id alone.
    """
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 18446744073709551616.0


def days_between(earlier: float | None, later: float) -> float:
    """Whole and fractional days from ``earlier`` to ``later`` (infinity when never)."""
    return math.inf if earlier is None else (later - earlier) / 86400.0
