"""Run metrics, folded from the journey trace as it happens (no trace is kept in memory).

The runtime hands every effect list (with its time) and every delivery receipt to
``RunMetrics``; ``to_dict`` then gives the content of ``metrics.json``: per journey entrants,
holdout, conversions and rate in each group, incremental lift with a 95% CI, revenue, time to
convert, the funnel by step and the result of each split arm; messages by channel and per
customer; contact pressure per week and the fatigue curve; suppressed sends by rule; opt-outs by
channel; agent KPIs; the whole program's lift against a global holdout (``program``:
``reports.program``); and, in a simulation, daily series for the report's figures (among them,
per journey, entries and their conversions by the day of entry, so a figure can follow the rate of
the entrants whose goal window has closed, the rate the tables give).

Censoring. A run ends at a horizon, and an entrant whose goal window is still open then has had
less time to convert: counting them would bias the rate down, and differently for designs with
different timing. So conversion rates, lifts and the per-customer outcomes count only entrants
whose whole goal window fits in the run (``rate_basis`` in metrics.json says so); ``entrants``
still counts everyone. The real-time runtime has no horizon: its rates count every entrant.

In a simulation, where customers are numbered, ``outcomes`` keeps each customer's own results
(conversions and entries per journey, revenue, messages, opt-outs) for paired comparisons of
designs (``reports.paired``). One journey's tallies, and their shape in metrics.json, are in
``reports.journeys``.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from actors.journey import Program
from actors.messages import (
    Advanced,
    Bought,
    Cancel,
    Converted,
    DeliveryReceipt,
    Effect,
    Entered,
    Escalated,
    Exited,
    Schedule,
    Segmented,
    Send,
    Suppressed,
    Timed,
    parse_send_key,
)
from reports.journeys import JourneyTally, journey_dict
from reports.paths import PathTally
from reports.program import ProgramTally

DAY = 86400.0
WEEK = 7 * DAY
_UNTALLIED = frozenset({Schedule, Cancel})


@dataclass(frozen=True)
class Outcomes:
    """Each customer's own results in one run, by population number (numpy arrays)."""

    messages: np.ndarray  # sends
    revenue: np.ndarray  # conversion value, every journey and group
    opt_outs: np.ndarray
    entered: dict[str, np.ndarray]  # journey -> treated entries whose goal window fits the run
    converted: dict[str, np.ndarray]  # journey -> their conversions
    entered_all: dict[str, np.ndarray]  # journey -> such entries, treated or held out
    converted_all: dict[str, np.ndarray]  # journey -> their conversions


