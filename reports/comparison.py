"""A compare's result: each design's headline figures, and each against the baseline, paired.

Input: for each design (the first is the baseline), its runs, one per replication (the same
seeds for every design), as metrics (``RunMetrics.to_dict``) and per-customer outcomes. Output:
the plain data of a compare's ``metrics.json``. Counts are summed over replications; the paired
differences are computed on all replications' customers together (each replication is a
population of its own, paired customer by customer across designs), and, with two or more
replications, also across them (Student's t on the replications' own differences).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from reports.metrics import Outcomes
from reports.paired import Difference, across_replications, as_dict, mean_difference, phrase, ratio_difference
from reports.stats import Z95, two_proportions, wilson


@dataclass(frozen=True)
class DesignResult:
    """One design's runs (one per replication, in seed order)."""

    name: str
    description: str
    metrics: Sequence[dict[str, Any]]
    outcomes: Sequence[Outcomes]


def compare(designs: Sequence[DesignResult]) -> dict[str, Any]:
    """The comparison of ``designs``, the first being the baseline."""
    base = designs[0]
    journeys = list(base.metrics[0]["journeys"])
    headlines = [headline(d) for d in designs]
    differences = [_against(base, d, journeys) for d in designs[1:]]
    return {
        "baseline": base.name,
        "designs": headlines,
        "differences": differences,
        "best_per_message": _best_per_message(headlines),
        "reading": _reading(headlines, differences),
        "runs": [{"name": d.name, "metrics": d.metrics[0]} for d in designs],  # the first seed's
    }


def headline(design: DesignResult) -> dict[str, Any]:
    """A design's figures, summed over its replications."""
    runs = design.metrics
    customers = sum(m["customers"] for m in runs)
    messages: Counter[str] = Counter()
    opt_outs: Counter[str] = Counter()
    suppressed: Counter[str] = Counter()
    for m in runs:
        messages.update(m["messages"]["by_channel"])
        opt_outs.update(m["opt_outs"]["by_channel"])
        suppressed.update(m["suppressed"]["by_rule"])
    total_messages = sum(messages.values())
    journeys = {jid: _journey(runs, jid) for jid in runs[0]["journeys"]}
    revenue = sum(j["revenue"] for j in journeys.values())
    incremental = [j["incremental_conversions"] for j in journeys.values()]
    has_holdout = all(value is not None for value in incremental)
    conversions = sum(j["treated"]["conversions"] for j in journeys.values())
    weekly = [m["pressure"] for m in runs if "pressure" in m]
    opted = _joined(list(design.outcomes)).opt_outs
    half = Z95 * float(opted.std(ddof=1)) / len(opted) ** 0.5 if len(opted) > 1 else 0.0
    mean_opted = float(opted.mean()) if len(opted) else 0.0
    return {
        "name": design.name,
        "description": design.description,
        "customers": customers,
        "replications": len(runs),
        "journeys": journeys,
        "revenue": revenue,
        "revenue_per_message": revenue / total_messages if total_messages else None,
        "messages": total_messages,
        "messages_per_customer": total_messages / customers,
        "messages_per_customer_by_channel": {c: n / customers for c, n in sorted(messages.items())},
        "opt_outs": sum(opt_outs.values()),
        "opt_outs_per_1000_customers": 1000 * sum(opt_outs.values()) / customers,
        "opt_outs_per_1000_ci95": (1000 * (mean_opted - half), 1000 * mean_opted, 1000 * (mean_opted + half)),
        "opt_outs_by_channel": dict(sorted(opt_outs.items())),
        "suppressed_by_rule": dict(sorted(suppressed.items())),
        "pressure_mean": float(np.mean([w["mean"] for w in weekly])) if weekly else None,
        "pressure_p95": float(np.mean([w["p95"] for w in weekly])) if weekly else None,
        "conversions_per_1000_messages": _per_1000(
            sum(incremental) if has_holdout else conversions, total_messages
        ),
        "per_message_basis": _per_message_basis(journeys, has_holdout),
    }


def _journey(runs: Sequence[dict[str, Any]], jid: str) -> dict[str, Any]:
    keys = ("entrants", "entrants_complete", "conversions", "conversions_complete", "revenue")
    groups = {
        group: {key: sum(m["journeys"][jid][group][key] for m in runs) for key in keys}
        for group in ("treated", "holdout")
    }
    t, h = groups["treated"], groups["holdout"]
    stats = two_proportions(t["conversions_complete"], t["entrants_complete"],
                            h["conversions_complete"], h["entrants_complete"])
    t["rate"], h["rate"] = stats["rate_treated"], stats["rate_holdout"]
    for group in (t, h):  # (low, rate, high), for the figures' interval bars
        n, k = group["entrants_complete"], group["conversions_complete"]
        low, high = wilson(k, n) if n else (None, None)
        group["rate_ci95"] = (low, k / n if n else None, high)
    lift = stats["lift"]
    return {
        "entrants": t["entrants"] + h["entrants"],
        "treated": t,
        "holdout": h,
        "lift": {k: stats[k] for k in ("lift", "lift_ci95_low", "lift_ci95_high")},
        "incremental_conversions": None if lift is None else lift * t["entrants_complete"],
        "revenue": t["revenue"] + h["revenue"],
    }


