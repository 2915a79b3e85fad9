"""The pieces report pages are made of: tables, lists, figures with captions, numbers as words."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any, NamedTuple

from reports.figure_facts import DPI, SHOWN_DPI, Figures, step_label
from reports.paired import interval, signed


class Markup(str):
    """Text already in HTML (a table cell, a caption): shown as it is, not escaped."""


class Group(NamedTuple):
    """A row that heads the rows under it, across the whole table (a design, say)."""

    title: str


class Shown:
    """The bundle's figures, each placed once beside what it illustrates; any left over at the end."""

    def __init__(self, figures: Figures, captions: dict[str, str]) -> None:
        self.figures, self.captions = figures, captions
        self.placed: list[str] = []

    def __call__(self, *names: str) -> str:
        new = [n for n in names if n in self.figures and n not in self.placed]
        self.placed += new
        return "".join(figure_html(n, self.figures[n], self.captions.get(n, n)) for n in new)

    def rest(self) -> str:
        left = [n for n in sorted(self.figures) if n not in self.placed]
        return "<h2>Other figures</h2>" + self(*left) if left else ""


def figure_html(name: str, png: bytes, caption: str) -> str:
    width, height = (int.from_bytes(png[at:at + 4], "big") * SHOWN_DPI // DPI for at in (16, 20))  # IHDR
    return (f'<figure><img alt="{escape(name)}" width="{width}" height="{height}" '
            f'src="data:image/png;base64,{base64.b64encode(png).decode()}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


# -- tables and words --------------------------------------------------------------------------------


def meta(m: dict[str, Any]) -> str:
    facts = [f"{m['customers']:,} customers", f"{m['days']:g} days", f"seed {m['seed']}"]
    if m.get("replications", 1) > 1:
        facts.append(f"{m['replications']} replications")
    return f"<p class=\"meta\">{escape(', '.join(facts))}</p>"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any] | Group], text: Sequence[int] = (0,),
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


def legend(*entries: str) -> str:
    """The line under a table that says what its short headers mean."""
    text = "; ".join(entries)
    return f'<p class="legend">{escape(text[:1].upper() + text[1:])}.</p>'


def bullet_list(lines: Iterable[str]) -> str:
    return "<ul class=\"reading\">" + "".join(f"<li>{escape(line)}</li>" for line in lines) + "</ul>"


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def lift_cell(lift: dict[str, Any]) -> str:
    if lift["lift"] is None or lift["lift_ci95_low"] is None or lift["lift_ci95_high"] is None:
        return "-"
    low, high = 100 * lift["lift_ci95_low"], 100 * lift["lift_ci95_high"]
    return f"{signed(100 * lift['lift'], 2)} {interval(low, high, 2)}"


def pairs(counts: dict[str, Any], digits: int = 0) -> Markup:
    """``email 0.41 · push 0.30``, each pair kept on one line."""
    spans = (f'<span class="pair">{escape(k)} {v:,.{digits}f}</span>' for k, v in counts.items())
    return Markup(" · ".join(spans) or "none")


# -- the tables of a run's page (and a replay's) ----------------------------------------------


def funnel_table(j: dict[str, Any]) -> str:
    """A journey's funnel by step, and each split's arms, with the legend."""
    funnel = table(["step", "reached", "sent", "skipped", "deferred", "converted after it"],
                   [[step_label(r), r["reached"], r["sent"], r["skipped"], r["deferred"],
                     r["converted_after"]] for r in j["funnel"]])
    splits = "".join(
        table([f"split {step}: arm", "share", "reached", "converted after it"],
               [[a["next"], f"{a['share']:.2f}", a["reached"], a["converted_after"]] for a in arms])
        for step, arms in j["splits"].items()
    )
    return funnel + splits + legend(
        "counts of treated journey entries", "skipped: a rule blocked the send for good",
        "deferred: a rule (quiet hours, say) delayed it, and it was tried again later",
        "converted after it: entries that passed the step and converted later")


def counts_table(m: dict[str, Any]) -> str:
    """Messages by channel, sends skipped and deferred by rule, opt-outs by channel."""
    suppressed = m["suppressed"]
    deferred = suppressed.get("deferred_by_rule", {})
    skipped = {rule: n - deferred.get(rule, 0) for rule, n in suppressed["by_rule"].items()
               if n > deferred.get(rule, 0)}
    return table(["counted", "total", "by channel or rule"], [
        ["messages sent", m["messages"]["total"], pairs(m["messages"]["by_channel"])],
        ["sends skipped by a rule", sum(skipped.values()), pairs(skipped)],
        ["sends deferred, tried again later", sum(deferred.values()), pairs(deferred)],
        ["opt-outs", m["opt_outs"]["total"], pairs(m["opt_outs"]["by_channel"])],
    ], text=(0, 2))
