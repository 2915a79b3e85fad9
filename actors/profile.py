"""The unified customer profile: one record per customer, shared by every journey.

Compact on purpose (slots, no reference cycles, lazily created collections): a million of them
must fit in well under a gigabyte. The timeline is bounded: it keeps the most recent interactions
across channels so that a hand-off to an agent carries the context.
"""

from __future__ import annotations

from actors.messages import CHANNELS, Properties, Scalar

TIMELINE_LIMIT = 12
"""Interactions kept on the timeline; older ones fall off."""

CHANNEL_BIT = {name: 1 << i for i, name in enumerate(CHANNELS)}
ALWAYS_REACHABLE = CHANNEL_BIT["webhook"] | CHANNEL_BIT["agent"] | CHANNEL_BIT["in_app"]

# engagement counters per channel, in this order
SENDS, DELIVERED, OPENED, CLICKED, LAST_ENGAGED = range(5)

TimelineEntry = tuple[float, str, str, str]  # (at, kind, channel, detail)

BROWSING_EVENTS = frozenset({"session_start", "page_view", "screen"})
"""Events too frequent and too thin to be worth a place on the timeline."""


class Profile:
    """Who the customer is and how they have engaged, channel by channel.

    Attributes:
        customer_id: the stable identity.
        tz_offset: offset of the customer's local time from UTC, in seconds.
        reach: bit set of channels with an address or opt-in (see ``CHANNEL_BIT``).
        consent: bit set of channels the customer has not unsubscribed from.
        traits: free-form attributes (set by identify and by journey ``update`` steps).
        engagement: per channel ``[sends, delivered, opened, clicked, last_engaged_at]``.
        purchases, revenue, last_purchase_at: the purchase history.
        sends: recent marketing sends ``(at, channel, message)``, for rolling-window policies.
        timeline: the most recent interactions ``(at, kind, channel, detail)``, newest last.
        last_event_at: when each cool-down rule was last started by a matching event.
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
        "sends",
        "timeline",
        "last_event_at",
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
        self.engagement: dict[str, list[float]] | None = None
        self.purchases = 0
        self.revenue = 0.0
        self.last_purchase_at: float | None = None
        self.sends: list[tuple[float, str, str]] | None = None
        self.timeline: list[TimelineEntry] | None = None
        self.last_event_at: dict[str, float] | None = None

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

    def channel_stats(self, channel: str) -> list[float]:
        """The engagement counters of a channel (zeros when it was never used)."""
        if self.engagement is None or channel not in self.engagement:
            return [0.0, 0.0, 0.0, 0.0, -1.0]
        return self.engagement[channel]

    def trait(self, name: str) -> Scalar:
        """A trait's value, or None."""
        return None if self.traits is None else self.traits.get(name)

    # -- writing ---------------------------------------------------------------------------------

    def note(self, at: float, kind: str, channel: str, detail: str) -> None:
        """Append an interaction to the bounded timeline."""
        if self.timeline is None:
            self.timeline = []
        self.timeline.append((at, kind, channel, detail))
        if len(self.timeline) > TIMELINE_LIMIT:
            del self.timeline[0]

    def count(self, channel: str, counter: int, at: float | None = None) -> None:
        """Increment one engagement counter; an open or click also stamps ``LAST_ENGAGED``."""
        if self.engagement is None:
            self.engagement = {}
        stats = self.engagement.get(channel)
        if stats is None:
            stats = self.engagement[channel] = [0.0, 0.0, 0.0, 0.0, -1.0]
        stats[counter] += 1
        if at is not None and counter in (OPENED, CLICKED):
            stats[LAST_ENGAGED] = at

    def set_reachable(self, channel: str, reachable: bool) -> None:
        """Gain or lose a channel's address or opt-in."""
        bit = CHANNEL_BIT[channel]
        self.reach = self.reach | bit if reachable else self.reach & ~bit

    def withdraw_consent(self, channel: str) -> None:
        """The customer unsubscribed from a channel."""
        self.consent &= ~CHANNEL_BIT[channel]

    def record_send(self, at: float, channel: str, message: str, horizon: float) -> None:
        """Remember a marketing send, forgetting those older than ``horizon`` seconds."""
        if self.sends is None:
            self.sends = []
        sends = self.sends
        while sends and sends[0][0] <= at - horizon:
            del sends[0]
        sends.append((at, channel, message))

    def update_traits(self, traits: Properties) -> None:
        """Merge traits into the profile."""
        if self.traits is None:
            self.traits = {}
        self.traits.update(traits)

    def start_cooldown(self, rule: str, at: float) -> None:
        """Remember that a cool-down rule was started at ``at``."""
        if self.last_event_at is None:
            self.last_event_at = {}
        self.last_event_at[rule] = at
