"""The unified customer profile: one record per customer, shared by every journey.

Compact on purpose (slots, no reference cycles, lazily created collections): a million of them
must fit in well under a gigabyte. The timeline is bounded: it keeps the most recent interactions
across channels so that a hand-off to an agent carries the context.
"""

from __future__ import annotations

import math
import sys
from array import array
from collections.abc import Sequence

from actors.durations import Zone, known_zone
from actors.messages import CHANNELS, Event, Properties, Scalar, number
from actors.scores import SCORE_INDEX

TIMELINE_LIMIT = 8
"""Interactions kept on the timeline; older ones fall off."""

CHANNEL_BIT = {name: 1 << i for i, name in enumerate(CHANNELS)}
ALWAYS_REACHABLE = CHANNEL_BIT["webhook"] | CHANNEL_BIT["agent"] | CHANNEL_BIT["in_app"]

# engagement counters per channel, in this order
SENDS, DELIVERED, OPENED, CLICKED, LAST_ENGAGED = range(5)
COUNTERS = 5
CHANNEL_INDEX = {name: i for i, name in enumerate(CHANNELS)}

TimelineEntry = tuple[float, str, str, str]  # (at, kind, channel, detail)
Touch = tuple[float, str, str, str, str]  # (at, kind, channel, message, journey): a conversion's touch
_SEP = "\x1f"  # joins kind, channel and detail into one interned label
SENT = "sent"  # the timeline kind of a marketing send (a transactional one is "sent_transactional")
_SENT_PREFIX = SENT + _SEP
_SEND_PREFIXES = (_SENT_PREFIX, "sent_transactional" + _SEP)  # a marketing or a transactional send
_TOUCH_PREFIXES = (*_SEND_PREFIXES, "opened" + _SEP, "clicked" + _SEP)  # what a conversion path counts


def about_send(journey: str, message: str) -> str:
    """The detail a send, and a receipt on it, note on the timeline: the journey, then the
    message (last: ``message_suffix`` finds a message's sends by how their labels end)."""
    return f"{journey}{_SEP}{message}"



def sent_prefix(channel: str) -> str:
    """The start of the label of every marketing send on ``channel``."""
    return _SENT_PREFIX + channel + _SEP


def message_suffix(message: str) -> str:
    """The end of the label of every send of ``message``."""
    return _SEP + message


Stats = Sequence[float]
_NO_STATS: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, -1.0)
# every channel's counters at zero: engagement arrays are sliced from it (an array from an
# array is a memory copy; extending one from a tuple converts item by item, several times slower)
_NO_ENGAGEMENT = array("d", _NO_STATS * len(CHANNELS))
_NEVER = float("-inf")

