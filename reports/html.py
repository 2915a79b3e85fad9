"""One self-contained ``report.html`` per bundle: a plain reading, tables, and each figure beside
the table it illustrates, with a caption saying what it shows and how to read it.

The page needs no server and no network: its style is inline and each figure is a PNG embedded
as a data URI, drawn at ``figures.DPI`` and shown at ``figures.SHOWN_DPI`` (sharp on dense
screens, never wider than the window). It is built from ``metrics.json`` and the figures alone
(``touchpoint report DIR`` builds it again from them). Wording rules: counts carry thousands
separators, no number prints as ``-0.0``, an interval that includes zero is said to, and a
deferred send is never counted as a skipped one.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any, NamedTuple

from reports.figures import DPI, SHOWN_DPI, Figures, sends_by, step_label
from reports.paired import interval, signed

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


class Markup(str):
    """Text already in HTML (a table cell, a caption): shown as it is, not escaped."""


class Group(NamedTuple):
    """A row that heads the rows under it, across the whole table (a design, say)."""

    title: str


def report_html(metrics: dict[str, Any], figures: Figures) -> str:
    """The page for a bundle of any kind (``metrics["kind"]``: run, compare or sweep)."""
    kind = metrics.get("kind", "run")
    shown = _Shown(figures, captions(metrics))
    page = {"compare": _compare, "sweep": _sweep}.get(kind, _run)
    title, body = page(metrics, shown)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{escape(title)}</h1>{body}{shown.rest()}</body></html>\n"
    )


class _Shown:
    """The bundle's figures, each placed once beside what it illustrates; any left over at the end."""

    def __init__(self, figures: Figures, captions: dict[str, str]) -> None:
        self.figures, self.captions = figures, captions
        self.placed: list[str] = []

    def __call__(self, *names: str) -> str:
        new = [n for n in names if n in self.figures and n not in self.placed]
        self.placed += new
        return "".join(_figure(n, self.figures[n], self.captions.get(n, n)) for n in new)

    def rest(self) -> str:
        left = [n for n in sorted(self.figures) if n not in self.placed]
        return "<h2>Other figures</h2>" + self(*left) if left else ""