def _against(base: DesignResult, other: DesignResult, journeys: list[str]) -> dict[str, Any]:
    pairs = list(zip(base.outcomes, other.outcomes, strict=True))
    a, b = _joined([p[0] for p in pairs]), _joined([p[1] for p in pairs])
    everyone = {jid for jid in journeys if not (a.entered[jid].any() and b.entered[jid].any())}
    rates = {jid: _rate_difference(a, b, jid, jid in everyone) for jid in journeys}
    result: dict[str, Any] = {
        "design": other.name,
        "against": base.name,
        "conversion_rate_points": {jid: as_dict(d) for jid, d in rates.items()},
        "conversion_basis": {
            jid: "all entrants, treated and held out (a design treats no one)" if jid in everyone
            else "treated entrants" for jid in journeys
        },
        "revenue_per_customer": as_dict(mean_difference(a.revenue, b.revenue)),
        "messages_per_customer": as_dict(mean_difference(a.messages, b.messages)),
        "opt_outs_per_1000_customers": as_dict(mean_difference(a.opt_outs, b.opt_outs, 1000)),
    }
    if len(pairs) > 1:  # the same differences, replication by replication
        result["across_replications"] = {
            "conversion_rate_points": {
                jid: across_replications([
                    d for x, y in pairs if (d := _rate_difference(x, y, jid, jid in everyone)) is not None
                ])
                for jid in journeys
            },
            "opt_outs_per_1000_customers": across_replications(
                [mean_difference(x.opt_outs, y.opt_outs, 1000) for x, y in pairs]
            ),
        }
    result["sentences"] = _sentences(other.name, rates, result)
    return result


def _rate_difference(a: Outcomes, b: Outcomes, jid: str, everyone: bool) -> Difference | None:
    """The paired difference of a journey's conversion rate, in points: on treated entrants, or
    on every entrant, treated or held out, when a design treats no one (``holdout = 1``: the
    difference is then what launching the other design changes for all who enter)."""
    if everyone:
        return ratio_difference(a.converted_all[jid], a.entered_all[jid], b.converted_all[jid],
                                b.entered_all[jid], 100)
    return ratio_difference(a.converted[jid], a.entered[jid], b.converted[jid], b.entered[jid], 100)


def _sentences(name: str, rates: dict[str, Difference | None], result: dict[str, Any]) -> list[str]:
    """``email_first converts 1.2 points more [+0.4, +2.0] and has 0.30 more opt-outs per 1,000
    customers [+0.10, +0.50]``, and the same for messages and revenue; every number with its
    unit, and ``about the same (...)`` when the interval includes zero."""
    opt_outs = phrase(_difference(result["opt_outs_per_1000_customers"]),
                      "{n} {word} opt-outs per 1,000 customers", "more", "fewer", 2,
                      same="about as many opt-outs per 1,000 customers")
    out = []
    for jid, rate in rates.items():
        if rate is not None:
            where = "" if len(rates) == 1 else f" in {jid}"
            if result["conversion_basis"][jid] != "treated entrants":
                where += " (counting every entrant, treated or held out)"
            converts = phrase(rate, "{n} points {word}", "more", "less", unit="points")
            out.append(f"{name} converts{where} {converts} and has {opt_outs}")
    messages = phrase(_difference(result["messages_per_customer"]), "{n} {word} messages per customer",
                      "more", "fewer", 2, same="about as many messages per customer")
    out.append(f"{name} sends {messages}")
    revenue = phrase(_difference(result["revenue_per_customer"]), "{n} {word} per customer", "more",
                     "less", 2, same="about the same per customer")
    out.append(f"{name} earns {revenue}")
    return out


def _difference(d: dict[str, float] | None) -> Difference:
    assert d is not None  # (means always have one)
    return Difference(**{k: v for k, v in d.items() if k != "width"})


def _best_per_message(headlines: list[dict[str, Any]]) -> dict[str, Any] | None:
    ranked = [h for h in headlines if h["conversions_per_1000_messages"] is not None]
    if not ranked:
        return None
    best = max(ranked, key=lambda h: h["conversions_per_1000_messages"])
    shown = f"{best['conversions_per_1000_messages']:.1f}"  # (as the reading and the table print it)
    return {
        "design": best["name"],
        "tied_with": [h["name"] for h in ranked
                      if h is not best and f"{h['conversions_per_1000_messages']:.1f}" == shown],
        "conversions_per_1000_messages": best["conversions_per_1000_messages"],
        "basis": best["per_message_basis"],
        "opt_outs_per_1000_customers": best["opt_outs_per_1000_customers"],
        "messages_per_customer": best["messages_per_customer"],
    }


