"""A compare's and a sweep's report pages (see ``reports.html``)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from reports.attribution_view import compare_attribution_html
from reports.compare_figures import holdout_drawn
from reports.figure_facts import sends_by
from reports.markup import Group, Markup, Shown, bullet_list, legend, lift_cell, meta, num, pairs, pct, table
from reports.paired import interval, signed

# -- a compare -----------------------------------------------------------------------------------


def compare_page(c: dict[str, Any], shown: Shown) -> tuple[str, str]:
    designs = c["designs"]
    jid = next(iter(designs[0]["journeys"]))
    parts = [meta(c), "<p>Designs compared, each on the same customers:</p><ul class=\"designs\">"]
    parts += [f"<li><b>{escape(d['name'])}</b>{' (the baseline)' if i == 0 else ''}: "
              f"{escape(d['description'] or 'no description')}</li>" for i, d in enumerate(designs)]
    parts += ["</ul><h2>Reading</h2>", bullet_list(c["reading"]), "<h2>Designs</h2>",
              _designs_table(designs, jid)]
    parts.append(legend(
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
    parts.append(shown("designs.png", "conversions_over_time.png"))
    if c["differences"]:
        parts += [f"<h2>Against the baseline ({escape(c['baseline'])}), paired by customer</h2>",
                  _differences_table(c["differences"]),
                  legend("each design minus the baseline, on the same customers",
                          "width if independent: how wide the interval would be had the two designs run "
                          "on different customers; pairing the same customers is what narrows it",
                          *(["across replications: the mean of the replications' own differences with "
                             "Student's t interval, which also counts how populations vary"]
                            if c.get("replications", 1) > 1 else [])),
                  shown("differences.png")]
    parts += ["<h2>By design</h2>", table(
        ["design", "messages per customer, by channel", "opt-outs, by channel",
         "sends blocked, by rule (skipped or deferred)"],
        [[d["name"], pairs(d["messages_per_customer_by_channel"], 3), pairs(d["opt_outs_by_channel"]),
          pairs(d["suppressed_by_rule"])] for d in designs], text=(0, 1, 2, 3)),
              shown("messages_by_channel.png", "pressure.png", "suppressions.png")]
    if any(run["metrics"].get("agents") for run in c["runs"]):
        parts += ["<h2>Agent queues, design by design</h2>", _agents_table(c), shown("agents.png")]
    for journey in designs[0]["journeys"]:
        parts += [f"<h2>Funnel: {escape(journey)}, design by design</h2>", _side_by_side(c, journey),
                  shown(f"funnel_{journey}.png")]
    parts.append(compare_attribution_html(c))
    return f"Touchpoint compare: {c['scenario']}", "".join(parts)


def _designs_table(designs: Sequence[dict[str, Any]], jid: str) -> str:
    return table(
        ["design", "entries", "conv. treated", "conv. holdout", "lift, points (95% CI)", "msgs / cust.",
         "revenue / msg", "opt-outs / 1k", "pressure / wk", "conv. / 1k msgs"],
        [[d["name"], d["journeys"][jid]["entrants"], pct(d["journeys"][jid]["treated"]["rate"]),
          pct(d["journeys"][jid]["holdout"]["rate"]), lift_cell(d["journeys"][jid]["lift"]),
          f"{d['messages_per_customer']:.2f}", num(d["revenue_per_message"]),
          f"{d['opt_outs_per_1000_customers']:.2f}",
          f"{num(d['pressure_mean'])} / {num(d['pressure_p95'], 0)}",
          num(d["conversions_per_1000_messages"], 1)] for d in designs],
    )


def _differences_table(differences: Sequence[dict[str, Any]]) -> str:
    rows: list[Sequence[Any] | Group] = []
    replicated = any(diff.get("across_replications") for diff in differences)
    for diff in differences:
        rows.append(Group(f"{diff['design']} minus {diff['against']}"))
        across = diff.get("across_replications") or {}
        for label, d, spread, digits in (
            *((f"conversion rate, {j} (points)", v, across.get("conversion_rate_points", {}).get(j), 2)
              for j, v in diff["conversion_rate_points"].items()),
            ("messages per customer", diff["messages_per_customer"], None, 3),
            ("revenue per customer", diff["revenue_per_customer"], None, 2),
            ("opt-outs per 1,000 customers", diff["opt_outs_per_1000_customers"],
             across.get("opt_outs_per_1000_customers"), 2),
        ):
            if d is not None:
                narrower = f"{d['width_independent'] / d['width']:.1f} times" if d["width"] > 0 else "-"
                row = [label, signed(d["difference"], digits), interval(d["low"], d["high"], digits),
                       f"{d['width']:,.{digits}f}", f"{d['width_independent']:,.{digits}f}", narrower]
                if replicated:
                    row.append("-" if spread is None else
                               f"{signed(spread['difference'], digits)} "
                               f"{interval(spread['low'], spread['high'], digits)}")
                rows.append(row)
    headers = ["difference in", "estimate", "95% interval (paired)", "width", "width if independent",
               "pairing narrows it"]
    if replicated:
        headers.append("across replications (t, 95%)")
    return table(headers, rows)


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
    return table(["step", *(["reached", "sent", "conv. after"] * len(funnels))], body,
                  groups=[(name, 3) for name in funnels]) + "".join(
        table([f"{name}, split {step}: arm", "share", "reached", "converted after it"],
               [[a["next"], f"{a['share']:.2f}", a["reached"], a["converted_after"]] for a in arms])
        for step, name, arms in splits
    ) + legend(
        "reached: treated journey entries that reached the step", "sent: messages the step sent",
        "conv. after: entries that converted after passing the step", "–: the design has no such step",
        *(["figures of the first replication"] if c.get("replications", 1) > 1 else []))


def _agents_table(c: dict[str, Any]) -> str:
    """Each escalation queue's KPIs, a row per design and queue."""
    rows = [[run["name"], queue, q["agents"], q["cases"], q["abandoned"], pct(q["abandonment_rate"]),
             f"{pct(q['service_level'])} in {q['service_level_target_s']:g} s", num(q["wait_mean_s"], 1),
             num(q["first_response_mean_s"], 1), num(q["resolution_mean_s"] / 60, 1), pct(q["occupancy"])]
            for run in c["runs"] for queue, q in (run["metrics"].get("agents") or {}).items()]
    headers = ["design", "queue", "agents", "cases", "abandoned", "abandoned, share", "service level",
               "mean wait (s)", "first response (s)", "resolution (min)", "occupancy"]
    return table(headers, rows, text=(0, 1)) + legend(
        "cases: chats escalated to the queue", "service level: the share of cases answered within the target",
        "first response and resolution: mean times from the case's arrival", "occupancy: the share of the "
        "agents' time spent handling cases", *(["figures of the first replication"]
                                               if c.get("replications", 1) > 1 else []))