def _figure(name: str, png: bytes, caption: str) -> str:
    width, height = (int.from_bytes(png[at:at + 4], "big") * SHOWN_DPI // DPI for at in (16, 20))  # IHDR
    return (f'<figure><img alt="{escape(name)}" width="{width}" height="{height}" '
            f'src="data:image/png;base64,{base64.b64encode(png).decode()}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


# -- a run ---------------------------------------------------------------------------------------


def _run(m: dict[str, Any], shown: _Shown) -> tuple[str, str]:
    journeys = m["journeys"]
    parts = [_meta(m), "<h2>Reading</h2>", _list(run_reading(m)), "<h2>Journeys</h2>"]
    parts.append(_table(
        ["journey", "entries", "holdout entries", "conv. treated", "conv. holdout", "lift, points (95% CI)",
         "revenue", "messages"],
        [[jid, j["entrants"], j["holdout"]["entrants"], _pct(j["treated"]["rate"]),
          _pct(j["holdout"]["rate"]), _lift(j["lift"]),
          f"{j['treated']['revenue'] + j['holdout']['revenue']:,.0f}",
          sum(j["messages_by_channel"].values())] for jid, j in journeys.items()],
    ))
    bases = sorted({j["rate_basis"] for j in journeys.values()})
    parts.append(_legend(
        "entries: journey entries, treated and holdout (a customer may enter again after the journey's "
        "re-entry period, so entries can outnumber customers)",
        "conv.: the share of entries that converted, counting " + (bases[0] if len(bases) == 1 else
                                                                   "; ".join(bases)),
        "lift: treated minus holdout, in percentage points, with its 95% interval",
        "revenue: in the scenario's currency units (the scenario names no currency)",
    ))
    parts.append(shown("conversions_over_time.png"))
    for jid, j in journeys.items():
        parts += [f"<h2>Funnel: {escape(jid)}</h2>", _run_funnel(j), shown(f"funnel_{jid}.png")]
    parts += ["<h2>Messages, blocked sends, opt-outs</h2>", _run_counts(m),
              shown("messages_by_channel.png", "suppressions.png", "pressure.png")]
    if m.get("agents"):
        parts += ["<h2>Agent queues</h2>", shown("agents.png")]
    return f"Touchpoint run: {m['scenario']}", "".join(parts)


def run_reading(m: dict[str, Any]) -> list[str]:
    """A run in a few plain sentences."""
    lines = []
    for jid, j in m["journeys"].items():
        t, h, lift = j["treated"], j["holdout"], j["lift"]
        entries = (f"{jid}: {j['entrants']:,} journey entries from {m['customers']:,} customers (a customer "
                   f"may enter again after the re-entry period)")
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


def _run_funnel(j: dict[str, Any]) -> str:
    table = _table(["step", "reached", "sent", "skipped", "deferred", "converted after it"],
                   [[step_label(r), r["reached"], r["sent"], r["skipped"], r["deferred"],
                     r["converted_after"]] for r in j["funnel"]])
    splits = "".join(
        _table([f"split {step}: arm", "share", "reached", "converted after it"],
               [[a["next"], f"{a['share']:.2f}", a["reached"], a["converted_after"]] for a in arms])
        for step, arms in j["splits"].items()
    )
    return table + splits + _legend(
        "counts of treated journey entries", "skipped: a rule blocked the send for good",
        "deferred: a rule (quiet hours, say) delayed it, and it was tried again later",
        "converted after it: entries that passed the step and converted later")


def _run_counts(m: dict[str, Any]) -> str:
    suppressed = m["suppressed"]
    deferred = suppressed.get("deferred_by_rule", {})
    skipped = {rule: n - deferred.get(rule, 0) for rule, n in suppressed["by_rule"].items()
               if n > deferred.get(rule, 0)}
    return _table(["counted", "total", "by channel or rule"], [
        ["messages sent", m["messages"]["total"], _pairs(m["messages"]["by_channel"])],
        ["sends skipped by a rule", sum(skipped.values()), _pairs(skipped)],
        ["sends deferred, tried again later", sum(deferred.values()), _pairs(deferred)],
        ["opt-outs", m["opt_outs"]["total"], _pairs(m["opt_outs"]["by_channel"])],
    ], text=(0, 2))


# -- a compare -----------------------------------------------------------------------------------


def _compare(c: dict[str, Any], shown: _Shown) -> tuple[str, str]:
    designs = c["designs"]
    jid = next(iter(designs[0]["journeys"]))
    parts = [_meta(c), "<p>Designs compared, each on the same customers:</p><ul class=\"designs\">"]
    parts += [f"<li><b>{escape(d['name'])}</b>{' (the baseline)' if i == 0 else ''}: "
              f"{escape(d['description'] or 'no description')}</li>" for i, d in enumerate(designs)]
    parts += ["</ul><h2>Reading</h2>", _list(c["reading"]), "<h2>Designs</h2>", _designs_table(designs, jid)]
    parts.append(_legend(
        f"journey {jid}" + (f", summed over {c['replications']} replications" if c.get("replications", 1) > 1
                            else ""),
        "entries: journey entries, treated and holdout",
        "conv.: conversion rate of treated entries and of the holdout, counting entries whose goal window "
        "closed within the run",
        "lift: treated minus holdout, in percentage points, with its 95% interval",
        "msgs / cust.: messages per customer",
        "revenue / msg: revenue per message, in the scenario's currency units",
        "opt-outs / 1k: opt-outs per 1,000 customers",
        "pressure / wk: messages per customer per week, mean / 95th percentile",
        f"conv. / 1k msgs: {designs[0]['per_message_basis']} per 1,000 messages",
    ))
    parts.append(shown("designs.png"))
    if c["differences"]:
        parts += [f"<h2>Against the baseline ({escape(c['baseline'])}), paired by customer</h2>",
                  _differences_table(c["differences"]),
                  _legend("each design minus the baseline, on the same customers",
                          "width if independent: how wide the interval would be had the two designs run "
                          "on different customers; pairing the same customers is what narrows it"),
                  shown("differences.png")]
    parts += ["<h2>By design</h2>", _table(
        ["design", "messages per customer, by channel", "opt-outs, by channel",
         "sends blocked, by rule (skipped or deferred)"],
        [[d["name"], _pairs(d["messages_per_customer_by_channel"], 3), _pairs(d["opt_outs_by_channel"]),
          _pairs(d["suppressed_by_rule"])] for d in designs], text=(0, 1, 2, 3))]
    for journey in designs[0]["journeys"]:
        parts += [f"<h2>Funnel: {escape(journey)}, design by design</h2>", _side_by_side(c, journey),
                  shown(f"funnel_{journey}.png")]
    return f"Touchpoint compare: {c['scenario']}", "".join(parts)


def _designs_table(designs: Sequence[dict[str, Any]], jid: str) -> str:
    return _table(
        ["design", "entries", "conv. treated", "conv. holdout", "lift, points (95% CI)", "msgs / cust.",
         "revenue / msg", "opt-outs / 1k", "pressure / wk", "conv. / 1k msgs"],
        [[d["name"], d["journeys"][jid]["entrants"], _pct(d["journeys"][jid]["treated"]["rate"]),
          _pct(d["journeys"][jid]["holdout"]["rate"]), _lift(d["journeys"][jid]["lift"]),
          f"{d['messages_per_customer']:.2f}", _num(d["revenue_per_message"]),
          f"{d['opt_outs_per_1000_customers']:.2f}",
          f"{_num(d['pressure_mean'])} / {_num(d['pressure_p95'], 0)}",
          _num(d["conversions_per_1000_messages"], 1)] for d in designs],
    )


def _differences_table(differences: Sequence[dict[str, Any]]) -> str:
    rows: list[Sequence[Any] | Group] = []
    for diff in differences:
        rows.append(Group(f"{diff['design']} minus {diff['against']}"))
        for label, d, digits in (
            *((f"conversion rate, {j} (points)", v, 2) for j, v in diff["conversion_rate_points"].items()),
            ("messages per customer", diff["messages_per_customer"], 3),
            ("revenue per customer", diff["revenue_per_customer"], 2),
            ("opt-outs per 1,000 customers", diff["opt_outs_per_1000_customers"], 2),
        ):
            if d is not None:
                narrower = f"{d['width_independent'] / d['width']:.1f} times" if d["width"] > 0 else "-"
                rows.append([label, signed(d["difference"], digits), interval(d["low"], d["high"], digits),
                             f"{d['width']:,.{digits}f}", f"{d['width_independent']:,.{digits}f}", narrower])
    return _table(["difference in", "estimate", "95% interval (paired)", "width", "width if independent",
                   "pairing narrows it"], rows)


def _side_by_side(c: dict[str, Any], jid: str) -> str:
    """One journey's funnel, a column group per design: reached, sent, converted after."""
    funnels = {run["name"]: {r["step"]: r for r in run["metrics"]["journeys"][jid]["funnel"]}
               for run in c["runs"]}
    steps = list(dict.fromkeys(step for rows in funnels.values() for step in rows))
    body = []
    for step in steps:
        cells: list[Any] = [_compare_step(step, funnels)]
        for rows in funnels.values():
            r = rows.get(step)
            cells += [r["reached"], r["sent"], r["converted_after"]] if r else ["–", "–", "–"]
        body.append(cells)
    splits = [(step, name, arms) for name, run in zip(funnels, c["runs"], strict=True)
              for step, arms in run["metrics"]["journeys"][jid]["splits"].items()]
    return _table(["step", *(["reached", "sent", "conv. after"] * len(funnels))], body,
                  groups=[(name, 3) for name in funnels]) + "".join(
        _table([f"{name}, split {step}: arm", "share", "reached", "converted after it"],
               [[a["next"], f"{a['share']:.2f}", a["reached"], a["converted_after"]] for a in arms])
        for step, name, arms in splits
    ) + _legend(
        "reached: treated journey entries that reached the step", "sent: messages the step sent",
        "conv. after: entries that converted after passing the step", "–: the design has no such step",
        *(["figures of the first replication"] if c.get("replications", 1) > 1 else []))


def _compare_step(step: str, funnels: dict[str, dict[str, dict[str, Any]]]) -> Markup:
    """A step's name and what it sends: the baseline's channel, and any design's that differs."""
    channels = {name: sends_by(rows[step]) for name, rows in funnels.items() if step in rows}
    first = next(iter(channels.values()))
    others = [f"{name}: {channel or 'nothing'}" for name, channel in channels.items() if channel != first]
    lines = [f"sends {first}"] if first else []
    lines += ["; ".join(others)] if others else []
    return Markup(escape(step) + "".join(f'<div class="sends">{escape(line)}</div>' for line in lines))


# -- a sweep -------------------------------------------------------------------------------------


def _sweep(s: dict[str, Any], shown: _Shown) -> tuple[str, str]:
    names = list(s["settings"])
    parts = [_meta(s), "<h2>Reading</h2>", _list(s["reading"]), "<h2>Points</h2>"]
    parts.append(_table(
        ["point", *(Markup(escape(n).replace(".", ".<wbr>")) for n in names), s["outcome_label"],
         "messages per customer", "opt-outs per 1,000", "Pareto: messages", "Pareto: opt-outs"],
        [[p["name"], *(str(p["settings"][n]) for n in names), f"{p[s['outcome']]:,.4g}",
          f"{p['messages_per_customer']:.3f}", f"{p['opt_outs_per_1000_customers']:.2f}",
          "yes" if p["pareto_messages"] else "", "yes" if p["pareto_opt_outs"] else ""]
         for p in s["points"]], text=(*range(len(names) + 1), len(names) + 4, len(names) + 5),
    ))
    parts.append(_legend("Pareto: yes when no other point has both a better outcome and a lower cost "
                         "(messages, or opt-outs)"))
    parts.append(shown("frontier.png"))
    return f"Touchpoint sweep: {s['scenario']}", "".join(parts)


# -- captions ------------------------------------------------------------------------------------


def captions(m: dict[str, Any]) -> dict[str, str]:
    """For each figure a bundle may hold, one or two sentences: what it shows and how to read it."""
    kind = m.get("kind", "run")
    if kind == "sweep":
        return {"frontier.png": (
            f"Each point of the grid, its {m['outcome_label']} against messages per customer (left) and "
            "against opt-outs per 1,000 customers (right); the red points are Pareto-optimal: no other "
            "point does better on the outcome at a lower cost. The axes span only the points' range, so "
            "small differences look large: read the values on the axes.")}
    if kind == "compare":
        return _compare_captions(m)
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


def _compare_captions(c: dict[str, Any]) -> dict[str, str]:
    jid = next(iter(c["designs"][0]["journeys"]))
    out = {
        "designs.png": (
            f"Each design's conversion rate of treated entries in {jid} (left; the dashed line is the "
            "holdout) and its opt-outs per 1,000 customers (right), with 95% intervals. These intervals "
            "are each design's own, independent ones, so overlapping bars do not mean the designs are "
            "alike: judge differences by the paired differences figure below."),
        "differences.png": (
            f"Each design minus the baseline ({c['baseline']}), on the same customers, top down in the "
            "table's order: blue is the paired 95% interval, grey the one the same comparison would have "
            "with independent populations. A blue interval clear of the zero line is a difference this "
            "compare can see."),
    }
    for journey in c["designs"][0]["journeys"]:
        out[f"funnel_{journey}.png"] = (
            f"{journey}, design by design: messages sent at each send step (left) and entries that "
            f"converted after passing each step (right), the designs in the legend's order; step names "
            f"carry the baseline's channel, and a note right of a step's bars names any design that sends "
            f"on another channel there.")
    return out


# -- pieces --------------------------------------------------------------------------------------


def _meta(m: dict[str, Any]) -> str:
    facts = [f"{m['customers']:,} customers", f"{m['days']:g} days", f"seed {m['seed']}"]
    if m.get("replications", 1) > 1:
        facts.append(f"{m['replications']} replications")
    return f"<p class=\"meta\">{escape(', '.join(facts))}</p>"


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any] | Group], text: Sequence[int] = (0,),
           groups: Sequence[tuple[str, int]] = ()) -> str:
    """A table in a wrapper that scrolls sideways when the window is narrow. Columns ``text`` are
    left-aligned and may wrap; the others are numbers: right-aligned, unwrapped, ints given
    thousands separators. ``groups`` heads column groups after the first (label, span), in a
    compact table."""
    def cell(tag: str, i: int, value: Any) -> str:
        shown = value if isinstance(value, Markup) else escape(
            f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value))
        return f"<{tag}>{shown}</{tag}>" if i in text else f'<{tag} class="num">{shown}</{tag}>'

    if groups:
        lead = len(headers) - sum(span for _, span in groups)
        head = ("<tr>" + "".join(f'<th rowspan="2">{escape(h)}</th>' for h in headers[:lead])
                + "".join(f'<th colspan="{span}">{escape(g)}</th>' for g, span in groups) + "</tr><tr>"
                + "".join(cell("th", lead + i, h) for i, h in enumerate(headers[lead:])) + "</tr>")
    else:
        head = "<tr>" + "".join(cell("th", i, h) for i, h in enumerate(headers)) + "</tr>"
    body = "".join(
        f'<tr class="group"><th colspan="{len(headers)}">{escape(row.title)}</th></tr>'
        if isinstance(row, Group) else "<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>"
        for row in rows
    )
    compact = ' class="compact"' if groups else ""
    return f'<div class="wide"><table{compact}><thead>{head}</thead><tbody>{body}</tbody></table></div>'


def _legend(*entries: str) -> str:
    """The line under a table that says what its short headers mean."""
    text = "; ".join(entries)
    return f'<p class="legend">{escape(text[:1].upper() + text[1:])}.</p>'


def _list(lines: Iterable[str]) -> str:
    return "<ul class=\"reading\">" + "".join(f"<li>{escape(line)}</li>" for line in lines) + "</ul>"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _lift(lift: dict[str, Any]) -> str:
    if lift["lift"] is None or lift["lift_ci95_low"] is None or lift["lift_ci95_high"] is None:
        return "-"
    low, high = 100 * lift["lift_ci95_low"], 100 * lift["lift_ci95_high"]
    return f"{signed(100 * lift['lift'], 2)} {interval(low, high, 2)}"


def _pairs(counts: dict[str, Any], digits: int = 0) -> Markup:
    """``email 0.41 · push 0.30``, each pair kept on one line."""
    pairs = (f'<span class="pair">{escape(k)} {v:,.{digits}f}</span>' for k, v in counts.items())
    return Markup(" · ".join(pairs) or "none")
