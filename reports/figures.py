"""The report's figures, drawn from a bundle's ``metrics.json`` alone (matplotlib, Agg backend).

Each function takes the plain data of a run, compare or sweep and returns ``{file name: PNG
bytes}``: nothing but metrics.json is needed, so ``touchpoint report DIR`` can draw them again.
Every figure has a title, axes with units and, where it shows more than one series, a legend
outside the data; every axis that counts starts at zero. Figures are drawn at ``DPI`` dots per
inch and shown at ``SHOWN_DPI`` CSS pixels per inch, so they stay sharp on dense screens.
``captions`` says, for each figure, what it shows and how to read it.
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
from matplotlib.ticker import MaxNLocator, PercentFormatter, StrMethodFormatter  # noqa: E402

Figures = dict[str, bytes]
DPI, SHOWN_DPI = 200, 100
_WIDE, _HIGH = 8.0, 4.2
_COLOURS = {"treated": "#1f77b4", "holdout": "#ff7f0e"}
_FUNNEL = (("reached", "reached"), ("sent", "sent"), ("skipped", "skipped"), ("deferred", "deferred"),
           ("converted_after", "converted after it"))  # (the funnel table's words)


def run_figures(metrics: dict[str, Any]) -> Figures:
    """A run's figures: funnel per journey, conversions over time, messages by channel per day,
    contact pressure and the fatigue curve, sends blocked by rule, agent queues."""
    figures: Figures = {}
    for jid, journey in metrics["journeys"].items():
        figures[f"funnel_{jid}.png"] = _funnel(jid, journey)
    series = metrics.get("series")
    if series:
        figures["conversions_over_time.png"] = (
            _conversions_by_entry_day(series["journeys"]) if "journeys" in series
            else _conversions_over_time(series)
        )
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
    differences beside the independent-populations intervals, and the funnels side by side (sent
    at each send step, and converted after each step)."""
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


def sends_by(row: dict[str, Any]) -> str:
    """What a funnel step sends by (``email``, ``best of push/email``), or "" when it sends nothing
    (or metrics.json is older than the channels in its funnel)."""
    channels = row.get("channels") or []
    if row.get("best") and len(channels) > 1:
        return "best of " + "/".join(channels)
    return "/".join(channels)


def step_label(row: dict[str, Any]) -> str:
    """A funnel step's name, with its channel when it sends: ``push (sends email)``."""
    channel = sends_by(row)
    return f"{row['step']} (sends {channel})" if channel else str(row["step"])


# -- a run ---------------------------------------------------------------------------------------


def _funnel(jid: str, journey: dict[str, Any]) -> bytes:
    rows = journey["funnel"]
    kinds = [(key, label) for key, label in _FUNNEL if key != "deferred" or any(r["deferred"] for r in rows)]
    fig, ax = _figure(height=max(3.0, 0.7 * len(rows) + 1.2))
    y = np.arange(len(rows))
    height = 0.84 / len(kinds)
    for i, (key, label) in enumerate(kinds):
        ax.barh(y + (i - (len(kinds) - 1) / 2) * height, [row[key] for row in rows], height, label=label)
    ax.set_yticks(y, [step_label(row) for row in rows])
    ax.invert_yaxis()
    ax.xaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    ax.set_xlabel("treated journey entries")
    ax.set_title(f"{jid}: funnel by step")
    _legend_outside(ax)
    return _png(fig)


def _conversions_by_entry_day(journeys: dict[str, Any]) -> bytes:
    """Per journey, the conversion rate of the entrants of the first ``k`` days (``k`` growing),
    counting only days whose entrants' goal window had closed when the run ended."""
    fig, axes = plt.subplots(len(journeys), 1, figsize=(_WIDE, _HIGH * len(journeys)), squeeze=False)
    for ax, (jid, j) in zip(axes[:, 0], journeys.items(), strict=True):
        days, complete = len(j["entrants"]["treated"]), j["complete_days"]
        top = 0.0
        for group in ("treated", "holdout"):
            entrants = np.cumsum(j["entrants"][group][:complete])
            conversions = np.cumsum(j["conversions_by_entry_day"][group][:complete])
            rate = np.divide(100.0 * conversions, entrants, out=np.full(complete, np.nan), where=entrants > 0)
            ax.plot(np.arange(1, complete + 1), rate, marker=".", label=group, color=_COLOURS[group])
            top = max(top, float(np.nanmax(rate, initial=0.0)))
        if complete < days:
            ax.axvspan(complete + 0.5, days + 0.5, color="#999999", alpha=0.15, lw=0)
            ax.text(complete + 1, 0.06 * max(top, 1.0), "goal window still open\nwhen the run ended",
                    fontsize="small", color="#555555")
        ax.set_xlim(0.5, days + 0.5)
        ax.set_ylim(0, min(100.0, 1.2 * top) or 1.0)
        ax.yaxis.set_major_formatter(PercentFormatter(decimals=0))
        ax.set_xlabel("day of entry")
        ax.set_ylabel(f"converted within {j['goal_window_days']:g} days")
        ax.set_title(f"{jid}: conversion rate of the entries so far, by day of entry")
        ax.grid(alpha=0.3)
        _legend_outside(ax)
    fig.tight_layout()
    return _png(fig)