def _reading(headlines: list[dict[str, Any]], differences: list[dict[str, Any]]) -> list[str]:
    """The compare in a few plain sentences."""
    lines = []
    best = _best_per_message(headlines)
    if best is not None:
        lines.append(_best_sentence(best, headlines))
        lines.extend(_holdout_too_small(headlines))
    if differences:
        lines.append(f"Each design against the baseline, {differences[0]['against']}, on the same "
                     f"customers (95% intervals in brackets; revenue in the scenario's currency units):")
    for difference in differences:
        lines.extend(s + "." for s in difference["sentences"])
    return lines


def _best_sentence(best: dict[str, Any], headlines: list[dict[str, Any]]) -> str:
    """``Most ... per message sent: no_sms, 10.9 per 1,000 messages, ...``, naming every design
    that ties with it to the precision shown."""
    lead = f"Most {best['basis']} per message sent: "
    per_message = f"{best['conversions_per_1000_messages']:.1f} per 1,000 messages"
    if not best["tied_with"]:
        return (f"{lead}{best['design']}, {per_message}, at a cost of "
                f"{best['opt_outs_per_1000_customers']:.2f} opt-outs per 1,000 customers and "
                f"{best['messages_per_customer']:.2f} messages per customer.")
    tied = [h for h in headlines if h["name"] in (best["design"], *best["tied_with"])]
    names = ", ".join(h["name"] for h in tied[:-1]) + f" and {tied[-1]['name']}"
    costs = "; ".join(f"{h['name']}: {h['opt_outs_per_1000_customers']:.2f} opt-outs per 1,000 "
                      f"customers, {h['messages_per_customer']:.2f} messages per customer" for h in tied)
    return f"{lead}{names} tie at {per_message} ({costs})."


def _holdout_too_small(headlines: list[dict[str, Any]]) -> list[str]:
    """A warning, per journey, when every design's lift interval is wider than the spread of the
    designs' lifts: the per-message figures rest on those lifts, so they cannot rank the designs."""
    lines = []
    journeys = list(headlines[0]["journeys"])
    for jid in journeys:
        lifts = [h["journeys"][jid]["lift"] for h in headlines]
        if len(lifts) < 2 or any(lift["lift"] is None for lift in lifts):
            continue
        widths = [100 * (lift["lift_ci95_high"] - lift["lift_ci95_low"]) for lift in lifts]
        spread = 100 * (max(lift["lift"] for lift in lifts) - min(lift["lift"] for lift in lifts))
        if min(widths) <= spread:
            continue
        wide = (f"{min(widths):.1f}" if f"{min(widths):.1f}" == f"{max(widths):.1f}"
                else f"{min(widths):.1f} to {max(widths):.1f}")
        where = "" if len(journeys) == 1 else f" in {jid}"
        lines.append(f"That ranking rests on each design's lift over the holdout{where}, whose 95% "
                     f"intervals are {wide} points wide while the designs' lifts differ by at most "
                     f"{spread:.1f} points: at this size it cannot tell the designs apart; judge them "
                     f"by the paired differences below.")
    return lines


def _joined(outcomes: list[Outcomes]) -> Outcomes:
    """Several replications' customers as one population (paired customer by customer)."""
    if len(outcomes) == 1:
        return outcomes[0]
    first = outcomes[0]
    return Outcomes(
        messages=np.concatenate([o.messages for o in outcomes]),
        revenue=np.concatenate([o.revenue for o in outcomes]),
        opt_outs=np.concatenate([o.opt_outs for o in outcomes]),
        entered={j: np.concatenate([o.entered[j] for o in outcomes]) for j in first.entered},
        converted={j: np.concatenate([o.converted[j] for o in outcomes]) for j in first.converted},
        entered_all={j: np.concatenate([o.entered_all[j] for o in outcomes]) for j in first.entered},
        converted_all={j: np.concatenate([o.converted_all[j] for o in outcomes]) for j in first.entered},
    )


def _per_message_basis(journeys: dict[str, Any], has_holdout: bool) -> str:
    if has_holdout:
        return "incremental conversions (over the holdout)"
    if all(j["treated"]["entrants"] == 0 for j in journeys.values()):
        return "none: the design treats no one (everyone is held out)"
    return "conversions (no holdout)"


def _per_1000(count: float, messages: int) -> float | None:
    return 1000 * count / messages if messages else None
