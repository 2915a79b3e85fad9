"""A compare's and a sweep's figures, drawn from metrics.json alone (see ``reports.figures``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import PercentFormatter, StrMethodFormatter

from reports.compare_figures import HOLDOUT, design_colour, over_time_figures
from reports.figure_facts import Figures, sends_by, step_label
from reports.figures import HIGH, WIDE, error_bars, legend_outside, png


def compare_figures(result: dict[str, Any]) -> Figures:
    """A compare's figures: each design's conversion and opt-outs with interval bars, the paired
    differences beside the independent-populations intervals, the funnels side by side (sent at
    each send step, and converted after each step), and those over time and under pressure that
    the data supports (``reports.compare_figures``)."""
    figures = {"designs.png": _designs(result["designs"])}
    if result["differences"]:
        figures["differences.png"] = _differences(result["differences"])
    for jid in result["designs"][0]["journeys"]:
        figures[f"funnel_{jid}.png"] = _funnels(jid, result["runs"])
    return figures | over_time_figures(result)


def sweep_figures(result: dict[str, Any]) -> Figures:
    """A sweep's frontier: the outcome against messages per customer and against opt-outs, with
    the Pareto-optimal points marked."""
    return {"frontier.png": _frontier(result)}



# -- a compare -----------------------------------------------------------------------------------


def _designs(designs: Sequence[dict[str, Any]]) -> bytes:
    names = [d["name"] for d in designs]
    jid = next(iter(designs[0]["journeys"]))
    fig, (left, right) = plt.subplots(1, 2, figsize=(WIDE * 1.3, HIGH + 0.4))
    x = np.arange(len(names))
    rates = [d["journeys"][jid]["treated"] for d in designs]
    _by_design(left, [100 * (r["rate"] or 0) for r in rates], error_bars(r["rate_ci95"] for r in rates),
               "o", "treated, own 95% interval")
    holdout = designs[0]["journeys"][jid]["holdout"]["rate"]
    if holdout is not None:
        left.axhline(100 * holdout, color=HOLDOUT, linestyle="--", label="holdout")
    left.set_ylim(0, 1.25 * max([100 * (r["rate_ci95"][2] or 0) for r in rates] + [1.0]))
    left.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    left.set_ylabel("conversion rate")
    left.set_title(f"{jid}: conversion by design")
    _by_design(right, [d["opt_outs_per_1000_customers"] for d in designs],
               error_bars([d["opt_outs_per_1000_ci95"] for d in designs], scale=1.0), "s", "own 95% interval")
    right.set_ylim(0, 1.25 * max([d["opt_outs_per_1000_ci95"][2] for d in designs] + [1.0]))
    right.set_ylabel("opt-outs per 1,000 customers")
    right.set_title("Opt-outs by design")
    for ax in (left, right):
        ax.set_xticks(x, names, rotation=20, ha="right")
        ax.legend(fontsize="small", loc="upper right")
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return png(fig)


def _by_design(ax: Any, values: Sequence[float], bars: np.ndarray, marker: str, label: str) -> None:
    """A point and its error bar per design, in the design's colour; the legend's key in grey."""
    for i, value in enumerate(values):
        ax.errorbar(i, value, yerr=bars[:, i:i + 1], fmt=marker, capsize=5, color=design_colour(i))
    ax.errorbar([np.nan], [np.nan], yerr=[[1.0], [1.0]], fmt=marker, capsize=5, color="#777777", label=label)


def _differences(differences: Sequence[dict[str, Any]]) -> bytes:
    """Each design minus the baseline, paired and as if independent, one panel per measure."""
    first = differences[0]
    journeys = list(first["conversion_rate_points"])
    panels: list[tuple[str, str, str | None]] = [  # (label, key, journey)
        (f"conversion in {j}, points" if len(journeys) > 1 else "conversion rate, points",
         "conversion_rate_points", j) for j in journeys
    ]
    panels += [("messages per customer", "messages_per_customer", None),
               ("opt-outs per 1,000 customers", "opt_outs_per_1000_customers", None)]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels) + 1.6, 0.6 * len(differences) + 1.8),
                             sharey=True, squeeze=False)
    y = np.arange(len(differences))
    wrap = "\n" if any(len(label) > 28 for label, _, _ in panels) else " "  # (long labels would run together)
    for ax, (label, key, journey) in zip(axes[0], panels, strict=True):
        for offset, (kind, colour, width_key) in enumerate(
            (("paired (same customers)", "#1f77b4", "width"),
             ("if independent populations", "#aaaaaa", "width_independent"))
        ):
            for i, diff in enumerate(differences):
                d = diff[key] if journey is None else diff[key][journey]
                if d is not None:
                    ax.errorbar(d["difference"], i + (offset - 0.5) * 0.3, xerr=d[width_key] / 2, fmt="o",
                                capsize=4, color=colour, label=kind if i == 0 else None)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_xlabel(f"difference in{wrap}{label}")
        ax.grid(alpha=0.3, axis="x")
    axes[0, 0].set_yticks(y, [d["design"] for d in differences])
    axes[0, 0].set_ylim(len(differences) - 0.5, -0.5)  # (the table's order, top down)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, frameon=False,
               title="95% interval of the difference")
    fig.suptitle(f"Each design minus the baseline ({first['against']}), 95% intervals")
    fig.tight_layout()
    return png(fig)


def _funnels(jid: str, runs: Sequence[dict[str, Any]]) -> bytes:
    """Sent at each step, and converted after each step, design by design (a row per step)."""
    rows = {run["name"]: {r["step"]: r for r in run["metrics"]["journeys"][jid]["funnel"]} for run in runs}
    steps = list(dict.fromkeys(step for by_step in rows.values() for step in by_step))
    base = rows[runs[0]["name"]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(WIDE * 1.35, max(3.2, 0.75 * len(steps) + 1.4)),
                                      sharey=True)
    height = 0.84 / len(runs)
    for ax, key in ((left, "sent"), (right, "converted_after")):
        for i, run in enumerate(runs):
            by_step = rows[run["name"]]
            y = np.arange(len(steps)) + (i - (len(runs) - 1) / 2) * height
            ax.barh(y, [by_step.get(s, {}).get(key, 0) for s in steps], height, label=run["name"],
                    color=design_colour(i))
            if key != "sent":
                continue
            for yi, s in zip(y, steps, strict=True):  # (name a channel the baseline does not use)
                if s in by_step and s in base and sends_by(by_step[s]) != sends_by(base[s]):
                    longest = max(r[s]["sent"] for r in rows.values() if s in r)  # (clear of every bar)
                    ax.annotate(f" {run['name']}: by {sends_by(by_step[s]) or 'nothing'}", (longest, yi),
                                va="center", fontsize="x-small")
        most = max([r.get(key, 0) for by_step in rows.values() for r in by_step.values()] + [1])
        ax.set_xlim(0, (1.6 if key == "sent" else 1.15) * most)  # (room for the channel labels)
        ax.xaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
        ax.grid(alpha=0.3, axis="x")
    left.set_yticks(np.arange(len(steps)), [step_label(base.get(s, {"step": s})) for s in steps])
    left.invert_yaxis()
    left.set_xlabel("messages sent at the step")
    left.set_title("Sent at each step")
    right.set_xlabel("treated journey entries converting after the step")
    right.set_title("Converted after each step")
    legend_outside(right, title="design")
    fig.suptitle(f"{jid}: funnel by design (step channels as in {runs[0]['name']})")
    fig.tight_layout()
    return png(fig)


# -- a sweep -------------------------------------------------------------------------------------


def _frontier(result: dict[str, Any]) -> bytes:
    points = result["points"]
    outcome, label = result["outcome"], result["outcome_label"]
    fig, axes = plt.subplots(1, 2, figsize=(WIDE * 1.3, HIGH + 0.6))
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
    return png(fig)