def _compare_step(step: str, funnels: dict[str, dict[str, dict[str, Any]]]) -> Markup:
    """A step's name and what it sends: the baseline's channel, and any design's that differs."""
    channels = {name: sends_by(rows[step]) for name, rows in funnels.items() if step in rows}
    first = next(iter(channels.values()))
    others = [f"{name}: {channel or 'nothing'}" for name, channel in channels.items() if channel != first]
    lines = [f"sends {first}"] if first else []
    lines += ["; ".join(others)] if others else []
    return Markup(escape(step) + "".join(f'<div class="sends">{escape(line)}</div>' for line in lines))


# -- a sweep -------------------------------------------------------------------------------------


def sweep_page(s: dict[str, Any], shown: Shown) -> tuple[str, str]:
    names = list(s["settings"])
    parts = [meta(s), "<h2>Reading</h2>", bullet_list(s["reading"]), "<h2>Points</h2>"]
    parts.append(table(
        ["point", *(Markup(escape(n).replace(".", ".<wbr>")) for n in names), s["outcome_label"],
         "messages per customer", "opt-outs per 1,000", "Pareto: messages", "Pareto: opt-outs"],
        [[p["name"], *(str(p["settings"][n]) for n in names), f"{p[s['outcome']]:,.4g}",
          f"{p['messages_per_customer']:.3f}", f"{p['opt_outs_per_1000_customers']:.2f}",
          "yes" if p["pareto_messages"] else "", "yes" if p["pareto_opt_outs"] else ""]
         for p in s["points"]], text=(*range(len(names) + 1), len(names) + 4, len(names) + 5),
    ))
    parts.append(legend("Pareto: yes when no other point has both a better outcome and a lower cost "
                         "(messages, or opt-outs)"))
    parts.append(shown("frontier.png"))
    return f"Touchpoint sweep: {s['scenario']}", "".join(parts)


