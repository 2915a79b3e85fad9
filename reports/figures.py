"""The report's figures, drawn from a bundle's ``metrics.json`` alone (matplotlib, Agg backend).

Each function takes the plain data of a run, compare or sweep and returns ``{file name: PNG
bytes}``: nothing but metrics.json is needed, so ``touchpoint report DIR`` can draw them again.
Every figure has a title, axes with units and, where it shows more than one series, a legend.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no screen: files only

import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

Figures = dict[str, bytes]
_WIDE, _HIGH = 8.0, 4.2
_COLOURS = {"treated": "#1f77b4", "holdout": "#ff7f0e"}


def run_figures(metrics: dict[str, Any]) -> Figures:
    """A run's figures: funnel per journey, conversions over time, messages by channel per day,
    contact pressure and the fatigue curve, suppressions by rule, agent queues."""
    figures: Figures = {}
    for jid, journey in metrics["journeys"].items():
        figures[f"funnel_{jid}.png"] = _funnel(jid, journey)
    series = metrics.get("series")
    if series:
        figures["conversions_over_time.png"] = _conversions_over_time(series)
        if series["messages_by_channel"]:
            figures["messages_by_channel.png"] = _messages_by_channel(series)
    if "pressure" in metrics:
        figures["pressure.png"] = _pressure(metrics["pressure"], metrics["fatigue"])
    if metrics["suppressed"]["by_rule"]:
        figures["suppressions.png"] = _suppressions(metrics["suppressed"])
    if metrics.get("agents"):
        figures["agents.png"] = _agents(metrics["agents"])
    return figures


def compare_figures(result: dict[str, Any]) -> Figures:
    """A compare's figures: each design's conversion and opt-outs with interval bars, the paired
    differences beside the independent-populations intervals, and the funnels side by side."""
    figures = {"designs.png": _designs(result["designs"])}
    if result["differences"]:
        figures["differences.png"] = _differences(result["differences"])
    for jid in result["designs"][0]["journeys"]:
        figures[f"funnel_{jid}.png"] = _funnels(jid, result["runs"])
    return figures


def sweep_figures(result: dict[str, Any]) -> Figures:
    """A sweep's frontier: the outcome against messages per customer and against opt-outs, with
    the Pareto-optimal points marked."""
    return {"frontier.png": _frontier(result)}


# -- a run ---------------------------------------------------------------------------------------


def _funnel(jid: str, journey: dict[str, Any]) -> bytes:
    rows = journey["funnel"]
    steps = [row["step"] for row in rows]
    kinds = (("reached", "reached the step"), ("sent", "sent"), ("skipped", "suppressed (skipped)"),
             ("converted_after", "converted after it"))
    fig, ax = _figure(height=max(3.0, 0.55 * len(steps) + 1.5))
    y = np.arange(len(steps))
    height = 0.8 / len(kinds)
    for i, (key, label) in enumerate(kinds):
        ax.barh(y + (i - 1.5) * height, [row[key] for row in rows], height, label=label)
    ax.set_yticks(y, steps)
    ax.invert_yaxis()
    ax.set_xlabel("customers (treated entrants)")
    ax.set_title(f"{jid}: funnel by step")
    ax.legend(loc="lower right", fontsize="small")
    return _png(fig)


def _conversions_over_time(series: dict[str, Any]) -> bytes:
    fig, ax = _figure()
    days = np.arange(1, series["days"] + 1)
    for group in ("treated", "holdout"):
        entrants = np.cumsum(series["entrants"][group])
        conversions = np.cumsum(series["conversions"][group])
        rate = np.divide(100.0 * conversions, entrants, out=np.full(len(days), np.nan),
                         where=entrants > 0)
        ax.plot(days, rate, marker=".", label=group, color=_COLOURS[group])
    ax.set_xlabel("day of the run")
    ax.set_ylabel("conversions per entrant so far (%)")
    ax.set_title("Conversions over time, treated against holdout")
    ax.legend()
    ax.grid(alpha=0.3)
    return _png(fig)


def _messages_by_channel(series: dict[str, Any]) -> bytes:
    fig, ax = _figure()
    days = np.arange(1, series["days"] + 1)
    bottom = np.zeros(len(days))
    for channel, counts in series["messages_by_channel"].items():
        ax.bar(days, counts, bottom=bottom, label=channel)
        bottom += np.asarray(counts, dtype=float)
    ax.set_xlabel("day of the run")
    ax.set_ylabel("messages sent per day")
    ax.set_title("Messages by channel per day")
    ax.legend()
    return _png(fig)


def _pressure(pressure: dict[str, Any], fatigue: list[dict[str, Any]]) -> bytes:
    fig, (left, right) = plt.subplots(1, 2, figsize=(_WIDE * 1.2, _HIGH))
    weeks = np.asarray(pressure["customer_weeks_by_messages"], dtype=float)
    left.bar(np.arange(len(weeks)), 100 * weeks / max(weeks.sum(), 1), color="#4c72b0",
             label="customer-weeks")
    left.axvline(pressure["p95"], color="black", linestyle="--",
                 label=f"95th percentile ({pressure['p95']:g})")
    left.xaxis.set_major_locator(MaxNLocator(integer=True))
    right.xaxis.set_major_locator(MaxNLocator(integer=True))
    left.set_xlabel("messages to one customer in one week")
    left.set_ylabel("share of customer-weeks (%)")
    left.set_title(f"Contact pressure (mean {pressure['mean']:.2f} a week)")
    left.legend(fontsize="small")
    shown = [row for row in fatigue if row["customers"] >= 20]  # (tiny groups say nothing)
    right.plot([row["messages_in_busiest_week"] for row in shown],
               [100 * row["rate"] for row in shown], marker="o", color="#c44e52", label="opt-out rate")
    right.set_xlabel("messages in the customer's busiest week")
    right.set_ylabel("customers who opted out (%)")
    right.set_title("Fatigue: opt-outs against weekly pressure")
    right.legend(fontsize="small")
    right.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def _suppressions(suppressed: dict[str, Any]) -> bytes:
    rules = sorted(suppressed["by_rule"], key=suppressed["by_rule"].get)
    fig, ax = _figure(height=max(2.5, 0.5 * len(rules) + 1.5))
    skipped = [suppressed["by_rule"][r] - suppressed["deferred_by_rule"].get(r, 0) for r in rules]
    deferred = [suppressed["deferred_by_rule"].get(r, 0) for r in rules]
    ax.barh(rules, skipped, label="skipped")
    ax.barh(rules, deferred, left=skipped, label="deferred (tried again later)")
    ax.set_xlabel("sends suppressed")
    ax.set_title("Suppressions by rule")
    ax.legend(fontsize="small")
    return _png(fig)


def _agents(agents: dict[str, Any]) -> bytes:
    queues = list(agents)
    fig, (left, right) = plt.subplots(1, 2, figsize=(_WIDE * 1.2, _HIGH))
    x = np.arange(len(queues))
    times = (("wait_mean_s", "wait"), ("first_response_mean_s", "first response"),
             ("resolution_mean_s", "resolution"))
    for i, (key, label) in enumerate(times):
        left.bar(x + (i - 1) * 0.27, [agents[q][key] / 60 for q in queues], 0.27, label=label)
    left.set_xticks(x, queues)
    left.set_ylabel("mean time (minutes)")
    left.set_title("Agent queues: times")
    left.legend(fontsize="small")
    shares = (("service_level", "service level"), ("occupancy", "occupancy"))
    for i, (key, label) in enumerate(shares):
        right.bar(x + (i - 0.5) * 0.4, [100 * (agents[q][key] or 0) for q in queues], 0.4, label=label)
    right.set_xticks(x, queues)
    right.set_ylabel("percent")
    right.set_ylim(0, 105)
    right.set_title("Agent queues: service level and occupancy")
    right.legend(fontsize="small")
    fig.tight_layout()
    return _png(fig)


# -- a compare -----------------------------------------------------------------------------------


def _designs(designs: Sequence[dict[str, Any]]) -> bytes:
    names = [d["name"] for d in designs]
    jid = next(iter(designs[0]["journeys"]))
    fig, (left, right) = plt.subplots(1, 2, figsize=(_WIDE * 1.3, _HIGH + 0.4))
    x = np.arange(len(names))
    rates = [d["journeys"][jid]["treated"] for d in designs]
    left.errorbar(x, [100 * (r["rate"] or 0) for r in rates], yerr=_yerr(r["rate_ci95"] for r in rates),
                  fmt="o", capsize=5, label="treated (95% CI)")
    holdout = designs[0]["journeys"][jid]["holdout"]["rate"]
    if holdout is not None:
        left.axhline(100 * holdout, color=_COLOURS["holdout"], linestyle="--", label="holdout")
    left.set_xticks(x, names, rotation=20, ha="right")
    left.set_ylabel("conversion rate (%)")
    left.set_title(f"{jid}: conversion by design")
    left.legend(fontsize="small")
    right.errorbar(x, [d["opt_outs_per_1000_customers"] for d in designs],
                   yerr=_yerr([d["opt_outs_per_1000_ci95"] for d in designs], scale=1.0),
                   fmt="s", capsize=5, color="#c44e52", label="opt-outs (95% CI)")
    right.set_xticks(x, names, rotation=20, ha="right")
    right.set_ylabel("opt-outs per 1,000 customers")
    right.set_title("Opt-outs by design")
    right.legend(fontsize="small")
    fig.tight_layout()
    return _png(fig)


def _differences(differences: Sequence[dict[str, Any]]) -> bytes:
    jid = next(iter(differences[0]["conversion_rate_points"]))
    fig, ax = _figure(height=max(3.0, 0.7 * len(differences) + 1.5))
    y = np.arange(len(differences))
    for offset, (label, colour, width_key) in enumerate(
        (("paired (same customers)", "#1f77b4", "width"),
         ("independent populations", "#aaaaaa", "width_independent"))
    ):
        for i, diff in enumerate(differences):
            d = diff["conversion_rate_points"][jid]
            if d is None:
                continue
            half = d[width_key] / 2
            ax.errorbar(d["difference"], i + (offset - 0.5) * 0.3, xerr=half, fmt="o", capsize=4,
                        color=colour, label=label if i == 0 else None)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(y, [f"{d['design']} - {d['against']}" for d in differences])
    ax.set_xlabel("difference in conversion rate (points), 95% interval")
    ax.set_title(f"{jid}: each design against the baseline")
    ax.legend(fontsize="small")
    return _png(fig)


def _funnels(jid: str, runs: Sequence[dict[str, Any]]) -> bytes:
    steps = [row["step"] for row in runs[0]["metrics"]["journeys"][jid]["funnel"]]
    for run in runs[1:]:
        steps += [row["step"] for row in run["metrics"]["journeys"][jid]["funnel"]
                  if row["step"] not in steps]
    fig, ax = _figure(height=max(3.0, 0.6 * len(steps) + 1.5))
    y = np.arange(len(steps))
    height = 0.8 / len(runs)
    for i, run in enumerate(runs):
        sent = {row["step"]: row["reached"] for row in run["metrics"]["journeys"][jid]["funnel"]}
        ax.barh(y + (i - (len(runs) - 1) / 2) * height, [sent.get(s, 0) for s in steps], height,
                label=run["name"])
    ax.set_yticks(y, steps)
    ax.invert_yaxis()
    ax.set_xlabel("customers reaching the step")
    ax.set_title(f"{jid}: funnel by step, by design")
    ax.legend(fontsize="small")
    return _png(fig)


# -- a sweep -------------------------------------------------------------------------------------


def _frontier(result: dict[str, Any]) -> bytes:
    points = result["points"]
    outcome, label = result["outcome"], result["outcome_label"]
    fig, axes = plt.subplots(1, 2, figsize=(_WIDE * 1.3, _HIGH + 0.6))
    for ax, cost, cost_label, optimal_key in (
        (axes[0], "messages_per_customer", "messages per customer", "pareto_messages"),
        (axes[1], "opt_outs_per_1000_customers", "opt-outs per 1,000 customers", "pareto_opt_outs"),
    ):
        ax.scatter([p[cost] for p in points], [p[outcome] for p in points], color="#999999",
                   label="point of the grid")
        names: dict[tuple[float, float], list[str]] = {}  # (tied points share one label)
        for p in points:
            if p[optimal_key]:
                names.setdefault((p[cost], p[outcome]), []).append(p["name"])
        best = sorted(names)
        ax.plot([x for x, _ in best], [y for _, y in best], "o-", color="#d62728", label="Pareto-optimal")
        for (x, y), tied in names.items():
            ax.annotate(" / ".join(tied), (x, y), fontsize="x-small", xytext=(4, -10),
                        textcoords="offset points")
        ax.set_xlabel(cost_label)
        ax.set_ylabel(label)
        ax.set_title(f"against {cost_label}")
        ax.legend(fontsize="small", loc="best")
        ax.grid(alpha=0.3)
    fig.suptitle(f"Sweep of {result['scenario']}: {label.split(' (')[0]} and its costs "
                 f"({len(points)} points)")
    fig.tight_layout()
    return _png(fig)


# -- drawing -------------------------------------------------------------------------------------


def _figure(height: float = _HIGH) -> tuple[Figure, Any]:
    return plt.subplots(figsize=(_WIDE, height))


def _yerr(intervals: Any, scale: float = 100.0) -> np.ndarray:
    """Error bar lengths below and above each point from ``(low, centre, high)`` triples."""
    rows = [(scale * (c - lo), scale * (hi - c)) if c is not None else (0.0, 0.0)
            for lo, c, hi in intervals]
    return np.asarray(rows, dtype=float).T


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()
