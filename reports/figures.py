"""The report's figures, drawn from a bundle's ``metrics.json`` alone (matplotlib, Agg backend).

Each function takes the plain data of a run, compare or sweep and returns ``{file name: PNG
bytes}``: nothing but metrics.json is needed, so ``touchpoint report DIR`` can draw them again.
Every figure has a title, axes with units and, where it shows more than one series, a legend
outside the data; every axis that counts starts at zero. Figures are drawn at ``DPI`` dots per
inch and shown at ``SHOWN_DPI`` CSS pixels per inch, so they stay sharp on dense screens (both in
``reports.figure_facts``, which the pages read without loading matplotlib).
``captions`` says, for each figure, what it shows and how to read it. A compare's and a sweep's
figures are in ``reports.lab_figures``, drawn with the helpers at the end of this module.
"""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no screen: files only

import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator, PercentFormatter, StrMethodFormatter  # noqa: E402

from reports.figure_facts import DPI, Figures, step_label  # noqa: E402

WIDE, HIGH = 8.0, 4.2
COLOURS = {"treated": "#1f77b4", "holdout": "#ff7f0e"}
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


# -- a run ---------------------------------------------------------------------------------------


def _funnel(jid: str, journey: dict[str, Any]) -> bytes:
    rows = journey["funnel"]
    kinds = [(key, label) for key, label in _FUNNEL if key != "deferred" or any(r["deferred"] for r in rows)]
    fig, ax = new_figure(height=max(3.0, 0.7 * len(rows) + 1.2))
    y = np.arange(len(rows))
    height = 0.84 / len(kinds)
    for i, (key, label) in enumerate(kinds):
        ax.barh(y + (i - (len(kinds) - 1) / 2) * height, [row[key] for row in rows], height, label=label)
    ax.set_yticks(y, [step_label(row) for row in rows])
    ax.invert_yaxis()
    ax.xaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    ax.set_xlabel("treated journey entries")
    ax.set_title(f"{jid}: funnel by step")
    legend_outside(ax)
    return png(fig)


def _conversions_by_entry_day(journeys: dict[str, Any]) -> bytes:
    """Per journey, the conversion rate of the entrants of the first ``k`` days (``k`` growing),
    counting only days whose entrants' goal window had closed when the run ended."""
    fig, axes = plt.subplots(len(journeys), 1, figsize=(WIDE, HIGH * len(journeys)), squeeze=False)
    for ax, (jid, j) in zip(axes[:, 0], journeys.items(), strict=True):
        days, complete = len(j["entrants"]["treated"]), j["complete_days"]
        top = 0.0
        for group in ("treated", "holdout"):
            if not any(j["entrants"][group]):
                continue  # (a journey with no holdout, or one that holds everyone out)
            rate = rate_so_far(j, group)
            ax.plot(np.arange(1, complete + 1), rate, marker=".", label=group, color=COLOURS[group])
            top = max(top, float(np.nanmax(rate, initial=0.0)))
        shade_open_windows(ax, complete, days)
        ax.set_ylim(0, min(100.0, 1.2 * top) or 1.0)
        ax.yaxis.set_major_formatter(PercentFormatter(decimals=0))
        ax.set_xlabel("day of entry")
        window = j["goal_window_days"]
        ax.set_ylabel(f"converted within {window:g} day{'' if window == 1 else 's'}")
        ax.set_title(f"{jid}: conversion rate of the entries so far, by day of entry")
        ax.grid(alpha=0.3)
        legend_outside(ax)
    fig.tight_layout()
    return png(fig)


def _conversions_over_time(series: dict[str, Any]) -> bytes:
    """The curve of a metrics.json without per-journey entry days (older bundles): conversions so
    far over entrants so far, open goal windows included."""
    fig, ax = new_figure()
    days = np.arange(1, series["days"] + 1)
    top = 1.0
    for group in ("treated", "holdout"):
        entrants = np.cumsum(series["entrants"][group])
        conversions = np.cumsum(series["conversions"][group])
        rate = np.divide(100.0 * conversions, entrants, out=np.full(len(days), np.nan),
                         where=entrants > 0)
        ax.plot(days, rate, marker=".", label=group, color=COLOURS[group])
        top = max(top, float(np.nanmax(rate, initial=0.0)))
    ax.set_ylim(0, min(100.0, 1.15 * top))
    ax.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    ax.set_xlabel("day of the run")
    ax.set_ylabel("conversions per entrant so far")
    ax.set_title("Conversions over time, treated against holdout")
    ax.grid(alpha=0.3)
    legend_outside(ax)
    return png(fig)


