"""One self-contained ``report.html`` per bundle: a plain reading, tables, and each figure beside
the table it illustrates, with a caption saying what it shows and how to read it.

The page needs no server and no network: its style is inline and each figure is a PNG embedded
as a data URI, drawn at ``figures.DPI`` and shown at ``figures.SHOWN_DPI`` (sharp on dense
screens, never wider than the window). It is built from ``metrics.json`` and the figures alone
(``touchpoint report DIR`` builds it again from them). Wording rules: counts carry thousands
separators, no number prints as ``-0.0``, an interval that includes zero is said to, and a
deferred send is never counted as a skipped one.

This module makes a run's page and dispatches by kind; ``reports.lab_html`` makes a compare's and
a sweep's; ``reports.markup`` holds the pieces they share (tables, lists, figures, numbers).
"""

from __future__ import annotations

from html import escape
from typing import Any

from reports.attribution_view import attribution_html
from reports.figure_facts import Figures
from reports.lab_html import compare_captions, compare_page, sweep_captions, sweep_page
from reports.markup import Shown, bullet_list, counts_table, funnel_table, legend, lift_cell, meta, pct, table
from reports.paired import interval, signed
from reports.replay_html import replay_captions, replay_compare_page, replay_page

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; padding: 0 1em;
       color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