class RunMetrics:
    """Everything ``metrics.json`` reports, accumulated effect by effect.

    Args:
        program: the compiled scenario (for journey ids).
        customers: the population size (0: customers have no number, as in the real-time
            runtime; then only the journey tallies are kept).
        horizon: the run's end, in seconds (infinite: the real-time runtime).
    """

    def __init__(self, program: Program, customers: int, horizon: float = math.inf,
                 close_windows: bool = False) -> None:
        self.customers = customers
        self.horizon = horizon
        self.journeys = {j.id: JourneyTally(j) for j in program.journeys}
        self.receipts: dict[str, Counter[str]] = {}
        self.escalations: Counter[str] = Counter()
        self.program = ProgramTally(program.policy)
        # conversion and null paths, per journey (reports.paths); ``close_windows``: null paths said
        # as goal windows close (a runtime with no end)
        self.paths = PathTally({j.id: j.goal_within for j in program.journeys} if close_windows else None)
        # live segments: each one's [members now, entries, exits]; the scoring, if any (a runtime's)
        self.segments: dict[str, list[int]] = {s.id: [0, 0, 0] for s in program.segments}
        self.scoring: Any = None  # an ``engine.lab.scoring.Scoring``: its report joins the metrics
        n = customers
        self.per_customer = array("I", bytes(4 * n))  # messages
        self.revenue = array("d", bytes(8 * n))
        self.opt_outs = array("B", bytes(n))
        self.entered = [array("H", bytes(2 * n)) for _ in program.journeys]
        self.converted = [array("H", bytes(2 * n)) for _ in program.journeys]
        self.entered_all = [array("H", bytes(2 * n)) for _ in program.journeys]
        self.converted_all = [array("H", bytes(2 * n)) for _ in program.journeys]
        finite = math.isfinite(horizon) and n > 0
        self.days = math.ceil(horizon / DAY) if finite else 0
        self.weeks = max(1, int(horizon // WEEK)) if finite else 0  # whole weeks (one if shorter)
        self.weekly = array("H", bytes(2 * n * self.weeks))  # messages per customer and week
        self.daily_sends: dict[str, array[int]] = {}
        self.daily_entrants = (array("I", bytes(4 * self.days)), array("I", bytes(4 * self.days)))
        self.daily_conversions = (array("I", bytes(4 * self.days)), array("I", bytes(4 * self.days)))
        # per journey, [treated, holdout]: entries by day, and their conversions by the day of entry
        self.entries_by_day = [self._daily_pair() for _ in program.journeys]
        self.conversions_by_entry_day = [self._daily_pair() for _ in program.journeys]

    def _daily_pair(self) -> tuple[array[int], array[int]]:
        return array("I", bytes(4 * self.days)), array("I", bytes(4 * self.days))

    def observe(self, customer: Any, effects: list[Effect], now: float) -> None:
        """Fold one actor's effects, produced at ``now``, into the tallies and, in a simulation,
        the customer's own results (``customer``: its number in the population; in the real-time
        runtime, whose customers have no number, any key, not used). One pass over the effects:
        this runs for every message that has any."""
        numbered = self.customers > 0
        day = min(int(now // DAY), self.days - 1)  # (an item due at the horizon itself)
        journeys = self.journeys
        for effect in effects:
            kind = type(effect)
            if kind in _UNTALLIED:
                continue  # the commonest effects: say nothing the tallies count
            if kind is Advanced:
                tally = journeys[effect.journey]  # type: ignore[union-attr]
                tally.reached[effect.step] += 1  # type: ignore[union-attr]
            elif kind is Send:
                tally = journeys[effect.journey]  # type: ignore[union-attr]
                tally.sends[effect.channel] += 1  # type: ignore[union-attr]
                tally.step_sends[effect.step] += 1  # type: ignore[union-attr]
                if numbered:
                    self._count_send(customer, effect.channel, now, day)  # type: ignore[union-attr]
            elif kind is Suppressed:
                tally = journeys[effect.journey]  # type: ignore[union-attr]
                tally.suppressed[effect.rule] += 1  # type: ignore[union-attr]
                if effect.deferred_until is None:  # type: ignore[union-attr]
                    tally.step_skipped[effect.step] += 1  # type: ignore[union-attr]
                else:
                    tally.deferred[effect.rule] += 1  # type: ignore[union-attr]
                    tally.step_deferred[effect.step] += 1  # type: ignore[union-attr]
            elif kind is Timed:  # (a best_hour wait: from the customer's history, or the default)
                journeys[effect.journey].timed["own_history" if effect.own else "default"] += 1  # type: ignore[union-attr]
            elif kind is Segmented:
                counts = self.segments[effect.segment]  # type: ignore[union-attr]
                entered = effect.entered  # type: ignore[union-attr]
                counts[0] += 1 if entered else -1
                counts[1 if entered else 2] += 1
            elif kind is Entered:
                tally = journeys[effect.journey]  # type: ignore[union-attr]
                group = int(effect.holdout)  # type: ignore[union-attr]
                tally.entrants[group] += 1
                if self.paths.windows is not None:
                    self.paths.entered(customer, effect, now)  # type: ignore[arg-type]
                elif effect.lapsed:  # type: ignore[union-attr]  # (the previous entry's null path)
                    self.paths.lapsed(effect.journey, effect.lapsed)  # type: ignore[union-attr]
                fits = now + tally.window <= self.horizon
                if fits:
                    tally.complete[group] += 1
                if numbered:
                    self._count_entry(customer, tally, group, fits, day)
            elif kind is Converted:
                tally = journeys[effect.journey]  # type: ignore[union-attr]
                group = int(effect.holdout)  # type: ignore[union-attr]
                tally.conversions[group] += 1
                tally.revenue[group] += effect.value  # type: ignore[union-attr]
                self.paths.converted(effect.journey, effect.path, effect.value)  # type: ignore[union-attr]
                if self.paths.windows is not None:
                    self.paths.converted_entry(customer, effect)  # type: ignore[arg-type]
                tally.to_convert[group].append(effect.after)  # type: ignore[union-attr]
                since = now - effect.after  # type: ignore[union-attr]  # (the entry's time)
                fits = since + tally.window <= self.horizon
                if fits:
                    tally.complete_conversions[group] += 1
                if not group:  # (the steps this entry reached: each counts the conversion once)
                    tally.converted_after.update(effect.steps)  # type: ignore[union-attr]
                if numbered:
                    self._count_conversion(customer, tally, group, fits, since, effect.value, day)  # type: ignore[union-attr]
            elif kind is Exited:
                journeys[effect.journey].exits[effect.reason] += 1  # type: ignore[union-attr]
            elif kind is Escalated:
                self.escalations[effect.queue] += 1  # type: ignore[union-attr]
            elif kind is Bought:
                self.program.bought(effect)  # type: ignore[arg-type]

    def _count_send(self, customer: int, channel: str, now: float, day: int) -> None:
        self.per_customer[customer] += 1
        week = int(now // WEEK)
        if week < self.weeks:
            self.weekly[customer * self.weeks + week] += 1
        sends = self.daily_sends.get(channel)
        if sends is None:
            sends = self.daily_sends[channel] = array("I", bytes(4 * self.days))
        sends[day] += 1

    def _count_entry(self, customer: int, tally: JourneyTally, group: int, fits: bool, day: int) -> None:
        self.daily_entrants[group][day] += 1
        self.entries_by_day[tally.index][group][day] += 1
        if fits:
            self.entered_all[tally.index][customer] += 1
        if not group and fits:
            self.entered[tally.index][customer] += 1

    def _count_conversion(self, customer: int, tally: JourneyTally, group: int, fits: bool,
                          since: float, value: float, day: int) -> None:
        self.revenue[customer] += value
        self.daily_conversions[group][day] += 1
        entry_day = min(max(int(since // DAY), 0), self.days - 1)
        self.conversions_by_entry_day[tally.index][group][entry_day] += 1
        if fits:
            self.converted_all[tally.index][customer] += 1
        if fits and not group:
            self.converted[tally.index][customer] += 1

    def state(self) -> dict[str, Any]:
        """What the real-time runtime keeps (journey tallies, receipts, escalations, the
        program's lift) as plain data, for a snapshot; ``restore`` reads it back. (A
        simulation's per-customer results are not part of it.)"""
        return {
            "journeys": {jid: tally.state() for jid, tally in self.journeys.items()},
            "receipts": {status: dict(counts) for status, counts in self.receipts.items()},
            "escalations": dict(self.escalations),
            "program": self.program.state(),
            "paths": self.paths.state(),
            "open_windows": self.paths.open_state(),
            "segments": self.segments,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Take the tallies of a snapshot's ``state`` in place of these. A journey the program no
        longer has is dropped; one it did not have then starts from zero."""
        for jid, tally in state.get("journeys", {}).items():
            if jid in self.journeys:
                self.journeys[jid].restore(tally)
        self.receipts = {status: Counter(counts) for status, counts in state.get("receipts", {}).items()}
        self.escalations = Counter(state.get("escalations", {}))
        self.program.restore(state.get("program"))
        self.paths.restore(state.get("paths"))
        self.paths.restore_open(state.get("open_windows"))
        for sid, counts in state.get("segments", {}).items():
            if sid in self.segments:
                self.segments[sid] = list(counts)

    def count_customer(self, customer_id: str) -> None:
        """A customer seen for the first time (the program's lift counts them)."""
        self.program.count_customer(customer_id)

    def uncount_customer(self, customer_id: str) -> None:
        """A customer's actor was merged into another's: one person, counted once."""
        self.program.uncount_customer(customer_id)

    def count_recalled(self, journey: str, sends: int) -> None:
        """``sends`` of ``journey`` were recalled from the outbox (its run exited or converted):
        suppressed with the reason ``recalled``."""
        self.journeys[journey].suppressed["recalled"] += sends

    def count_recalled_keys(self, keys: list[str]) -> None:
        """The sends of these idempotency keys were recalled: a restart counts again the recalls
        the settled log holds since the snapshot (a key of no journey of the program is
        ignored)."""
        for key in keys:
            parsed = parse_send_key(key)
            if parsed is not None and parsed[1] in self.journeys:
                self.count_recalled(parsed[1], 1)

    def observe_receipt(self, receipt: DeliveryReceipt, customer: int | None = None) -> None:
        """Count a delivery receipt (delivered, opened, clicked, bounced, unsubscribed), and an
        opt-out against the customer when numbered."""
        counts = self.receipts.get(receipt.status)
        if counts is None:
            counts = self.receipts[receipt.status] = Counter()
        counts[receipt.channel] += 1
        if customer is not None and receipt.status == "unsubscribed":
            self.opt_outs[customer] += 1

    def outcomes(self) -> Outcomes:
        """Each customer's own results (a simulation's; empty arrays in the real-time runtime)."""
        return Outcomes(
            messages=np.asarray(self.per_customer, dtype=np.int64),
            revenue=np.asarray(self.revenue, dtype=np.float64),
            opt_outs=np.asarray(self.opt_outs, dtype=np.int64),
            entered={jid: np.asarray(self.entered[t.index], dtype=np.int64)
                     for jid, t in self.journeys.items()},
            converted={jid: np.asarray(self.converted[t.index], dtype=np.int64)
                       for jid, t in self.journeys.items()},
            entered_all={jid: np.asarray(self.entered_all[t.index], dtype=np.int64)
                         for jid, t in self.journeys.items()},
            converted_all={jid: np.asarray(self.converted_all[t.index], dtype=np.int64)
                           for jid, t in self.journeys.items()},
        )

    def to_dict(self) -> dict[str, Any]:
        """The metrics as plain data, deterministic in content and order."""
        journeys = {jid: journey_dict(t, self.horizon) for jid, t in sorted(self.journeys.items())}
        by_channel: Counter[str] = Counter()
        suppressed: Counter[str] = Counter()
        deferred: Counter[str] = Counter()
        for tally in self.journeys.values():
            by_channel.update(tally.sends)
            suppressed.update(tally.suppressed)
            deferred.update(tally.deferred)
        counts = np.asarray(self.per_customer, dtype=np.int64)
        reached = counts[counts > 0]
        customers = max(self.customers, 1)
        opt_outs = self.receipts.get("unsubscribed", Counter())
        result: dict[str, Any] = {
            "journeys": journeys,
            "messages": {
                "total": int(sum(by_channel.values())),
                "by_channel": dict(sorted(by_channel.items())),
                "per_customer_by_channel": {c: n / customers for c, n in sorted(by_channel.items())},
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
                "total": int(sum(opt_outs.values())),
                "by_channel": dict(sorted(opt_outs.items())),
                "per_1000_customers": 1000 * sum(opt_outs.values()) / customers,
            },
            "receipts": {s: dict(sorted(c.items())) for s, c in sorted(self.receipts.items())},
            "escalations": dict(sorted(self.escalations.items())),
            "attribution": self.paths.to_dict(),
        }
        if self.segments:
            result["segments"] = {sid: {"members": n, "entered": e, "left": out}
                                  for sid, (n, e, out) in sorted(self.segments.items())}
        if self.scoring is not None:
            result["scoring"] = self.scoring.report(self.horizon if math.isfinite(self.horizon) else None)
        program = self.program.to_dict()
        if program is not None:
            result["program"] = program
        if self.weeks:
            result["pressure"], result["fatigue"] = self._pressure()
            result["series"] = {
                "days": self.days,
                "messages_by_channel": {c: list(a) for c, a in sorted(self.daily_sends.items())},
                "entrants": {"treated": list(self.daily_entrants[0]),
                             "holdout": list(self.daily_entrants[1])},
                "conversions": {"treated": list(self.daily_conversions[0]),
                                "holdout": list(self.daily_conversions[1])},
                "journeys": {jid: self._entry_days(t) for jid, t in sorted(self.journeys.items())},
            }
        return result

    def _entry_days(self, tally: JourneyTally) -> dict[str, Any]:
        """A journey's entries and their conversions by the day of entry; ``complete_days``: how
        many first days' entrants all had their whole goal window within the run."""
        entries, conversions = self.entries_by_day[tally.index], self.conversions_by_entry_day[tally.index]
        return {
            "goal_window_days": tally.window / DAY,
            "complete_days": min(self.days, max(0, math.floor((self.horizon - tally.window) / DAY))),
            "entrants": {"treated": list(entries[0]), "holdout": list(entries[1])},
            "conversions_by_entry_day": {"treated": list(conversions[0]), "holdout": list(conversions[1])},
        }

    def _pressure(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Contact pressure (messages per customer per whole week) and the fatigue curve (the
        opt-out rate of customers by the most messages they got in one week)."""
        weekly = np.asarray(self.weekly, dtype=np.int64).reshape(self.customers, self.weeks)
        pressure = {
            "weeks": self.weeks,
            "basis": "messages per customer in each whole week of the run, every customer",
            "mean": float(weekly.mean()),
            "p95": float(np.percentile(weekly, 95)),
            "max": int(weekly.max()),
            "customer_weeks_by_messages": np.bincount(weekly.ravel()).tolist(),
        }
        peak = weekly.max(axis=1)
        opted = np.asarray(self.opt_outs, dtype=np.int64) > 0
        fatigue = []
        for k in range(int(peak.max()) + 1):
            group = peak == k
            n = int(group.sum())
            if n:
                out = int(opted[group].sum())
                fatigue.append({"messages_in_busiest_week": k, "customers": n, "opted_out": out,
                                "rate": out / n})
        return pressure, fatigue