def compare_captions(c: dict[str, Any]) -> dict[str, str]:
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
    out |= _over_time_captions(c)
    for journey in c["designs"][0]["journeys"]:
        out[f"funnel_{journey}.png"] = (
            f"{journey}, design by design: messages sent at each send step (left) and entries that "
            f"converted after passing each step (right), the designs in the legend's order; step names "
            f"carry the baseline's channel, and a note right of a step's bars names any design that sends "
            f"on another channel there.")
    return out


def _over_time_captions(c: dict[str, Any]) -> dict[str, str]:
    """The captions of the figures drawn from each design's run (``reports.compare_figures``)."""
    first = " Drawn from each design's first replication." if c.get("replications", 1) > 1 else ""
    series = [run["metrics"].get("series", {}) for run in c.get("runs") or []]
    channels = list(dict.fromkeys(channel for s in series for channel in s.get("messages_by_channel", {})))
    by_channel = ("all channels together, then each channel on its own scale" if len(channels) > 1
                  else f"all by {''.join(channels) or 'one channel'}")
    captions = {
        "conversions_over_time.png":
            "Each design's conversion rate of treated entries, counting the entries of the first days up to "
            "each day of entry whose goal window closed within the run (so a line's last point is the rate "
            f"in the tables), {_holdout_words(c)}. A line drawn over an equal one is thinner, so designs "
            "that convert alike show as one banded line; the first days rest on few entries and jump.",
        "messages_by_channel.png":
            f"Messages sent on each day of the run, a line per design, {by_channel}. A thinner line over a "
            "wider one of the same shape means the designs send alike there.",
        "pressure.png":
            "Left: how many messages each customer got in each whole week, over every customer (messaged or "
            "not), a bar per design; the legend gives each design's mean and 95th percentile. Right: the "
            "share of customers who opted out, grouped by the most messages they got in any one week; a "
            "curve that stops early never sent that many in a week, and groups under 20 customers are left "
            "out.",
        "suppressions.png":
            "Sends blocked by each policy rule, a bar per design in the legend's order: solid was skipped "
            "(dropped), hatched was deferred (delayed and tried again later, so it may have been sent after "
            "all); the number at a bar's end is all it blocked.",
        "agents.png":
            "Each queue that journeys escalate to, a bar per design (with its number of agents): the share "
            "of cases answered within the service-level target, the share abandoned before an answer, the "
            "mean wait, and how busy the agents were; the table above gives the counts.",
    }
    return {name: caption + first for name, caption in captions.items()}


def _holdout_words(c: dict[str, Any]) -> str:
    """How conversions_over_time.png draws the holdout, in words."""
    return {
        "shared": "against the dashed grey holdout, the same entries in every design: a design's gap above "
                  "it is its lift",
        "each": "each against its own holdout, dashed in its colour (the designs hold out different entries)",
        "none": "with no holdout line: no journey holds anyone out",
    }[holdout_drawn(c)]


def sweep_captions(s: dict[str, Any]) -> dict[str, str]:
    """The sweep's one figure, in words."""
    return {"frontier.png": (
        f"Each point of the grid, its {s['outcome_label']} against messages per customer (left) and "
        "against opt-outs per 1,000 customers (right); the red points are Pareto-optimal: no other "
        "point does better on the outcome at a lower cost. The axes span only the points' range, so "
        "small differences look large: read the values on the axes.")}
