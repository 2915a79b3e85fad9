"""Run metrics, folded from the journey trace as it happens (no trace is kept in memory).

The runtime hands every effect list and every delivery receipt to ``RunMetrics``; ``to_dict``
then gives the content of ``metrics.json``: per journey entrants, holdout, conversions and rate
in each group, incremental lift with a 95% CI, revenue, time to convert; messages by channel and
per customer; suppressed sends by rule; opt-outs by channel; agent KPIs.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Hashable
from typing import Any

import numpy as np

from actors.journey import Program
from actors.messages import (
    Advanced,
    Cancel,
    Converted,
    DeliveryReceipt,
    Effect,
    Entered,
    Escalated,
    Exited,
    Schedule,
    Send,
    Suppressed,
)
from reports.stats import two_proportions

_UNTALLIED = frozenset({Advanced, Schedule, Cancel})


class JourneyTally:
    """Counts for one journey."""

    __slots__ = ("entrants", "holdout", "conversions", "revenue", "to_convert", "sends",
                 "suppressed", "deferred", "exits")

    def __init__(self) -> None:
        self.entrants = [0, 0]  # [treated, holdout]
        self.conversions = [0, 0]
        self.revenue = [0.0, 0.0]
        self.to_convert: tuple[list[float], list[float]] = ([], [])
        self.sends: Counter[str] = Counter()
        self.suppressed: Counter[str] = Counter()
        self.deferred: Counter[str] = Counter()
        self.exits: Counter[str] = Counter()


class RunMetrics:
    """Everything ``metrics.json`` reports, accumulated effect by effect.

    Args:
        program: the compiled scenario (for journey ids).
        customers: the population size.
    """

    def __init__(self, program: Program, customers: int) -> None:
        self.customers = customers
        self.journeys = {j.id: JourneyTally() for j in program.journeys}
        self.per_customer = array("I", bytes(array("I").itemsize * customers))
        self.receipts: dict[str, Counter[str]] = {}
        self.escalations: Counter[str] = Counter()

    def observe(self, customer: int, effects: list[Effect]) -> None:
        """Fold one actor's effects into the tallies (``customer``: its number in the population)."""
        self.observe_journeys(customer, effects)
        for effect in effects:
            if type(effect) is Send:
                self.per_customer[customer] += 1

    def observe_journeys(self, customer: Hashable, effects: list[Effect]) -> None:
        """Fold effects into the per-journey tallies only: the real-time runtime's ``observe``, whose
        customers have no number in a population (``customer`` is taken, in the effect router's
        shape, and not used)."""
        for effect in effects:
            kind = type(effect)
            if kind in _UNTALLIED:
                continue  # the commonest effects: say nothing the tallies count
            if kind is Send:
                self.journeys[effect.journey].sends[effect.channel] += 1  # type: ignore[union-attr]
            elif kind is Suppressed:
                tally = self.journeys[effect.journey]
                tally.suppressed[effect.rule] += 1  # type: ignore[union-attr]
                if effect.deferred_until is not None:  # type: ignore[union-attr]
                    tally.deferred[effect.rule] += 1  # type: ignore[union-attr]
            elif kind is Entered:
                self.journeys[effect.journey].entrants[effect.holdout] += 1  # type: ignore[union-attr]
            elif kind is Converted:
                tally = self.journeys[effect.journey]
                group = int(effect.holdout)  # type: ignore[union-attr]
                tally.conversions[group] += 1
                tally.revenue[group] += effect.value  # type: ignore[union-attr]
                tally.to_convert[group].append(effect.after)  # type: ignore[union-attr]
            elif kind is Exited:
                self.journeys[effect.journey].exits[effect.reason] += 1  # type: ignore[union-attr]
            elif kind is Escalated:
                self.escalations[effect.queue] += 1  # type: ignore[union-attr]

    def observe_receipt(self, receipt: DeliveryReceipt) -> None:
        """Count a delivery receipt (delivered, opened, clicked, bounced, unsubscribed)."""
        counts = self.receipts.get(receipt.status)
        if counts is None:
            counts = self.receipts[receipt.status] = Counter()
        counts[receipt.channel] += 1

    def to_dict(self) -> dict[str, Any]:
        """The metrics as plain data, deterministic in content and order."""
        journeys = {jid: _journey_dict(t) for jid, t in sorted(self.journeys.items())}
        by_channel: Counter[str] = Counter()
        suppressed: Counter[str] = Counter()
        deferred: Counter[str] = Counter()
        for tally in self.journeys.values():
            by_channel.update(tally.sends)
            suppressed.update(tally.suppressed)
            deferred.update(tally.deferred)
        counts = np.asarray(self.per_customer, dtype=np.int64)
        reached = counts[counts > 0]
        return {
            "journeys": journeys,
            "messages": {
                "total": int(sum(by_channel.values())),
                "by_channel": dict(sorted(by_channel.items())),
                "per_customer": {
                    "mean": float(counts.mean()) if counts.size else 0.0,
                    "mean_of_reached": float(reached.mean()) if reached.size else 0.0,
                    "p50": float(np.percentile(counts, 50)) if counts.size else 0.0,
                    "p90": float(np.percentile(counts, 90)) if counts.size else 0.0,
                    "max": int(counts.max()) if counts.size else 0,
                    "customers_reached": int(reached.size),
                },
            },
            "suppressed": {
                "total": int(sum(suppressed.values())),
                "by_rule": dict(sorted(suppressed.items())),
                "deferred_by_rule": dict(sorted(deferred.items())),
            },
            "opt_outs": {
                "total": int(sum(self.receipts.get("unsubscribed", Counter()).values())),
                "by_channel": dict(sorted(self.receipts.get("unsubscribed", Counter()).items())),
            },
            "receipts": {s: dict(sorted(c.items())) for s, c in sorted(self.receipts.items())},
            "escalations": dict(sorted(self.escalations.items())),
        }


def _journey_dict(t: JourneyTally) -> dict[str, Any]:
    treated, holdout = t.entrants
    stats = two_proportions(t.conversions[0], treated, t.conversions[1], holdout)
    return {
        "entrants": treated + holdout,
        "treated": {"entrants": treated, "conversions": t.conversions[0], "rate": stats["rate_treated"],
                    "revenue": t.revenue[0], "time_to_convert_h": _hours(t.to_convert[0])},
        "holdout": {"entrants": holdout, "conversions": t.conversions[1], "rate": stats["rate_holdout"],
                    "revenue": t.revenue[1], "time_to_convert_h": _hours(t.to_convert[1])},
        "lift": {k: stats[k] for k in ("lift", "lift_ci95_low", "lift_ci95_high", "relative_lift",
                                       "z", "p_value")},
        "incremental_conversions": (
            None if stats["lift"] is None else stats["lift"] * treated
        ),
        "messages_by_channel": dict(sorted(t.sends.items())),
        "suppressed_by_rule": dict(sorted(t.suppressed.items())),
        "exits": dict(sorted(t.exits.items())),
    }


def _hours(durations: list[float]) -> dict[str, float | None]:
    if not durations:
        return {"median": None, "p90": None}
    values = np.asarray(durations) / 3600.0
    return {"median": float(np.median(values)), "p90": float(np.percentile(values, 90))}
