"""A compare's figures over time and under pressure, design against design: conversions by day of
entry beside the holdout, messages per day by channel, contact pressure and the fatigue curve, sends
blocked by rule, and agent queues.

Each is drawn from the full run metrics of each design's first replication
(``result["runs"][i]["metrics"]``), each design in its own colour (``design_colour``, the same in
every compare figure; the holdout, which is no design, in ``HOLDOUT``). A figure is left out when
the bundle lacks its data (a metrics.json older than it) or the data has nothing to show (no agent
queue, nothing blocked in any design), so ``touchpoint report DIR`` redraws any bundle. The other
compare figures are in ``reports.lab_figures``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator, PercentFormatter, StrMethodFormatter

from reports.figure_facts import Figures
from reports.figures import HIGH, WIDE, legend_outside, png, rate_so_far, shade_open_windows

Run = tuple[str, dict[str, Any]]  # (design name, its first replication's run metrics)
HOLDOUT = "#444444"
_FEWEST = 20  # fatigue groups of fewer customers say nothing and are left out


def design_colour(index: int) -> str:
    """The colour of the design at ``index`` in the compare, in every compare figure."""
    return f"C{index}"


def design_line(index: int, designs: int) -> dict[str, Any]:
    """A design's line: its colour, and a width that narrows design by design, so a line drawn
    over an equal one leaves the one below showing at its edges."""
    narrower = (designs - 1 - index) / max(designs - 1, 1)  # (1 for the first design, 0 for the last)
    return {"color": design_colour(index), "linewidth": 1.1 + 1.8 * narrower}


def over_time_figures(result: dict[str, Any]) -> Figures:
    """The compare's figures the bundle's data supports, by file name (see the module's doc)."""
    runs = [(run["name"], run["metrics"]) for run in result.get("runs", [])]
    drawn = {name: draw(runs) for name, draw in _DRAWN.items()} if runs else {}
    return {name: figure for name, figure in drawn.items() if figure is not None}


def holdout_drawn(result: dict[str, Any]) -> str:
    """How conversions_over_time.png draws the holdout: ``"shared"``, once, when in every journey
    that holds entries out each design's holdout is the same entries with the same conversions, day
    by day (as common random numbers make it unless a design changes who enters or who is held
    out); ``"each"``, once per design, when not; ``"none"`` when no journey holds anyone out, or
    the bundle has no days of entry (and so no such figure)."""
    runs = [run["metrics"].get("series", {}).get("journeys", {}) for run in result.get("runs", [])]
    shared = [jid for jid in (runs[0] if runs else {}) if all(jid in by_journey for by_journey in runs)]
    kinds = {_holdout_drawn([by_journey[jid] for by_journey in runs]) for jid in shared} - {"none"}
    return "none" if not kinds else "shared" if kinds == {"shared"} else "each"


def _holdout_drawn(days: Sequence[dict[str, Any]]) -> str:
    """One journey's holdout, from each design's ``series["journeys"][jid]`` (see ``holdout_drawn``)."""
    if not any(any(j["entrants"]["holdout"][:j["complete_days"]]) for j in days):
        return "none"
    first = days[0]["entrants"]["holdout"], days[0]["conversions_by_entry_day"]["holdout"]
    same = all((j["entrants"]["holdout"], j["conversions_by_entry_day"]["holdout"]) == first for j in days)
    return "shared" if same else "each"


# -- conversions ---------------------------------------------------------------------------------


def _conversions(runs: Sequence[Run]) -> bytes | None:
    if not all("journeys" in m.get("series", {}) for _, m in runs):
        return None
    journeys = [jid for jid, j in runs[0][1]["series"]["journeys"].items()
                if j["complete_days"] > 0 and all(jid in m["series"]["journeys"] for _, m in runs)]
    if not journeys:
        return None
    fig, axes = plt.subplots(len(journeys), 1, figsize=(WIDE, 0.9 * HIGH * len(journeys)), squeeze=False)
    for ax, jid in zip(axes[:, 0], journeys, strict=True):
        _journey_over_time(ax, jid, [(name, m["series"]["journeys"][jid]) for name, m in runs])
    legend_outside(axes[0, 0], title="design")
    fig.tight_layout()
    return png(fig)


def _journey_over_time(ax: Any, jid: str, days: Sequence[Run]) -> None:
    """One journey: each design's treated entries, and the holdout once if all share it."""
    first = days[0][1]
    lines = [(name, rate_so_far(j, "treated"), design_line(i, len(days))) for i, (name, j) in enumerate(days)]
    holdout = _holdout_drawn([j for _, j in days])
    if holdout == "shared":
        lines.append(("holdout (the same entries\nin every design)", rate_so_far(first, "holdout"),
                      {"color": HOLDOUT, "linestyle": "--", "linewidth": 1.2}))
    elif holdout == "each":
        lines += [(f"{name}: holdout", rate_so_far(j, "holdout"),
                   {"color": design_colour(i), "linestyle": "--", "linewidth": 1.2})
                  for i, (name, j) in enumerate(days)]
    for label, rate, style in lines:
        ax.plot(np.arange(1, len(rate) + 1), rate, label=label, **style)
    top = max(float(np.nanmax(rate, initial=0.0)) for _, rate, _ in lines)
    shade_open_windows(ax, first["complete_days"], len(first["entrants"]["treated"]))
    ax.set_ylim(0, min(105.0, 1.2 * top) or 1.0)  # (clear of a line at 100%)
    ax.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    ax.set_xlabel("day of entry")
    window = first["goal_window_days"]
    ax.set_ylabel(f"converted within {window:g} day{'' if window == 1 else 's'}")
    ax.set_title(f"{jid}: conversion rate of the entries so far, by day of entry", fontsize="medium")
    ax.grid(alpha=0.3)


# -- messages ------------------------------------------------------------------------------------


def _messages(runs: Sequence[Run]) -> bytes | None:
    """Messages per day, all channels and then each channel, a line per design."""
    if not all("messages_by_channel" in m.get("series", {}) for _, m in runs):
        return None
    by_channel = [m["series"]["messages_by_channel"] for _, m in runs]
    channels = list(dict.fromkeys(c for counts in by_channel for c in counts))
    if not channels:
        return None
    days = np.arange(1, runs[0][1]["series"]["days"] + 1)
    panels = [(c, [np.asarray(counts.get(c, np.zeros(len(days))), dtype=float) for counts in by_channel])
              for c in channels]
    if len(panels) > 1:
        panels.insert(0, ("all channels", list(np.sum([counts for _, counts in panels], axis=0))))
    columns = len(panels) if len(panels) <= 3 else 2
    rows = -(-len(panels) // columns)
    size = (WIDE, HIGH) if columns == 1 else (3.6 * columns + 1.8, 3.0 * rows + 0.6)
    fig, axes = plt.subplots(rows, columns, figsize=size, squeeze=False)
    for ax, (title, counts) in zip(axes.flat, panels, strict=False):
        for i, ((name, _), daily) in enumerate(zip(runs, counts, strict=True)):
            ax.plot(days, daily, label=name, **design_line(i, len(runs)))
        ax.set_ylim(0, 1.1 * max(max(float(d.max()) for d in counts), 1.0))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
        ax.set_title(title, fontsize="medium")
        ax.set_xlabel("day of the run")
        ax.set_ylabel("messages sent per day")
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(panels):]:
        ax.remove()
    legend_outside(axes[0, -1], title="design")
    fig.suptitle("Messages per day, by channel")
    fig.tight_layout()
    return png(fig)


# -- pressure ------------------------------------------------------------------------------------


def _pressure(runs: Sequence[Run]) -> bytes | None:
    """Left: the share of customer-weeks by messages in the week; right: the fatigue curve."""
    if not all("pressure" in m and "fatigue" in m for _, m in runs):
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(WIDE * 1.3, HIGH + 0.3))
    most = max(len(m["pressure"]["customer_weeks_by_messages"]) for _, m in runs)
    width = 0.84 / len(runs)
    for i, (_, m) in enumerate(runs):
        weeks = np.asarray(m["pressure"]["customer_weeks_by_messages"], dtype=float)
        left.bar(np.arange(len(weeks)) + (i - (len(runs) - 1) / 2) * width, 100 * weeks / max(weeks.sum(), 1),
                 width, color=design_colour(i))
    left.set_xticks(np.arange(most))
    left.set_ylim(0, 105)
    left.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    left.set_xlabel("messages to one customer in one week")
    left.set_ylabel("share of customer-weeks")
    left.set_title("Contact pressure: every customer, messaged or not", fontsize="medium")
    left.grid(alpha=0.3, axis="y")
    _fatigue(right, runs)
    legend_outside(right, title="design (messages to a customer\nin a week: mean / 95th percentile)")
    fig.tight_layout()
    return png(fig)