def _messages_by_channel(series: dict[str, Any]) -> bytes:
    fig, ax = new_figure()
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
    legend_outside(ax, title="channel")
    return png(fig)


def _pressure(pressure: dict[str, Any], fatigue: list[dict[str, Any]]) -> bytes:
    fig, (left, right) = plt.subplots(1, 2, figsize=(WIDE * 1.3, HIGH + 0.3))
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
    return png(fig)


def _suppressions(suppressed: dict[str, Any]) -> bytes:
    rules = sorted(suppressed["by_rule"], key=suppressed["by_rule"].get)
    fig, ax = new_figure(height=max(2.5, 0.55 * len(rules) + 1.3))
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
    legend_outside(ax)
    return png(fig)


def _agents(agents: dict[str, Any]) -> bytes:
    queues = list(agents)
    fig, (left, right) = plt.subplots(1, 2, figsize=(WIDE * 1.2, HIGH))
    x = np.arange(len(queues))
    times = (("wait_mean_s", "wait"), ("first_response_mean_s", "first response"),
             ("resolution_mean_s", "resolution"))
    for i, (key, label) in enumerate(times):
        left.bar(x + (i - 1) * 0.27, [agents[q][key] / 60 for q in queues], 0.27, label=label)
    left.set_xticks(x, queues)
    left.set_ylabel("mean time (minutes)")
    left.set_title("Agent queues: times")
    legend_outside(left)
    shares = (("service_level", "service level"), ("occupancy", "occupancy"))
    for i, (key, label) in enumerate(shares):
        right.bar(x + (i - 0.5) * 0.4, [100 * (agents[q][key] or 0) for q in queues], 0.4, label=label)
    right.set_xticks(x, queues)
    right.set_ylabel("percent")
    right.set_ylim(0, 105)
    right.set_title("Agent queues: service level and occupancy")
    legend_outside(right)
    fig.tight_layout()
    return png(fig)


# -- drawing -------------------------------------------------------------------------------------


def rate_so_far(journey: dict[str, Any], group: str) -> np.ndarray:
    """The conversion rate, in percent, of a group's entries of the first days up to each day
    (NaN before the first entry), over the days whose goal window closed within the run; from
    ``series["journeys"][jid]``."""
    complete = journey["complete_days"]
    entrants = np.cumsum(journey["entrants"][group][:complete])
    conversions = np.cumsum(journey["conversions_by_entry_day"][group][:complete])
    return np.divide(100.0 * conversions, entrants, out=np.full(complete, np.nan), where=entrants > 0)


def shade_open_windows(ax: Any, complete: int, days: int) -> None:
    """Grey out the days of entry whose goal window was still open when the run ended, and say so
    (across the band when it is wide enough, along it when narrow); the x axis spans every day."""
    if complete < days:
        ax.axvspan(complete + 0.5, days + 0.5, color="#999999", alpha=0.15, lw=0)
        if days - complete >= 0.2 * days:
            ax.text(complete + 1, 0.04, "goal window\nstill open when\nthe run ended", fontsize="small",
                    color="#555555", transform=ax.get_xaxis_transform())
        else:
            ax.text(complete + 0.5 + (days - complete) / 2, 0.04, "goal window still open", rotation=90,
                    fontsize="x-small", color="#555555", ha="center", transform=ax.get_xaxis_transform())
    ax.set_xlim(0.5, days + 0.5)


def new_figure(height: float = HIGH) -> tuple[Figure, Any]:
    return plt.subplots(figsize=(WIDE, height))


def legend_outside(ax: Any, title: str | None = None,
                   entries: tuple[list[Any], list[str]] | None = None) -> None:
    """The legend right of the axes, clear of the data (the saved figure grows to hold it): the
    axes' labelled artists, or ``entries`` (handles, labels); none when there is nothing to name
    (a run too short to send anything)."""
    if entries is None and not ax.get_legend_handles_labels()[0]:
        return
    ax.legend(*(entries or ()), loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False,
              title=title, title_fontsize="small", alignment="left")


def error_bars(intervals: Any, scale: float = 100.0) -> np.ndarray:
    """Error bar lengths below and above each point from ``(low, centre, high)`` triples."""
    rows = [(scale * (c - lo), scale * (hi - c)) if c is not None else (0.0, 0.0)
            for lo, c, hi in intervals]
    return np.asarray(rows, dtype=float).T


def png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()
