"""The report pages of a replay (``kind: replay``) and of designs replayed over one log
(``kind: replay-compare``), and their figures' captions; ``reports.html`` dispatches to them."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from reports.compare_figures import design_colour
from reports.figure_facts import Figures
from reports.figures import HIGH, WIDE, legend_outside, png
from reports.markup import Shown, bullet_list, counts_table, funnel_table, legend, pairs, table


def replay_page(m: dict[str, Any], shown: Shown) -> tuple[str, str]:
    """A replay's page: what the design would have done over the recorded history."""
    parts = [_log_meta(m), "<h2>Reading</h2>", bullet_list(replay_reading(m)), "<h2>Journeys</h2>"]
    parts.append(table(
        ["journey", "entries", "holdout entries", "conversions", "revenue", "messages", "by channel"],
        [[jid, j["entrants"], j["holdout"]["entrants"],
          j["treated"]["conversions"] + j["holdout"]["conversions"],
          f"{j['treated']['revenue'] + j['holdout']['revenue']:,.0f}",
          sum(j["messages_by_channel"].values()), pairs(j["messages_by_channel"])]
         for jid, j in m["journeys"].items()], text=(0, 6)))
    parts.append(legend(
        "entries: journey entries the recorded calls caused, treated and holdout",
        "conversions: the goals the log itself records (nothing answers a replayed send)",
        "sends.csv and suppressed.csv beside this page list each send and each blocked send"))
    for jid, j in m["journeys"].items():
        parts += [f"<h2>Funnel: {escape(jid)}</h2>", funnel_table(j), shown(f"funnel_{jid}.png")]
    parts += ["<h2>Messages, blocked sends, opt-outs</h2>", counts_table(m), shown("suppressions.png")]
    parts += ["<h2>The log</h2>", _log_table(m["log"])]
    return f"Touchpoint replay: {m['scenario']} over {m['log']['file']}", "".join(parts)


def replay_reading(m: dict[str, Any]) -> list[str]:
    """A replay in a few plain sentences."""
    log, messages = m["log"], m["messages"]
    lines = [f"{log['calls']:,} recorded calls from {m['customers']:,} customers, {log['first']} to "
             f"{log['until']} (journeys went on after the last call until then)."]
    for jid, j in m["journeys"].items():
        conversions = j["treated"]["conversions"] + j["holdout"]["conversions"]
        lines.append(f"{jid}: {j['entrants']:,} journey entries ({j['holdout']['entrants']:,} held out); "
                     f"{conversions:,} of them reached the goal in the recorded history.")
    per = messages["per_customer"]
    channels = ", ".join(f"{n:,} by {c}" for c, n in messages["by_channel"].items())
    lines.append(f"The design would have sent {messages['total']:,} messages ({channels or 'none'}) to "
                 f"{per['customers_reached']:,} customers, at most {per['max']:,} to one.")
    rules = m["suppressed"]["by_rule"]
    by_rule = ", ".join(f"{n:,} by {r.replace('_', ' ')}" for r, n in rules.items())
    lines.append(f"Rules blocked {by_rule}." if rules else "No send was blocked by a rule.")
    if log["malformed"]:
        lines.append(f"{log['malformed']:,} malformed lines were skipped (listed under The log).")
    return lines


def replay_compare_page(c: dict[str, Any], shown: Shown) -> tuple[str, str]:
    """Designs replayed over one log, side by side, and each against the first."""
    designs = c["designs"]
    channels = sorted({ch for d in designs for ch in d["by_channel"]})
    rules = sorted({r for d in designs for r in d["suppressed_by_rule"]})
    rows = [["entries", *(d["entrants"] for d in designs)],
            ["conversions", *(d["conversions"] for d in designs)],
            ["messages", *(d["messages"] for d in designs)],
            *([f"  by {ch}", *(d["by_channel"].get(ch, 0) for d in designs)] for ch in channels),
            ["customers messaged", *(d["customers_messaged"] for d in designs)],
            *([f"suppressed: {r}", *(d["suppressed_by_rule"].get(r, 0) for d in designs)] for r in rules),
            ["escalations", *(d["escalations"] for d in designs)]]
    parts = [_log_meta(c), "<h2>Reading</h2>", bullet_list(_compare_reading(c)), "<h2>Designs</h2>",
             table(["", *(d["design"] for d in designs)], rows), shown("replay_designs.png"),
             legend("each design replayed over the same recorded calls; each one's own page is in its "
                    "folder")]
    parts += ["<h2>The log</h2>", _log_table(c["log"])]
    return f"Touchpoint replay: {len(designs)} designs over {c['log']['file']}", "".join(parts)