def _fatigue(ax: Any, runs: Sequence[Run]) -> None:
    top, hidden = 0.0, False
    for i, (name, m) in enumerate(runs):
        shown = [row for row in m["fatigue"] if row["customers"] >= _FEWEST]
        hidden = hidden or len(shown) < len(m["fatigue"])
        rates = [100 * row["rate"] for row in shown]
        ax.plot([row["messages_in_busiest_week"] for row in shown], rates, marker="o", markersize=4,
                label=f"{name} ({m['pressure']['mean']:.2f} / {m['pressure']['p95']:g})",
                **design_line(i, len(runs)))
        top = max([top, *rates])
    if hidden:
        ax.text(0.02, 0.97, f"groups under {_FEWEST} customers not shown", transform=ax.transAxes,
                fontsize="x-small", va="top", color="#555555")
    if not any(row["rate"] for _, m in runs for row in m["fatigue"]):
        ax.text(0.5, 0.5, "no opt-outs in any design", transform=ax.transAxes, ha="center", color="#555555")
    ax.set_ylim(0, 1.25 * top or 1.0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_formatter(PercentFormatter(decimals=1))
    ax.set_xlabel("messages in the customer's busiest week")
    ax.set_ylabel("customers who opted out")
    ax.set_title("Fatigue: opt-outs against weekly pressure", fontsize="medium")
    ax.grid(alpha=0.3)


# -- blocked sends -------------------------------------------------------------------------------


def _suppressions(runs: Sequence[Run]) -> bytes | None:
    """A group of bars per rule, a bar per design: skipped solid, deferred hatched after it."""
    if not all("by_rule" in m.get("suppressed", {}) for _, m in runs):
        return None
    blocked = [m["suppressed"]["by_rule"] for _, m in runs]
    deferred = [m["suppressed"].get("deferred_by_rule", {}) for _, m in runs]
    rules = list(dict.fromkeys(rule for b in blocked for rule in b))
    totals = {rule: sum(b.get(rule, 0) for b in blocked) for rule in rules}
    rules = sorted((r for r in rules if totals[r]), key=lambda r: (totals[r], r))  # (most at the top)
    if not rules:
        return None
    height = 0.84 / len(runs)
    fig, ax = plt.subplots(figsize=(WIDE, max(3.0, len(rules) * (0.16 * len(runs) + 0.25) + 1.3)))
    for i, (name, _) in enumerate(runs):
        y = np.arange(len(rules)) - (i - (len(runs) - 1) / 2) * height  # (the legend's order, top down)
        later = np.asarray([deferred[i].get(r, 0) for r in rules], dtype=float)
        dropped = np.asarray([blocked[i].get(r, 0) for r in rules], dtype=float) - later
        ax.barh(y, dropped, height, color=design_colour(i), label=name)
        ax.barh(y, later, height, left=dropped, color=design_colour(i), alpha=0.45, hatch="////", lw=0)
        for yi, n in zip(y, dropped + later, strict=True):
            ax.annotate(f" {n:,.0f}", (n, yi), va="center", fontsize="x-small")
    ax.set_yticks(np.arange(len(rules)), rules)
    ax.set_xlim(0, 1.15 * max(max(b.values(), default=0) for b in blocked))
    ax.xaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    ax.set_xlabel("sends blocked (skipped or deferred)")
    ax.set_title("Sends blocked by each rule, design by design")
    ax.grid(alpha=0.3, axis="x")
    handles, labels = ax.get_legend_handles_labels()
    skipped = any(n > d.get(rule, 0) for b, d in zip(blocked, deferred, strict=True) for rule, n in b.items())
    kinds = [(Patch(facecolor="#888888"), "skipped (dropped)", skipped),
             (Patch(facecolor="#888888", alpha=0.45, hatch="////", lw=0), "deferred (tried again later)",
              any(any(d.values()) for d in deferred))]
    handles += [Patch(visible=False)] + [patch for patch, _, drawn in kinds if drawn]  # (a gap, then kinds)
    labels += [""] + [label for _, label, drawn in kinds if drawn]
    legend_outside(ax, "design", (handles, labels))
    return png(fig)


# -- agent queues --------------------------------------------------------------------------------

class _Kpi(NamedTuple):
    key: str
    title: str
    share: bool  # a share of 0-1, drawn in percent
    whole: bool  # drawn on a 0-100% axis (else on its own range, so small shares show)


_KPIS = (
    _Kpi("service_level", "service level\n(answered within {target})", True, True),
    _Kpi("abandonment_rate", "abandoned\n(share of cases)", True, False),
    _Kpi("wait_mean_s", "mean wait\n({unit})", False, False),
    _Kpi("occupancy", "occupancy\n(share of agents' time busy)", True, True),
)


def _agents(runs: Sequence[Run]) -> bytes | None:
    """A row per queue, a panel per KPI, a bar per design (named with its number of agents)."""
    queues = list(dict.fromkeys(q for _, m in runs for q in m.get("agents") or {}))
    if not queues:
        return None
    height = (0.3 * len(runs) + 1.4) * len(queues) + 0.5
    fig, axes = plt.subplots(len(queues), len(_KPIS), figsize=(WIDE * 1.45, height), squeeze=False,
                             sharey="row")
    for row, queue in zip(axes, queues, strict=True):
        _queue_row(row, queue, runs)
    fig.suptitle("Agent queues, design by design")
    fig.tight_layout()
    return png(fig)


def _queue_row(axes: Sequence[Any], queue: str, runs: Sequence[Run]) -> None:
    stats = [(i, name, m["agents"][queue]) for i, (name, m) in enumerate(runs)
             if queue in (m.get("agents") or {})]
    waits = [s["wait_mean_s"] for _, _, s in stats if s.get("wait_mean_s") is not None]
    minutes = max(waits, default=0.0) >= 120
    target = next((s["service_level_target_s"] for *_, s in stats if s.get("service_level_target_s")), None)
    y = np.arange(len(stats))
    for ax, kpi in zip(axes, _KPIS, strict=True):
        scale = 100.0 if kpi.share else 1 / 60 if minutes else 1.0
        values = [None if s.get(kpi.key) is None else scale * s[kpi.key] for _, _, s in stats]
        ax.barh(y, [v or 0.0 for v in values], 0.7, color=[design_colour(i) for i, _, _ in stats])
        for yi, v in zip(y, values, strict=True):
            shown = "-" if v is None else f"{v:.1f}%" if kpi.share else f"{v:.1f}"
            ax.annotate(f" {shown}", (v or 0.0, yi), va="center", fontsize="x-small")
        most = max([v for v in values if v is not None] + [0.1])
        ax.set_xlim(0, 128.0 if kpi.whole else 1.35 * most)  # (room for the values' labels)
        if kpi.whole:
            ax.set_xticks([0, 50, 100])
        if kpi.share:
            ax.xaxis.set_major_formatter(PercentFormatter(decimals=0))
        ax.set_title(kpi.title.format(target=f"{target:g} s" if target else "the target",
                                      unit="minutes" if minutes else "seconds"), fontsize="small")
        ax.grid(alpha=0.3, axis="x")
        ax.set_axisbelow(True)
    axes[0].set_yticks(y, [f"{name} ({s['agents']} agent{'s' if s['agents'] != 1 else ''})"
                           for _, name, s in stats])
    axes[0].set_ylim(len(stats) - 0.5, -0.5)  # (the designs' order, top down)
    axes[0].set_ylabel(f"queue {queue}")


_DRAWN: dict[str, Callable[[Sequence[Run]], bytes | None]] = {
    "conversions_over_time.png": _conversions,
    "messages_by_channel.png": _messages,
    "pressure.png": _pressure,
    "suppressions.png": _suppressions,
    "agents.png": _agents,
}
