"""Plain-data views of actor state, for the admin API and ``touchpoint export``."""

from __future__ import annotations

import math
from typing import Any

from actors.actor import Actor
from actors.messages import CHANNELS
from actors.policy import engagement_rate
from actors.profile import CLICKED, DELIVERED, LAST_ENGAGED, OPENED, SENDS
from actors.scores import SCORE_NAMES
from actors.segments import in_segment


def profile_view(actor: Actor) -> dict[str, Any]:
    """One customer as JSON-ready data: identity, consent, engagement, timeline, journeys."""
    profile = actor.profile
    engagement = {}
    for channel in CHANNELS:
        stats = profile.channel_stats(channel)
        if stats[SENDS] or stats[DELIVERED] or stats[OPENED] or stats[CLICKED]:
            engagement[channel] = {
                "sends": int(stats[SENDS]),
                "delivered": int(stats[DELIVERED]),
                "opened": int(stats[OPENED]),
                "clicked": int(stats[CLICKED]),
                "last_engaged_at": stats[LAST_ENGAGED] if stats[LAST_ENGAGED] >= 0 else None,
            }
    timers = {timer.journey: timer.at for timer in actor.live_timers()}
    return {
        "customer_id": profile.customer_id,
        "traits": dict(profile.traits or {}),
        "tz_offset_s": profile.tz_offset,
        "timezone": zone if isinstance(zone := profile.zone, str) else None,
        "reachable": [ch for ch in CHANNELS if profile.can_reach(ch)],
        "consented": [ch for ch in CHANNELS if profile.has_consent(ch)],
        "engagement": engagement,
        "purchases": {"count": profile.purchases, "revenue": profile.revenue,
                      "first_at": profile.first_purchase_at, "last_at": profile.last_purchase_at},
        "segments": sorted(s.id for s in actor.program.segments if in_segment(actor.segments, s.index)),
        "segment_timer_at": actor.segments.due if actor.segments and actor.segments.due < math.inf else None,
        "scores": None if profile.scores is None else {
            "at": profile.scored_at, **{name: profile.score(name) for name in SCORE_NAMES}},
        "engagement_propensity": {channel: round(engagement_rate(actor.program.policy, profile, channel), 6)
                                  for channel in CHANNELS if profile.can_reach(channel)},
        "timeline": [
            {"at": at, "kind": kind, "channel": channel, "detail": detail}
            for at, kind, channel, detail in profile.timeline()
        ],
        "journeys": {
            journey_id: {
                "entry": run.entry,
                "entered_at": run.entered_at,
                "holdout": run.holdout,
                "converted": run.converted,
                "step": run.step,
                "next_timer_at": timers.get(journey_id),
            }
            for journey_id, run in actor.runs_by_id().items()
        },
    }