def _compare_reading(c: dict[str, Any]) -> list[str]:
    lines = []
    for d in c["differences"]:
        channels = ", ".join(f"{n:+,} by {ch}" for ch, n in d["by_channel"].items() if n)
        more = "more" if d["messages"] >= 0 else "fewer"
        lines.append(
            f"{d['design']} would have sent {abs(d['messages']):,} messages {more} than {d['baseline']} "
            f"({channels or 'the same by channel'}); {d['customers_whose_messages_differ']:,} customers "
            "would have got a different number of messages: "
            f"{d['customers_messaged_only_here']:,} messaged only by {d['design']}, "
            f"{d['customers_messaged_only_by_baseline']:,} only by {d['baseline']}.")
        blocked = ", ".join(f"{n:+,} {r.replace('_', ' ')}" for r, n in d["suppressed_by_rule"].items() if n)
        if blocked:
            lines.append(f"Sends blocked, {d['design']} against {d['baseline']}: {blocked}.")
    return lines


def replay_captions(m: dict[str, Any]) -> dict[str, str]:
    return {"replay_designs.png": "Messages each design would have sent over the recorded history, by "
                                  "channel (left), and sends each rule blocked (right), one bar per design."}


def replay_compare_figures(c: dict[str, Any]) -> Figures:
    """Messages by channel and suppressions by rule, a bar per design."""
    designs = c["designs"]
    fig, axes = plt.subplots(1, 2, figsize=(WIDE * 1.3, HIGH))
    for ax, key, title in ((axes[0], "by_channel", "messages by channel"),
                           (axes[1], "suppressed_by_rule", "sends blocked, by rule")):
        _bars(ax, designs, key)
        ax.set_title(title)
    legend_outside(axes[1], "design")
    return {"replay_designs.png": png(fig)}


def _bars(ax: Any, designs: Sequence[dict[str, Any]], key: str) -> None:
    labels = sorted({k for d in designs for k in d[key]})
    x = np.arange(len(labels))
    width = 0.8 / len(designs)
    for i, d in enumerate(designs):
        ax.bar(x + i * width - 0.4 + width / 2, [d[key].get(k, 0) for k in labels], width,
               color=design_colour(i), label=d["design"])
    ax.set_xticks(x, [k.replace("_", " ") for k in labels] or [""])
    if not labels:
        ax.text(0.5, 0.5, "none", ha="center", va="center", transform=ax.transAxes, color="#666")


def _log_meta(m: dict[str, Any]) -> str:
    log = m["log"]
    return (f'<p class="meta">{escape(log["file"])}: {log["lines"]:,} lines, {log["calls"]:,} calls, '
            f'{m["customers"]:,} customers, {log["first"]} to {log["until"]}</p>')


def _log_table(log: dict[str, Any]) -> str:
    rows = [["lines", log["lines"]], ["calls", log["calls"]], ["malformed lines, skipped", log["malformed"]],
            ["duplicate messages (a client's retries), applied once", log["duplicates"]],
            ["calls out of time order beyond the reorder window (applied late)", log["late"]],
            ["receipts the log holds", log["receipts"]]]
    page = table(["", "count"], rows)
    if log["malformed_lines"]:
        shown = [[e["line"], e["reason"]] for e in log["malformed_lines"]]
        page += table(["malformed line", "reason"], shown, text=(1,))
        if log["malformed"] > len(log["malformed_lines"]):
            page += legend(f"the first {len(log['malformed_lines'])} of {log['malformed']:,}")
    return page
