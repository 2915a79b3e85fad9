"""One journey's tallies in a run, and their plain data in metrics.json (``journey_dict``):
entrants, conversions and rate in each group on the rate basis, lift, revenue, time to convert,
exits, the funnel by step with each send step's channels, and the split arms.

The time to convert (median, 90th percentile) is over each group's latest ``TO_CONVERT_KEPT``
conversions: a run's every one at the sizes a simulation runs, and a bounded memory (and
snapshot) in a service that runs for months."""

from __future__ import annotations

import math
from collections import Counter, deque
from typing import Any

import numpy as np

from actors.journey import Journey, SendStep, SplitStep
from reports.stats import two_proportions

TO_CONVERT_KEPT = 100_000  # conversion times kept per journey and group


class JourneyTally:
    """Counts for one journey (``[treated, holdout]`` pairs where a group matters)."""

    __slots__ = ("journey", "index", "window", "entrants", "complete", "conversions",
                 "complete_conversions", "revenue", "to_convert", "sends", "suppressed", "deferred",
                 "exits", "reached", "step_sends", "step_skipped", "step_deferred", "converted_after",
                 "timed")

    def __init__(self, journey: Journey) -> None:
        self.journey = journey
        self.index = journey.index
        self.window = journey.goal_within
        self.entrants = [0, 0]
        self.complete = [0, 0]  # entrants whose goal window ends within the run
        self.conversions = [0, 0]
        self.complete_conversions = [0, 0]  # conversions of those entrants
        self.revenue = [0.0, 0.0]
        self.to_convert: tuple[deque[float], deque[float]] = (deque(maxlen=TO_CONVERT_KEPT),
                                                               deque(maxlen=TO_CONVERT_KEPT))
        self.sends: Counter[str] = Counter()  # by channel
        self.suppressed: Counter[str] = Counter()  # by rule
        self.deferred: Counter[str] = Counter()
        self.exits: Counter[str] = Counter()
        self.reached: Counter[str] = Counter()  # by step
        self.step_sends: Counter[str] = Counter()
        self.step_skipped: Counter[str] = Counter()  # suppressed for good
        self.step_deferred: Counter[str] = Counter()  # suppressed until later (then tried again)
        self.converted_after: Counter[str] = Counter()  # conversions of runs that passed the step
        self.timed: Counter[str] = Counter()  # best_hour waits: from the customer's own history, or not

    _COUNTS = ("entrants", "complete", "conversions", "complete_conversions", "revenue")
    _COUNTERS = ("sends", "suppressed", "deferred", "exits", "reached", "step_sends", "step_skipped",
                 "step_deferred", "converted_after", "timed")

    def state(self) -> dict[str, Any]:
        """The tallies as plain data (for a snapshot: ``restore`` reads it back)."""
        return {
            **{name: list(getattr(self, name)) for name in self._COUNTS},
            "to_convert": [list(durations) for durations in self.to_convert],
            **{name: dict(getattr(self, name)) for name in self._COUNTERS},
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Take the tallies ``state`` gives (a snapshot's), in place of these."""
        for name in self._COUNTS:
            setattr(self, name, typed_like(getattr(self, name), state[name]))
        for kept, durations in zip(self.to_convert, state["to_convert"], strict=True):
            kept.clear()
            kept.extend(durations)
        for name in self._COUNTERS:
            setattr(self, name, Counter(state[name]))


def journey_dict(t: JourneyTally, horizon: float) -> dict[str, Any]:
    (treated, holdout), (complete_t, complete_h) = t.entrants, t.complete
    conv_t, conv_h = t.complete_conversions
    stats = two_proportions(conv_t, complete_t, conv_h, complete_h)
    basis = ("every entrant (no horizon)" if not math.isfinite(horizon) else
             f"entrants whose {t.window / 86400:g}-day goal window ended within the run")
    return {
        "entrants": treated + holdout,
        "rate_basis": basis,
        "treated": _group(treated, complete_t, t.conversions[0], conv_t, stats["rate_treated"],
                          t.revenue[0], t.to_convert[0]),
        "holdout": _group(holdout, complete_h, t.conversions[1], conv_h, stats["rate_holdout"],
                          t.revenue[1], t.to_convert[1]),
        "lift": {k: stats[k] for k in ("lift", "lift_ci95_low", "lift_ci95_high", "relative_lift",
                                       "z", "p_value")},
        "incremental_conversions": (
            None if stats["lift"] is None else stats["lift"] * complete_t
        ),
        "messages_by_channel": dict(sorted(t.sends.items())),
        "suppressed_by_rule": dict(sorted(t.suppressed.items())),
        "exits": dict(sorted(t.exits.items())),
        "funnel": [
            {"step": step, "reached": t.reached[step], "sent": t.step_sends[step],
             "skipped": t.step_skipped[step], "deferred": t.step_deferred[step],
             "converted_after": t.converted_after[step], **_sends_by(t.journey.steps[step])}
            for step in t.journey.steps
        ],
        "splits": {
            step.id: [{"next": target, "share": share, "reached": t.reached[target],
                       "converted_after": t.converted_after[target]}
                      for share, target in _shares(step)]
            for step in t.journey.steps.values() if isinstance(step, SplitStep)
        },
        # best_hour waits: how many used the customer's own engagement hours, how many the default
        "best_send_time": {"own_history": t.timed["own_history"], "default": t.timed["default"]},
    }


def _sends_by(step: object) -> dict[str, Any]:
    """A step's channels (a send step's; none for the others), and whether the customer's best of
    them is chosen: a variant may make a step named ``push`` send email."""
    if isinstance(step, SendStep):
        return {"channels": list(step.channels), "best": step.best}
    return {"channels": [], "best": False}


def _group(entrants: int, complete: int, conversions: int, complete_conversions: int,
           rate: float | None, revenue: float, to_convert: deque[float]) -> dict[str, Any]:
    return {"entrants": entrants, "entrants_complete": complete, "conversions": conversions,
            "conversions_complete": complete_conversions, "rate": rate, "revenue": revenue,
            "time_to_convert_h": _hours(to_convert)}


def _shares(step: SplitStep) -> list[tuple[float, str]]:
    """Each arm's share of the split (its thresholds are cumulative)."""
    shares, below = [], 0.0
    for threshold, target in step.arms:
        shares.append((threshold - below, target))
        below = threshold
    return shares


def typed_like(zeros: list[Any], values: list[Any]) -> list[Any]:
    """``values`` (a snapshot's) as the types of ``zeros`` (ints stay ints, floats floats)."""
    return [type(zero)(value) for zero, value in zip(zeros, values, strict=True)]


def _hours(durations: deque[float]) -> dict[str, float | None]:
    if not durations:
        return {"median": None, "p90": None}
    values = np.fromiter(durations, float, len(durations)) / 3600.0
    return {"median": float(np.median(values)), "p90": float(np.percentile(values, 90))}
