"""How a walk decides between paths: a branch's rules, a split's arms, and the values they read.

A branch reads four sources (``event``, ``traits``, ``profile``, ``engagement``); the compiler
has checked every path, so a lookup here never meets a name it does not know.
"""

from __future__ import annotations

from actors.journey import BranchStep, SplitStep, all_hold, days_between, stable_fraction
from actors.messages import Properties, Scalar
from actors.profile import CLICKED, DELIVERED, OPENED, SENDS, Profile
from actors.runs import JourneyRun

_ENGAGEMENT_FIELDS = {"sends": SENDS, "delivered": DELIVERED, "opened": OPENED, "clicked": CLICKED}


def choose_branch(step: BranchStep, run: JourneyRun, profile: Profile, now: float, members: int = 0,
                  bits: dict[str, int] | None = None) -> str:
    """The target of the first rule whose conditions all hold, else ``otherwise`` (``members``:
    the customer's segments, as bits of ``bits``)."""
    lookup = sources(profile, now, run.context, members, bits)
    for conditions, target in step.rules:
        if all_hold(conditions, lookup):
            return target
    return step.otherwise


def sources(profile: Profile, now: float, event: Properties | None = None, members: int = 0,
            bits: dict[str, int] | None = None) -> dict[str, object]:
    """What conditions read, by source (``actors.journey.all_hold``)."""
    return {
        "event": event or {},
        "traits": profile.traits or {},
        "profile": lambda path: profile_field(profile, path, now),
        "engagement": lambda path: engagement_field(profile, path),
        "scores": lambda path: profile.score(path[0]),
        "segment": lambda path: bool(members & (bits or {}).get(path[0], 0)),
    }


def choose_arm(step: SplitStep, journey_id: str, customer_id: str) -> str:
    """The arm of a split, fixed by the customer id (the same on every run and runtime)."""
    draw = stable_fraction(journey_id, step.id, customer_id)
    for threshold, target in step.arms:
        if draw < threshold:
            return target
    return step.arms[-1][1]


def profile_field(profile: Profile, path: tuple[str, ...], now: float) -> Scalar:
    """``profile.purchases``, ``profile.revenue`` or ``profile.days_since_purchase``."""
    name = path[0]
    if name == "purchases":
        return profile.purchases
    if name == "revenue":
        return profile.revenue
    if name == "days_since_purchase":
        return days_between(profile.last_purchase_at, now)
    return None


def engagement_field(profile: Profile, path: tuple[str, ...]) -> Scalar:
    """``engagement.<channel>.<counter>``, or the channel's ``click_rate``."""
    stats = profile.channel_stats(path[0])
    if path[1] == "click_rate":
        return stats[CLICKED] / stats[DELIVERED] if stats[DELIVERED] else 0.0
    return stats[_ENGAGEMENT_FIELDS[path[1]]]