class Profile:
    """Who the customer is and how they have engaged, channel by channel.

    Attributes:
        customer_id: the stable identity.
        tz_offset: offset of the customer's local time from UTC, in seconds.
        reach: bit set of channels with an address or opt-in (see ``CHANNEL_BIT``).
        consent: bit set of channels the customer has not unsubscribed from.
        traits: free-form attributes (set by identify and by journey ``update`` steps).
        engagement: ``COUNTERS`` doubles per channel in ``CHANNELS`` order, one flat array
            (as long as the last channel used needs): ``sends, delivered, opened, clicked,
            last_engaged_at``.
        purchases, revenue, first_purchase_at, last_purchase_at: the purchase history.
        timeline_at, timeline_what: the most recent interactions, newest last: their times, and
            ``kind, channel, detail`` as one interned label (``timeline()`` gives tuples). Two
            flat columns cost 16 bytes an entry where a list of tuples costs about 100. The
            labels are a tuple, replaced on each change rather than changed in place, so
            profiles with the same sequence may share one (a restored snapshot does). The
            marketing sends (kind ``sent``) inside the policy horizon are never trimmed: the
            rolling-window policies read them from here (``marketing_sends``).
        cooldowns: when each of the policy's cool-downs (by position) was last started.
        scores, scored_at: the predictive scores (``actors.scores``) and when they were
            computed (None: never scored).
        engaged_hours: opens and clicks by the customer's local hour, 24 counts (None: none).
    """

    __slots__ = (
        "customer_id",
        "tz_offset",
        "reach",
        "consent",
        "traits",
        "engagement",
        "purchases",
        "revenue",
        "last_purchase_at",
        "timeline_at",
        "timeline_what",
        "cooldowns",
        "first_purchase_at",
        "scores",
        "scored_at",
        "engaged_hours",
    )

    def __init__(
        self,
        customer_id: str,
        *,
        tz_offset: float = 0.0,
        reach: int = ALWAYS_REACHABLE,
        consent: int = -1,
    ) -> None:
        self.customer_id = customer_id
        self.tz_offset = tz_offset
        self.reach = reach | ALWAYS_REACHABLE
        self.consent = consent
        self.traits: Properties | None = None
        self.engagement: array[float] | None = None
        self.purchases = 0
        self.revenue = 0.0
        self.last_purchase_at: float | None = None
        self.timeline_at: array[float] | None = None
        self.timeline_what: tuple[str, ...] | None = None
        self.cooldowns: array[float] | None = None
        self.first_purchase_at: float | None = None
        self.scores: tuple[float, ...] | None = None
        self.scored_at: float | None = None
        self.engaged_hours: array[int] | None = None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Profile) and all(
            getattr(self, name) == getattr(other, name) for name in self.__slots__
        )

    __hash__ = None  # type: ignore[assignment]

    # -- reading ---------------------------------------------------------------------------------

    def can_reach(self, channel: str) -> bool:
        """Whether the channel has an address or opt-in for this customer."""
        return bool(self.reach & CHANNEL_BIT[channel])

    def has_consent(self, channel: str) -> bool:
        """Whether the customer has not unsubscribed from the channel."""
        return bool(self.consent & CHANNEL_BIT[channel])

    def channel_stats(self, channel: str) -> Stats:
        """The engagement counters of a channel (zeros when it was never used)."""
        start = CHANNEL_INDEX[channel] * COUNTERS
        if self.engagement is None or start >= len(self.engagement):
            return _NO_STATS
        return self.engagement[start : start + COUNTERS]

    def cooldown_started(self, index: int) -> float | None:
        """When the policy's cool-down number ``index`` last started, or None."""
        cooldowns = self.cooldowns
        if cooldowns is None or index >= len(cooldowns) or cooldowns[index] == _NEVER:
            return None
        return cooldowns[index]

    def recent_sends(self) -> list[tuple[float, str, str]]:
        """The marketing sends on the timeline ``(at, channel, message)``, oldest first."""
        return [(at, channel, detail) for at, kind, channel, detail in self.timeline() if kind == SENT]

    def marketing_sends(self) -> list[tuple[float, str]]:
        """The marketing sends on the timeline as ``(at, label)``, oldest first: what the
        rolling-window policies read (``sent_label`` tells a label's channel and message)."""
        times, whats = self.timeline_at, self.timeline_what
        if times is None or whats is None:
            return []
        sends = []
        for index, what in enumerate(whats):  # (a plain loop: the hot path of every decision)
            if what.startswith(_SENT_PREFIX):
                sends.append((times[index], what))
        return sends

    def touches_since(self, at: float, until: float = math.inf) -> tuple[str, ...]:
        """The channels of the sends made from ``at`` to ``until`` that the timeline holds, oldest
        first (a conversion or null path; bounded as the timeline is)."""
        times, whats = self.timeline_at, self.timeline_what
        if times is None or whats is None:
            return ()
        return tuple(what.split(_SEP, 2)[1] for t, what in zip(times, whats, strict=True)
                     if at <= t <= until and what.startswith(_SEND_PREFIXES))

    def conversion_touches(self, at: float) -> tuple[tuple[str, ...], tuple[Touch, ...]]:
        """A conversion's path and touches since ``at``, in one pass over the timeline: the
        channels of the sends (``touches_since``), and the sends with the opens and clicks
        reported on them as ``(at, kind, channel, message, journey)``, oldest first (the journey
        is "" for an entry noted before timelines named it)."""
        times, whats = self.timeline_at, self.timeline_what
        if times is None or whats is None:
            return (), ()
        path, touches = [], []
        for t, what in zip(times, whats, strict=True):
            if t >= at and what.startswith(_TOUCH_PREFIXES):
                touch = _touch(what)
                touches.append((t, *touch))
                if what.startswith(_SEND_PREFIXES):
                    path.append(touch[1])
        return tuple(path), tuple(touches)

    def timeline(self) -> tuple[TimelineEntry, ...]:
        """The recent interactions ``(at, kind, channel, detail)``, oldest first (a send's
        detail: its message)."""
        if self.timeline_at is None or self.timeline_what is None:
            return ()
        return tuple(
            (at, *what.split(_SEP, 2)[:2], what.rsplit(_SEP, 1)[1])  # type: ignore[misc]
            for at, what in zip(self.timeline_at, self.timeline_what, strict=True)
        )

    def score(self, name: str) -> float | None:
        """A predictive score by name (``actors.scores``), or None before the first scoring and
        while the model cannot say (NaN)."""
        value = None if self.scores is None else self.scores[SCORE_INDEX[name]]
        return None if value is None or math.isnan(value) else value

    def trait(self, name: str) -> Scalar:
        """A trait's value, or None."""
        return None if self.traits is None else self.traits.get(name)

    @property
    def zone(self) -> Zone:
        """The customer's time zone: the ``timezone`` trait when it names an IANA zone (its
        offset then follows daylight saving), else the fixed ``tz_offset``."""
        name = None if self.traits is None else self.traits.get("timezone")
        return name if isinstance(name, str) and known_zone(name) else self.tz_offset

    # -- writing ---------------------------------------------------------------------------------

    def identify(self, traits: Properties, reachable: dict[str, bool], consent: dict[str, bool]) -> None:
        """New facts from an identify: traits, reachability and consent per channel."""
        if traits:
            self.update_traits(traits)
        for channel, can in sorted(reachable.items()):
            self.set_reachable(channel, can)
        for channel, granted in sorted(consent.items()):
            if granted:
                self.consent |= CHANNEL_BIT[channel]
            else:
                self.withdraw_consent(channel)

    def record_late(self, event: Event) -> None:
        """Count an event too old to act on (``actors.messages.Recorded``): a purchase adds to
        the count and revenue, and moves ``last_purchase_at`` (``first_purchase_at``) to its
        ``timestamp`` if later (earlier)."""
        if event.name != "purchase":
            return
        props = event.properties
        self.purchases += 1
        self.revenue += number(props.get("value"))
        stamp = props.get("timestamp")
        if isinstance(stamp, (int, float)) and not isinstance(stamp, bool):
            if stamp > (self.last_purchase_at or _NEVER):
                self.last_purchase_at = float(stamp)
            if self.first_purchase_at is None or stamp < self.first_purchase_at:
                self.first_purchase_at = float(stamp)

    def record_purchase(self, value: float, at: float) -> None:
        """Count a purchase of ``value`` made at ``at``."""
        self.purchases += 1
        self.revenue += value
        self.last_purchase_at = at
        if self.first_purchase_at is None:
            self.first_purchase_at = at

    def note(self, at: float, kind: str, channel: str, detail: str, keep_sends_after: float) -> None:
        """Append an interaction to the timeline, then trim it to ``TIMELINE_LIMIT`` entries.

        Trimming drops the oldest entries, except marketing sends later than ``keep_sends_after``
        (the policy horizon): those are kept however many there are, for the rolling windows.
        """
        # interning shares one label among every customer with the same interaction
        label = sys.intern(f"{kind}{_SEP}{channel}{_SEP}{detail}")
        times, whats = self.timeline_at, self.timeline_what
        if times is None or whats is None:
            self.timeline_at, self.timeline_what = array("d", (at,)), (label,)
            return
        times.append(at)
        whats = self.timeline_what = whats + (label,)
        if len(whats) > TIMELINE_LIMIT:
            self._trim(keep_sends_after)

    def _trim(self, keep_sends_after: float) -> None:
        times, whats = self.timeline_at, self.timeline_what
        assert times is not None and whats is not None
        excess = len(whats) - TIMELINE_LIMIT
        if excess <= 0:
            return
        if excess == 1 and not (times[0] > keep_sends_after and whats[0].startswith(_SENT_PREFIX)):
            del times[0]  # the usual case: one entry too many, and the oldest may go
            self.timeline_what = whats[1:]
            return
        dropped: list[int] = []  # the oldest entries that may go, as many as there are too many
        for index, what in enumerate(whats):
            if len(dropped) == excess:
                break
            if not (times[index] > keep_sends_after and what.startswith(_SENT_PREFIX)):
                dropped.append(index)  # (a send the policies still need stays)
        for index in reversed(dropped):
            del times[index]
        gone = set(dropped)
        self.timeline_what = tuple(what for index, what in enumerate(whats) if index not in gone)

    def count(self, channel: str, counter: int, at: float | None = None) -> None:
        """Increment one engagement counter; an open or click also stamps ``LAST_ENGAGED``."""
        start = CHANNEL_INDEX[channel] * COUNTERS
        engagement = self.engagement
        if engagement is None:  # grown up to the channels used, in CHANNELS order
            engagement = self.engagement = _NO_ENGAGEMENT[: start + COUNTERS]  # (a copy)
        elif len(engagement) <= start:
            engagement.extend(_NO_ENGAGEMENT[len(engagement) : start + COUNTERS])
        engagement[start + counter] += 1
        if at is not None and (counter == OPENED or counter == CLICKED):
            engagement[start + LAST_ENGAGED] = at

    def set_reachable(self, channel: str, reachable: bool) -> None:
        """Gain or lose a channel's address or opt-in."""
        bit = CHANNEL_BIT[channel]
        self.reach = self.reach | bit if reachable else self.reach & ~bit

    def withdraw_consent(self, channel: str) -> None:
        """The customer unsubscribed from a channel."""
        self.consent &= ~CHANNEL_BIT[channel]

    def update_traits(self, traits: Properties) -> None:
        """Merge traits into the profile."""
        if self.traits is None:
            self.traits = {}
        self.traits.update(traits)

    def absorb(self, other: Profile, keep_sends_after: float) -> None:
        """Fold another profile of the same person into this one (an identity merge).

        This profile's traits win, ``other``'s fill the gaps; an address known on either side
        counts, and an unsubscribe on either side stands; engagement counters and purchases
        add up, the later of each timestamp is kept; the timelines interleave by time and are
        trimmed as ``note`` trims (marketing sends after ``keep_sends_after`` stay).
        """
        if other.traits:
            self.traits = {**other.traits, **(self.traits or {})}
        self.reach |= other.reach
        self.consent &= other.consent
        if other.engagement is not None:
            mine = self.engagement if self.engagement is not None else array("d")
            theirs = other.engagement
            if len(mine) < len(theirs):
                mine.extend(_NO_ENGAGEMENT[len(mine) : len(theirs)])
            for index, value in enumerate(theirs):
                if index % COUNTERS == LAST_ENGAGED:
                    mine[index] = max(mine[index], value)
                else:
                    mine[index] += value
            self.engagement = mine
        self.purchases += other.purchases
        self.revenue += other.revenue
        if other.last_purchase_at is not None:
            self.last_purchase_at = max(self.last_purchase_at or _NEVER, other.last_purchase_at)
        if other.first_purchase_at is not None:
            self.first_purchase_at = min(self.first_purchase_at or math.inf, other.first_purchase_at)
        if self.scores is None:  # (the next scoring pass scores the two as one)
            self.scores, self.scored_at = other.scores, other.scored_at
        if other.engaged_hours is not None:
            hours = self.engaged_hours if self.engaged_hours is not None else array("I", bytes(96))
            self.engaged_hours = array("I", map(sum, zip(hours, other.engaged_hours, strict=True)))
        if other.cooldowns is not None:
            for index, started in enumerate(other.cooldowns):
                if started > (self.cooldown_started(index) or _NEVER):
                    self.start_cooldown(index, started)
        if other.timeline_at is not None and other.timeline_what is not None:
            entries = sorted(  # by time; on a tie this profile's entry first (a stable sort)
                [*zip(self.timeline_at or (), self.timeline_what or (), strict=True),
                 *zip(other.timeline_at, other.timeline_what, strict=True)],
                key=lambda entry: entry[0],
            )
            self.timeline_at = array("d", [at for at, _ in entries])
            self.timeline_what = tuple(what for _, what in entries)
            self._trim(keep_sends_after)

    def start_cooldown(self, index: int, at: float) -> None:
        """Remember that the policy's cool-down number ``index`` started at ``at``."""
        if self.cooldowns is None:
            self.cooldowns = array("d")
        while len(self.cooldowns) <= index:
            self.cooldowns.append(_NEVER)
        self.cooldowns[index] = at


def _touch(label: str) -> tuple[str, str, str, str]:
    """``(kind, channel, message, journey)`` of a send's or a receipt's label."""
    kind, channel, detail = label.split(_SEP, 2)
    journey, _, message = detail.rpartition(_SEP)
    return kind, channel, message, journey
