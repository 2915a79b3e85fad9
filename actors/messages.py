"""Messages into an actor and effects out of it: frozen, slotted, comparable records.

Messages in are past-tense facts (an ``Event`` happened, a ``TimerFired``, a ``DeliveryReceipt``
arrived); effects out are what the actor asks its runtime to do (``Send``, ``Schedule``, ``Cancel``)
or what it reports for the journey trace (``Entered``, ``Advanced``, ``Suppressed``, ``Exited``,
``Converted``, ``Escalated``). Tests assert on lists of them.

Times are floats: seconds since the epoch, UTC. Timers carry a version stamp instead of being
removed when cancelled: the actor ignores a ``TimerFired`` whose version is not the current one, so
a runtime may cancel lazily (``Cancel`` is advice it may use to free memory).
"""

from __future__ import annotations

import re
from typing import NamedTuple

import msgspec

Scalar = str | int | float | bool | None
Properties = dict[str, Scalar]


def number(value: Scalar) -> float:
    """A property read as an amount: numbers as they are, anything else as 0."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


CHANNELS: tuple[str, ...] = ("email", "sms", "push", "in_app", "webhook", "agent")
BROWSING_EVENTS = frozenset({"session_start", "page_view", "screen"})
"""Events too frequent and too thin to be worth a place on the timeline."""
RECEIPT_STATUSES: tuple[str, ...] = ("delivered", "opened", "clicked", "bounced", "unsubscribed")


class _Record(msgspec.Struct, frozen=True, gc=False, array_like=True, tag=True):
    """Base of every message and effect: immutable, slotted, compared by value.

    Encoded with msgspec.msgpack as ``[ClassName, field, ...]``, so a union of them decodes.
    """


# -- messages in ---------------------------------------------------------------------------------


class Event(_Record, frozen=True):
    """Something the customer did (``cart_add``, ``purchase``, ``session_start``, ...)."""

    name: str
    properties: Properties = msgspec.field(default_factory=dict)


class Recorded(_Record, frozen=True):
    """An event that happened too long ago to act on (past the real-time engine's event-time
    bound): it counts in the profile (a purchase's count, revenue and time) and starts, ends or
    resumes no journey, re-running no timer that would long have fired."""

    name: str
    properties: Properties = msgspec.field(default_factory=dict)


class Identified(_Record, frozen=True):
    """New facts about who the customer is.

    ``reachable`` says which channels gained or lost an address (or push token); ``consent`` is an
    explicit marketing opt-in (True) or opt-out (False). A repeated address never re-subscribes
    someone who unsubscribed: only an explicit consent does.
    """

    traits: Properties = msgspec.field(default_factory=dict)
    reachable: dict[str, bool] = msgspec.field(default_factory=dict)
    consent: dict[str, bool] = msgspec.field(default_factory=dict)


class TimerFired(_Record, frozen=True):
    """A timer the actor asked for came due."""

    journey: str
    version: int


class DeliveryReceipt(_Record, frozen=True):
    """A provider reported on a send: delivered, opened, clicked, bounced or unsubscribed."""

    journey: str
    entry: int
    channel: str
    message: str
    status: str


class Merged(_Record, frozen=True):
    """Customer ``source`` turned out to be this customer (identify or alias): their histories
    become one. A runtime applies it with ``Actor.absorb``, since it needs both actors."""

    source: str


class CaseAction(_Record, frozen=True):
    """An agent acted on an escalated case of this customer (the real-time agent desk):
    ``action`` is ``claim``, ``reply`` or ``resolve``; ``text`` a reply's, ``code`` a
    resolution's. A runtime hands it to its desk, not to the actor (``routing.way_in``); a
    resolution comes back to the actor as the queue's resolve event."""

    case: int
    action: str
    agent: str
    text: str = ""
    code: str = ""


class Scored(_Record, frozen=True):
    """The customer's predictive scores, as a runtime's scoring pass computed them at ``at``
    (``actors.scores``: their names and order)."""

    values: tuple[float, ...]
    at: float


Message = Event | Identified | TimerFired | DeliveryReceipt | Merged | Recorded | CaseAction | Scored


class Submission(NamedTuple):
    """A message for a customer's actor, as the edge hands it to the runtime and the runtime to
    its log: ``message_id`` is the client's id, by which a retry is applied once (None: none).

    A NamedTuple rather than a Struct: the edge's callers read entries as tuples.
    """

    customer_id: str
    message: Message
    message_id: str | None = None


# -- effects out ---------------------------------------------------------------------------------


class Send(_Record, frozen=True):
    """Hand a message to a channel. ``key`` is the idempotency key of this very send
    (``send_key``)."""

    customer: str
    journey: str
    entry: int
    step: str
    channel: str
    message: str
    key: str
    transactional: bool = False


class Schedule(_Record, frozen=True):
    """Deliver ``TimerFired(journey, version)`` at ``at``; ties go to the higher ``priority``."""

    at: float
    journey: str
    version: int
    priority: int = 0


class Cancel(_Record, frozen=True):
    """The timer with this version will be ignored if it fires; a runtime may drop it."""

    journey: str
    version: int


class Entered(_Record, frozen=True):
    """The customer entered a journey; ``holdout`` members get no sends. ``lapsed``: when the
    previous entry ended without converting, the channels of the sends the customer got since
    it (its null path; a conversion from now on is this entry's)."""

    journey: str
    entry: int
    holdout: bool
    lapsed: tuple[str, ...] = ()


class Advanced(_Record, frozen=True):
    """The journey moved to ``step``."""

    journey: str
    step: str


class Suppressed(_Record, frozen=True):
    """A policy blocked a send; ``deferred_until`` is set when it will be tried again."""

    journey: str
    step: str
    channel: str
    message: str
    rule: str
    deferred_until: float | None = None


class Exited(_Record, frozen=True):
    """The journey ended for this customer (``end``, an exit event, or ``holdout``)."""

    journey: str
    reason: str


class Converted(_Record, frozen=True):
    """The customer reached a journey's goal within its window after entering (``after``
    seconds after), having reached ``steps`` of it (in file order; none when held out); ``path``:
    the channels of the sends the customer got since the entry, from any journey, in order (its
    conversion path); ``touches``: those sends and the opens and clicks reported on them, each
    ``(at, kind, channel, message, journey)``, in order (as far back as the timeline holds)."""

    journey: str
    entry: int
    holdout: bool
    value: float
    after: float
    steps: tuple[str, ...] = ()
    path: tuple[str, ...] = ()
    touches: tuple[tuple[float, str, str, str, str], ...] = ()


class Bought(_Record, frozen=True):
    """The customer bought (a ``purchase`` event), for the program's lift: said only when the
    policy has a global holdout. ``first``: their first purchase; ``held_out``: whether they are
    in the global holdout."""

    value: float
    first: bool
    held_out: bool


class Escalated(_Record, frozen=True):
    """Hand the customer to an agent queue, with the recent timeline for context: the journey
    and ``step`` that escalated, and ``trigger``, the event that entered the customer into the
    journey (its name and properties)."""

    customer: str
    journey: str
    queue: str
    timeline: tuple[tuple[float, str, str, str], ...]
    step: str = ""
    trigger: str = ""
    context: Properties = msgspec.field(default_factory=dict)


class Timed(_Record, frozen=True):
    """A ``wait = "best_hour"`` step chose its hour: the one the customer has most often engaged
    at (``own``), or the policy's default for a customer with too little history."""

    journey: str
    step: str
    own: bool


class Segmented(_Record, frozen=True):
    """The customer entered (``entered``) or left a live segment (``actors.segments``)."""

    segment: str
    entered: bool


Effect = (Send | Schedule | Cancel | Entered | Advanced | Suppressed | Exited | Converted | Escalated | Bought
          | Segmented | Timed)


def send_key(customer: str, journey: str, entry: int, step: str, n: int) -> str:
    """The idempotency key of the ``n``-th send of a journey entry: ``customer:journey:entry:step:n``.

    Journey and step ids hold no ':' (the compiler refuses them), so a key reads back from the
    right whatever the customer id holds (``parse_send_key``).
    """
    return f"{customer}:{journey}:{entry}:{step}:{n}"


_SEND_KEY = re.compile(r"(.+):([^:]+):([0-9]+):([^:]+):([0-9]+)")


def parse_send_key(key: str) -> tuple[str, str, int, str, int] | None:
    """``(customer, journey, entry, step, n)`` of a ``send_key``, or None if it is not one."""
    found = _SEND_KEY.fullmatch(key)
    if found is None:
        return None
    customer, journey, entry, step, n = found.groups()
    return customer, journey, int(entry), step, int(n)
