"""The shape of a scenario's journeys and policy: the msgspec records their TOML tables convert into.

This is the compiler's first pass (``actors.validation.convert_part``): unknown fields, wrong
types, values outside a ``constraint`` and malformed durations (``Duration``, ``TimeOfDay``) are
caught here, each with the path of its field. What types cannot say (step references, channel
names, conditions, cycles) is the compiler's second pass, ``actors.compiler``.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from actors.durations import Delay, Duration, TimeOfDay
from actors.messages import Scalar
from actors.validation import constraint

EventName = Annotated[str, constraint("expected an event name: 1 to 256 characters", min_length=1,
                                     max_length=256)]


class _Spec(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    pass


class ConditionSpec(_Spec):
    field: str
    op: str = "=="
    value: Scalar | list[Scalar] = None


class ScheduleSpec(_Spec):
    every: Duration = Duration(7 * 86400)  # "7d"
    first: Delay = Delay(86400)  # "1d": after the start of the run (simulation) or of the service
    at: TimeOfDay = TimeOfDay(10 * 3600)  # "10:00", each customer's local time


class EntrySpec(_Spec):
    event: str | None = None
    where: list[ConditionSpec] = []
    segment: str | None = None  # only the segment's members enter
    schedule: ScheduleSpec | None = None  # entered on a calendar instead of an event
    skip_active: bool = False  # not entered by a customer active in another marketing journey


class ExitSpec(_Spec):
    events: list[str] = []


class GoalSpec(_Spec):
    event: str = "purchase"
    within: Duration = Duration(7 * 86400)  # "7d"


class WaitUntilSpec(_Spec):
    until: TimeOfDay


class WaitForSpec(_Spec):
    event: str
    timeout: Duration
    where: list[ConditionSpec] = []


class SendSpec(_Spec):
    message: str
    channel: str
    candidates: list[str] = []
    transactional: bool = False


class BranchRuleSpec(_Spec, rename={"if_": "if"}):
    if_: list[ConditionSpec]
    next: str


class SplitArmSpec(_Spec):
    weight: float
    next: str


class EscalateSpec(_Spec):
    queue: str = "support"


class StepSpec(_Spec, rename={"else_": "else"}):
    # ``wait`` is a duration or an ``until`` table: msgspec decodes no union with a custom type, so
    # the compiler parses that duration
    wait: str | WaitUntilSpec | None = None
    wait_for: WaitForSpec | None = None
    send: SendSpec | None = None
    branch: list[BranchRuleSpec] | None = None
    split: list[SplitArmSpec] | None = None
    update: dict[str, Scalar] | None = None
    escalate: EscalateSpec | None = None
    end: bool | None = None
    next: str | None = None
    on_event: str | None = None
    on_timeout: str | None = None
    else_: str | None = None


class JourneySpec(_Spec):
    id: str
    entry: EntrySpec
    start: str
    steps: dict[str, dict[str, Any]]
    exit: ExitSpec = msgspec.field(default_factory=ExitSpec)
    reentry: Duration | None = None
    # 1.0 holds everyone out: "send to no one", the design every other is measured against
    holdout: Annotated[float, constraint("{value} is not a fraction in [0, 1]", ge=0.0, le=1.0)] = 0.0
    priority: int = 0
    goal: GoalSpec = msgspec.field(default_factory=GoalSpec)
    description: str = ""
    enabled: bool = True  # a variant may switch a journey off


class ScoresSpec(_Spec):
    """``[scores]``: how often a runtime scores its customers (``actors.scores``)."""

    every: Duration = Duration(86400)  # "1d": a pass; scores are at most this old (plus its run)
    refit: Duration = Duration(7 * 86400)  # "7d": the BG/NBD model is fitted again this often
    horizon: Duration = Duration(30 * 86400)  # "30d": of ``expected`` and ``likelihood``
    churn_below: Annotated[float, constraint("a probability is in [0, 1]", ge=0.0, le=1.0)] = 0.3


class BestHourSpec(_Spec):
    """``[policy] best_hour``: how a ``wait = "best_hour"`` step picks a customer's hour."""

    within: Duration = Duration(86400)  # "24h": the longest it holds a message
    default: TimeOfDay = TimeOfDay(19 * 3600)  # "19:00": for customers with too little history
    min_history: Annotated[int, constraint("at least 1 engagement", ge=1)] = 3  # opens and clicks


class CapSpec(_Spec):
    max: Annotated[int, constraint("a cap allows at least 1 send", ge=1)]
    per: Duration
    channel: str | None = None


class QuietHoursSpec(_Spec):
    start: TimeOfDay
    end: TimeOfDay


class CooldownSpec(_Spec):
    event: str
    duration: Duration = msgspec.field(name="for")
    where: list[ConditionSpec] = []
    name: str | None = None


_PriorRate = Annotated[float, constraint("a prior rate is in [0, 1]", ge=0.0, le=1.0)]


class PolicySpec(_Spec):
    caps: list[CapSpec] = []
    quiet_hours: QuietHoursSpec | None = None
    after_conversion: Duration | None = None
    cooldowns: list[CooldownSpec] = []
    same_message_window: Duration | None = None
    on_block: dict[str, str] = {}
    channel_priors: dict[str, _PriorRate] = {}
    prior_weight: float = 20.0
    # customers no marketing journey enters: the whole program's lift is measured against them
    global_holdout: Annotated[float, constraint("{value} is not a fraction in [0, 1)", ge=0.0, lt=1.0)] = 0.0
    best_hour: BestHourSpec = msgspec.field(default_factory=BestHourSpec)