def _conversions_over_time(series: dict[str, Any]) -> bytes:
    """The curve of a metrics.json without per-journey entry days (older bundles): conversions so
    far over entrants so far, open goal windows included."""
    fig, ax = _figure()
    days = np.arange(1, series["days"] + 1)
    top = 1.0
    for group in ("treated", "holdout"):
        entrants = np.cumsum(series["entrants"][group])
        conversions = np.cumsum(series["conversions"][group])
        rate = np.divide(100.0 * conversions, entrants, out=np.full(len(days), np.nan),
                         where=entrants > 0)
        ax.plot(days, rate, marker=".", label=group, color=_COLOURS[group])
        top = max(top, float(np.nanmax(rate, initial=0.0)))
    ax.set_ylim(0, min(100.0, 1.15 * top))
    ax.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    ax.set_xlabel("day of the run")
    ax.set_ylabel("conversions per entrant so far")
    ax.set_title("Conversions over time, treated against holdout")
    ax.grid(alpha=0.3)
    _legend_outside(ax)
    return _png(fig)


def _messages_by_channel(series: dict[str, Any]) -> bytes:
    fig, ax = _figure()
    days = np.arange(1, series["days"] + 1)
    bottom = np.zeros(len(days))
    for channel, counts in series["messages_by_channel"].items():
        ax.bar(days, counts, bottom=bottom, label=channel)
        bottom += np.asarray(counts, dtype=float)
    ax.set_ylim(0, 1.12 * max(float(bottom.max()), 1.0))  # (headroom over the busiest day)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    ax.set_xlabel("day of the run")
    ax.set_ylabel("messages sent per day")
    ax.set_title("Messages by channel per day")
    _legend_outside(ax, title="channel")
    return _png(fig)