.wide { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; margin: 0.8em 0 0.4em; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
th.num { white-space: normal; } /* (a header may wrap; its numbers may not) */
table.compact { font-size: 0.85em; } table.compact th, table.compact td { padding: 0.25em 0.4em; }
tr.group th { background: #e9eff7; }
.pair { white-space: nowrap; } .sends { color: #666; font-size: 0.88em; }
.reading li { margin: 0.3em 0; }
img { max-width: 100%; height: auto; box-sizing: border-box; }
figure { margin: 1.4em 0; } figure img { border: 1px solid #eee; }
figcaption { color: #444; font-size: 0.92em; max-width: 52em; margin-top: 0.3em; }
.meta, .legend { color: #555; font-size: 0.9em; max-width: 60em; }
"""


def report_html(metrics: dict[str, Any], figures: Figures) -> str:
    """The page for a bundle of any kind (``metrics["kind"]``: run, compare, sweep, replay or
    replay-compare)."""
    kind = metrics.get("kind", "run")
    shown = Shown(figures, captions(metrics))
    page = {"compare": compare_page, "sweep": sweep_page, "replay": replay_page,
            "replay-compare": replay_compare_page}.get(kind, _run)
    title, body = page(metrics, shown)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{escape(title)}</h1>{body}{shown.rest()}</body></html>\n"
    )


# -- a run ---------------------------------------------------------------------------------------


def _run(m: dict[str, Any], shown: Shown) -> tuple[str, str]:
    journeys = m["journeys"]
    parts = [meta(m), "<h2>Reading</h2>", bullet_list(run_reading(m)), "<h2>Journeys</h2>"]
    parts.append(table(
        ["journey", "entries", "holdout entries", "conv. treated", "conv. holdout", "lift, points (95% CI)",
         "revenue", "messages"],
        [[jid, j["entrants"], j["holdout"]["entrants"], pct(j["treated"]["rate"]),
          pct(j["holdout"]["rate"]), lift_cell(j["lift"]),
          f"{j['treated']['revenue'] + j['holdout']['revenue']:,.0f}",
          sum(j["messages_by_channel"].values())] for jid, j in journeys.items()],
    ))
    bases = sorted({j["rate_basis"] for j in journeys.values()})
    parts.append(legend(
        "entries: journey entries, treated and holdout (a customer may enter again after the journey's "
        "re-entry period, so entries can outnumber customers)",
        "conv.: the share of entries that converted, counting " + (bases[0] if len(bases) == 1 else
                                                                   "; ".join(bases)),
        "lift: treated minus holdout, in percentage points, with its 95% interval",
        "revenue: in the scenario's currency units (the scenario names no currency)",
    ))
    parts.append(shown("conversions_over_time.png"))
    for jid, j in journeys.items():
        parts += [f"<h2>Funnel: {escape(jid)}</h2>", funnel_table(j), shown(f"funnel_{jid}.png")]
    parts += ["<h2>Messages, blocked sends, opt-outs</h2>", counts_table(m),
              shown("messages_by_channel.png", "suppressions.png", "pressure.png")]
    if m.get("agents"):
        parts += ["<h2>Agent queues</h2>", shown("agents.png")]
    parts += _segments(m)
    parts.append(attribution_html(m))
    return f"Touchpoint run: {m['scenario']}", "".join(parts)


def _segments(m: dict[str, Any]) -> list[str]:
    """The live segments at the end of the run, and the scoring passes with their BG/NBD fits."""
    parts = []
    if m.get("segments"):
        parts += ["<h2>Segments</h2>", table(
            ["segment", "members at the end", "entries", "exits"],
            [[sid, s["members"], s["entered"], s["left"]] for sid, s in m["segments"].items()])]
    if (scoring := m.get("scoring")) is not None:
        parts += ["<h2>Scores</h2>", legend(
            f"{scoring['passes']:,} scoring passes, one every {scoring['every_s'] / 3600:g} h: scores are "
            "at most that old; BG/NBD refitted on the purchase histories as they then were"
            + ("" if scoring["fits"] else f" (no fit: {scoring['fit_problem']})"))]
        if scoring["fits"]:
            rows = [[f"{f['at'] / 86400:g}", f"{f['customers']:,.0f}",
                     *(f"{f[k]:.4g}" for k in ("r", "alpha", "a", "b"))] for f in scoring["fits"]]
            parts.append(table(["day", "buyers", "r", "alpha", "a", "b"], rows))
    return parts


def run_reading(m: dict[str, Any]) -> list[str]:
    """A run in a few plain sentences."""
    lines = []
    for jid, j in m["journeys"].items():
        t, h, lift = j["treated"], j["holdout"], j["lift"]
        entries = (f"{jid}: {j['entrants']:,} journey entries from {m['customers']:,} customers (a customer "
                   f"may enter again after the re-entry period)")
        if t["entrants"] == 0 and h["entrants"] > 0:
            rate = "no entry's goal window fits in the run yet" if h["rate"] is None else (
                f"{100 * h['rate']:.1f}% of them converted")
            lines.append(f"{entries}; every entry is held out (the journey sends to no one): {rate}.")
            continue
        if t["rate"] is None:
            lines.append(f"{entries}; none whose goal window fits in the run yet.")
            continue
        line = f"{entries}; {100 * t['rate']:.1f}% of treated entries converted"
        if lift["lift"] is not None:
            line += f" against {100 * h['rate']:.1f}% of the holdout: {lift_words(lift)}"
        lines.append(line + ".")
    per = m["messages"]["per_customer"]
    lines.append(f"{m['messages']['total']:,} messages, {per['mean']:.2f} per customer; "
                 f"{m['opt_outs']['total']:,} opt-outs ({m['opt_outs']['per_1000_customers']:.2f} per 1,000 "
                 f"customers).")
    lines.append(blocked_words(m["suppressed"]))
    if "pressure" in m:
        p = m["pressure"]
        lines.append(f"Contact pressure, over every customer (messaged or not): {p['mean']:.2f} messages per "
                     f"customer per week on average, 95th percentile {p['p95']:g}, most {p['max']}.")
    return lines


def lift_words(lift: dict[str, Any]) -> str:
    """A journey's lift over its holdout: ``the journey adds 1.8 points [+0.5, +3.1]``, or, when the
    interval includes zero, ``the measured lift is +1.8 points [-3.0, +6.5]: the interval includes
    zero, ...``."""
    value, low, high = (100 * lift[k] for k in ("lift", "lift_ci95_low", "lift_ci95_high"))
    if low <= 0 <= high:
        return (f"the measured lift is {signed(value)} points {interval(low, high)}: the interval "
                f"includes zero, so at this size it cannot be told from no effect")
    verb = "raises" if value > 0 else "lowers"
    return f"the journey {verb} conversion by {abs(value):.1f} points {interval(low, high)}"


def blocked_words(suppressed: dict[str, Any]) -> str:
    """``2,107 sends skipped by a rule; 673 delayed by quiet hours and tried again later.``"""
    deferred = suppressed.get("deferred_by_rule", {})
    skipped = suppressed["total"] - sum(deferred.values())
    if not suppressed["total"]:
        return "No send was blocked by a rule."
    words = [f"{skipped:,} sends skipped by a rule"] if skipped else []
    if sum(deferred.values()):
        by = " and ".join(f"{n:,} by {rule.replace('_', ' ')}" for rule, n in deferred.items() if n)
        words.append(f"{sum(deferred.values()):,} delayed and tried again later ({by})" if len(deferred) > 1
                     else f"{sum(deferred.values()):,} delayed by {next(iter(deferred)).replace('_', ' ')} "
                          "and tried again later")
    return "; ".join(words) + "."


# -- captions ------------------------------------------------------------------------------------


def captions(m: dict[str, Any]) -> dict[str, str]:
    """For each figure a bundle may hold, one or two sentences: what it shows and how to read it."""
    kind = m.get("kind", "run")
    if kind == "sweep":
        return sweep_captions(m)
    if kind == "compare":
        return compare_captions(m)
    if kind == "replay-compare":
        return replay_captions(m)
    return _run_captions(m)


def _run_captions(m: dict[str, Any]) -> dict[str, str]:
    series = m.get("series", {})
    by_day = series.get("journeys")
    if by_day:
        over_time = " ".join(
            f"{jid}: the share of treated and holdout entries that converted within the "
            f"{j['goal_window_days']:g}-day goal window, for the entries of the first days up to each day; "
            f"only the first {j['complete_days']} days are drawn (later entrants' window was still open when "
            f"the run ended), so the last point is the rate in the table and the gap between the lines "
            f"is the lift." for jid, j in by_day.items())
    else:
        over_time = ("Conversions so far over entries so far, by day of the run, treated against holdout; "
                     "it counts entries whose goal window is still open (they may yet convert), so its last "
                     "values differ from the table's rates, which count only closed windows.")
    out = {
        "conversions_over_time.png": over_time,
        "messages_by_channel.png": "Messages sent on each day of the run, stacked by channel: a bar's "
                                   "height is the day's total.",
        "pressure.png": "Left: how many messages each customer got in each whole week, over every customer, "
                        "including those never messaged; the dashed line is the 95th percentile. Right: "
                        "the share of customers who opted out, grouped by the most messages they got in "
                        "any one week, with the number of customers (n) in each group.",
        "suppressions.png": "Sends blocked by each policy rule: skipped sends were dropped, deferred ones "
                            "were delayed and tried again later (so they may have been sent after all); "
                            "the label at each bar's end gives the counts.",
        "agents.png": "Agent queues: mean wait, first response and resolution times (left), service level "
                      "and occupancy (right).",
    }
    for jid in m["journeys"]:
        out[f"funnel_{jid}.png"] = (
            f"Each step of {jid}, top to bottom, with how many treated entries reached it, what it sent, "
            "skipped or deferred, and how many of those who passed it converted later: read down the "
            "steps to see where entries drop out; the table above gives the numbers.")
    return out