def _pressure(pressure: dict[str, Any], fatigue: list[dict[str, Any]]) -> bytes:
    fig, (left, right) = plt.subplots(1, 2, figsize=(_WIDE * 1.3, _HIGH + 0.3))
    weeks = np.asarray(pressure["customer_weeks_by_messages"], dtype=float)
    shares = 100 * weeks / max(weeks.sum(), 1)
    left.bar(np.arange(len(weeks)), shares, color="#4c72b0")
    for x, share in enumerate(shares):
        left.annotate(f"{share:.0f}%" if share >= 1 else f"{share:.1f}%", (x, share), ha="center",
                      xytext=(0, 3), textcoords="offset points", fontsize="small",
                      bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none"})  # (over the p95 line)
    left.set_ylim(0, 118)
    left.axvline(pressure["p95"], color="black", linestyle="--", linewidth=1)
    left.annotate(f" 95th percentile: {pressure['p95']:g}", (pressure["p95"], 108), fontsize="small",
                  va="center", ha="left")
    left.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    left.set_xlabel("messages to one customer in one week")
    left.set_ylabel("share of customer-weeks")
    left.set_title(f"Contact pressure: every customer, messaged or not\n(mean {pressure['mean']:.2f} a week)",
                   fontsize="medium")
    shown = [row for row in fatigue if row["customers"] >= 20]  # (tiny groups say nothing)
    rates = [100 * row["rate"] for row in shown]
    right.plot([row["messages_in_busiest_week"] for row in shown], rates, marker="o", color="#c44e52")
    for row, rate in zip(shown, rates, strict=True):
        right.annotate(f"n={row['customers']:,}", (row["messages_in_busiest_week"], rate), fontsize="small",
                       xytext=(-5, 5), textcoords="offset points", ha="right")  # (clear of a rising line)
    right.set_ylim(0, 1.25 * max(rates, default=1.0) or 1.0)
    right.set_xlim(-0.9, max((row["messages_in_busiest_week"] for row in fatigue), default=1) + 0.5)
    if len(shown) < len(fatigue):
        right.text(0.02, 0.97, "groups under 20 customers not shown", transform=right.transAxes,
                   fontsize="x-small", va="top", color="#555555")
    for ax in (left, right):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    right.yaxis.set_major_formatter(PercentFormatter(decimals=1))
    right.set_xlabel("messages in the customer's busiest week")
    right.set_ylabel("customers who opted out")
    right.set_title("Fatigue: opt-outs against weekly pressure\n(n: customers in the group)",
                    fontsize="medium")
    right.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def _suppressions(suppressed: dict[str, Any]) -> bytes:
    rules = sorted(suppressed["by_rule"], key=suppressed["by_rule"].get)
    fig, ax = _figure(height=max(2.5, 0.55 * len(rules) + 1.3))
    deferred = [suppressed["deferred_by_rule"].get(r, 0) for r in rules]
    skipped = [suppressed["by_rule"][r] - d for r, d in zip(rules, deferred, strict=True)]
    ax.barh(rules, skipped, label="skipped (dropped)")
    ax.barh(rules, deferred, left=skipped, label="deferred (tried again later)")
    for rule, s, d in zip(rules, skipped, deferred, strict=True):
        words = " + ".join(f"{n:,} {kind}" for n, kind in ((s, "skipped"), (d, "deferred")) if n)
        ax.annotate(f" {words}", (s + d, rule), va="center", fontsize="small")
    ax.set_xlim(0, 1.3 * max(max(suppressed["by_rule"].values()), 1))  # (room for the labels)
    ax.xaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    ax.set_xlabel("sends blocked (skipped or deferred)")
    ax.set_title("Sends blocked by each rule")
    _legend_outside(ax)
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
                  fmt="o", capsize=5, label="treated, own 95% interval")
    holdout = designs[0]["journeys"][jid]["holdout"]["rate"]
    if holdout is not None:
        left.axhline(100 * holdout, color=_COLOURS["holdout"], linestyle="--", label="holdout")
    left.set_ylim(0, 1.25 * max([100 * (r["rate_ci95"][2] or 0) for r in rates] + [1.0]))
    left.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    left.set_ylabel("conversion rate")
    left.set_title(f"{jid}: conversion by design")
    right.errorbar(x, [d["opt_outs_per_1000_customers"] for d in designs],
                   yerr=_yerr([d["opt_outs_per_1000_ci95"] for d in designs], scale=1.0),
                   fmt="s", capsize=5, color="#c44e52", label="own 95% interval")
    right.set_ylim(0, 1.25 * max([d["opt_outs_per_1000_ci95"][2] for d in designs] + [1.0]))
    right.set_ylabel("opt-outs per 1,000 customers")
    right.set_title("Opt-outs by design")
    for ax in (left, right):
        ax.set_xticks(x, names, rotation=20, ha="right")
        ax.legend(fontsize="small", loc="upper right")
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return _png(fig)


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
        ax.set_xlabel(f"difference in {label}")
        ax.grid(alpha=0.3, axis="x")
    axes[0, 0].set_yticks(y, [d["design"] for d in differences])
    axes[0, 0].set_ylim(len(differences) - 0.5, -0.5)  # (the table's order, top down)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, frameon=False,
               title="95% interval of the difference")
    fig.suptitle(f"Each design minus the baseline ({first['against']}), 95% intervals")
    fig.tight_layout()
    return _png(fig)


def _funnels(jid: str, runs: Sequence[dict[str, Any]]) -> bytes:
    """Sent at each step, and converted after each step, design by design (a row per step)."""
    rows = {run["name"]: {r["step"]: r for r in run["metrics"]["journeys"][jid]["funnel"]} for run in runs}
    steps = list(dict.fromkeys(step for by_step in rows.values() for step in by_step))
    base = rows[runs[0]["name"]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(_WIDE * 1.35, max(3.2, 0.75 * len(steps) + 1.4)),
                                      sharey=True)
    height = 0.84 / len(runs)
    for ax, key in ((left, "sent"), (right, "converted_after")):
        for i, run in enumerate(runs):
            by_step = rows[run["name"]]
            y = np.arange(len(steps)) + (i - (len(runs) - 1) / 2) * height
            ax.barh(y, [by_step.get(s, {}).get(key, 0) for s in steps], height, label=run["name"],
                    color=f"C{i}")
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
    _legend_outside(right, title="design")
    fig.suptitle(f"{jid}: funnel by design (step channels as in {runs[0]['name']})")
    fig.tight_layout()
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


def _legend_outside(ax: Any, title: str | None = None) -> None:
    """The legend right of the axes, clear of the data (the saved figure grows to hold it)."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False, title=title,
              title_fontsize="small", alignment="left")


def _yerr(intervals: Any, scale: float = 100.0) -> np.ndarray:
    """Error bar lengths below and above each point from ``(low, centre, high)`` triples."""
    rows = [(scale * (c - lo), scale * (hi - c)) if c is not None else (0.0, 0.0)
            for lo, c, hi in intervals]
    return np.asarray(rows, dtype=float).T


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()
