"""One self-contained ``report.html`` per bundle: tables, a plain reading, the figures inline.

The page needs no server and no network: its style is inline and each figure is a PNG embedded
as a data URI. It is built from ``metrics.json`` and the figures alone (``touchpoint report DIR``
builds it again from them).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from reports.figures import Figures

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; } .reading li { margin: 0.3em 0; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
.meta { color: #666; }
"""


def report_html(metrics: dict[str, Any], figures: Figures) -> str:
    """The page for a bundle of any kind (``metrics["kind"]``: run, compare or sweep)."""
    kind = metrics.get("kind", "run")
    if kind == "compare":
        title, body = _compare(metrics)
    elif kind == "sweep":
        title, body = _sweep(metrics)
    else:
        title, body = _run(metrics)
    shown = "".join(
        f'<figure><img alt="{escape(name)}" src="data:image/png;base64,'
        f'{base64.b64encode(png).decode()}"><figcaption>{escape(name)}</figcaption></figure>'
        for name, png in sorted(figures.items())
    )
    return (
        f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{escape(title)}</h1>{body}<h2>Figures</h2>{shown}</body></html>\n"
    )


# -- kinds ---------------------------------------------------------------------------------------


def _run(m: dict[str, Any]) -> tuple[str, str]:
    title = f"Touchpoint run: {m['scenario']}"
    parts = [_meta(m), "<h2>Reading</h2>", _list(run_reading(m)), "<h2>Journeys</h2>"]
    rows = []
    for jid, j in m["journeys"].items():
        lift = j["lift"]
        rows.append([
            jid, f"{j['entrants']:,}", f"{j['holdout']['entrants']:,}", _pct(j["treated"]["rate"]),
            _pct(j["holdout"]["rate"]), _interval(*_lift(lift)),
            f"{j['treated']['revenue'] + j['holdout']['revenue']:,.0f}",
            f"{sum(j['messages_by_channel'].values()):,}",
        ])
    parts.append(_table(["journey", "entrants", "holdout", "conv. treated", "conv. holdout",
                         "lift, points (95% CI)", "revenue", "messages"], rows))
    parts.append("<p class=\"meta\">" + " ".join(
        escape(f"{jid}: rates count {j['rate_basis']}.") for jid, j in m["journeys"].items()) + "</p>")
    for jid, j in m["journeys"].items():
        parts.append(f"<h2>Funnel: {escape(jid)}</h2>")
        parts.append(_table(["step", "reached", "sent", "skipped", "deferred", "converted after it"],
                            [[r["step"], r["reached"], r["sent"], r["skipped"], r["deferred"],
                              r["converted_after"]] for r in j["funnel"]]))
    parts.append("<h2>Messages, suppressions, opt-outs</h2>")
    parts.append(_table(["", "total", "by kind"], [
        ["messages", f"{m['messages']['total']:,}", _pairs(m["messages"]["by_channel"])],
        ["suppressed", f"{m['suppressed']['total']:,}", _pairs(m["suppressed"]["by_rule"])],
        ["opt-outs", f"{m['opt_outs']['total']:,}", _pairs(m["opt_outs"]["by_channel"])],
    ]))
    return title, "".join(parts)


def run_reading(m: dict[str, Any]) -> list[str]:
    """A run in a few plain sentences."""
    lines = []
    for jid, j in m["journeys"].items():
        t, h, lift = j["treated"], j["holdout"], j["lift"]
        if t["rate"] is None:
            lines.append(f"{jid}: {j['entrants']:,} entrants, none whose goal window fits in the run yet.")
            continue
        line = f"{jid}: {j['entrants']:,} entrants; {100 * t['rate']:.1f}% of treated entrants converted"
        if lift["lift"] is not None:
            significant = lift["lift_ci95_low"] > 0 or lift["lift_ci95_high"] < 0
            line += (f" against {100 * h['rate']:.1f}% of the holdout: the journey "
                     f"{'adds' if lift['lift'] > 0 else 'costs'} {abs(100 * lift['lift']):.1f} points "
                     f"[{100 * lift['lift_ci95_low']:+.1f}, {100 * lift['lift_ci95_high']:+.1f}]"
                     f"{'' if significant else ', not distinguishable from no effect'}")
        lines.append(line + ".")
    per = m["messages"]["per_customer"]
    lines.append(f"{m['messages']['total']:,} messages, {per['mean']:.2f} per customer; "
                 f"{m['opt_outs']['total']:,} opt-outs ({m['opt_outs']['per_1000_customers']:.2f} per 1,000 "
                 f"customers); {m['suppressed']['total']:,} sends suppressed.")
    if "pressure" in m:
        p = m["pressure"]
        lines.append(f"Contact pressure: {p['mean']:.2f} messages per customer per week on average, "
                     f"95th percentile {p['p95']:g}, most {p['max']}.")
    return lines


def _compare(c: dict[str, Any]) -> tuple[str, str]:
    first = c["designs"][0]
    title = f"Touchpoint compare: {', '.join(d['name'] for d in c['designs'])}"
    parts = [_meta(c), "<h2>Reading</h2>", _list(c["reading"]), "<h2>Designs</h2>"]
    jid = next(iter(first["journeys"]))
    parts.append(_table(
        ["design", "entrants", "conv. treated", "conv. holdout", "lift, points (95% CI)",
         "messages per customer", "revenue per message", "opt-outs per 1,000",
         "pressure mean / p95 a week", "conversions per 1,000 messages"],
        [[d["name"], f"{d['journeys'][jid]['entrants']:,}", _pct(d["journeys"][jid]["treated"]["rate"]),
          _pct(d["journeys"][jid]["holdout"]["rate"]), _interval(*_lift(d["journeys"][jid]["lift"])),
          f"{d['messages_per_customer']:.2f}", _num(d["revenue_per_message"]),
          f"{d['opt_outs_per_1000_customers']:.2f}",
          f"{_num(d['pressure_mean'])} / {_num(d['pressure_p95'], 0)}",
          _num(d["conversions_per_1000_messages"], 1)] for d in c["designs"]],
    ))
    parts.append(f"<p class=\"meta\">{escape(jid)}; conversions per message count "
                 f"{escape(first['per_message_basis'])}. Descriptions: "
                 + "; ".join(escape(f"{d['name']}: {d['description'] or '-'}") for d in c["designs"])
                 + "</p>")
    if c["differences"]:
        parts.append(f"<h2>Against the baseline ({escape(c['baseline'])}), paired by customer</h2>")
        rows = []
        for diff in c["differences"]:
            for label, d in (
                *((f"conversion, {j} (points)", v) for j, v in diff["conversion_rate_points"].items()),
                ("messages per customer", diff["messages_per_customer"]),
                ("revenue per customer", diff["revenue_per_customer"]),
                ("opt-outs per 1,000 customers", diff["opt_outs_per_1000_customers"]),
            ):
                if d is not None:
                    rows.append([diff["design"], label, f"{d['difference']:+.3f}",
                                 f"[{d['low']:+.3f}, {d['high']:+.3f}]", f"{d['width']:.3f}",
                                 f"{d['width_independent']:.3f}"])
        parts.append(_table(["design", "difference in", "estimate", "95% interval (paired)",
                             "width", "width with independent populations"], rows))
    parts.append("<h2>By design</h2>")
    parts.append(_table(["design", "messages per customer by channel", "opt-outs by channel",
                         "suppressed by rule"],
                        [[d["name"], _pairs(d["messages_per_customer_by_channel"], 3),
                          _pairs(d["opt_outs_by_channel"]), _pairs(d["suppressed_by_rule"])]
                         for d in c["designs"]]))
    for run in c["runs"]:
        for journey, j in run["metrics"]["journeys"].items():
            parts.append(f"<h3>Funnel: {escape(run['name'])}, {escape(journey)}</h3>")
            parts.append(_table(["step", "reached", "sent", "skipped", "deferred", "converted after it"],
                                [[r["step"], r["reached"], r["sent"], r["skipped"], r["deferred"],
                                  r["converted_after"]] for r in j["funnel"]]))
            for step, arms in j["splits"].items():
                parts.append(_table([f"split {step}: arm", "share", "reached", "converted after it"],
                                    [[a["next"], f"{a['share']:.2f}", a["reached"], a["converted_after"]]
                                     for a in arms]))
    return title, "".join(parts)


def _sweep(s: dict[str, Any]) -> tuple[str, str]:
    title = f"Touchpoint sweep: {s['scenario']}"
    names = list(s["settings"])
    parts = [_meta(s), "<h2>Reading</h2>", _list(s["reading"]), "<h2>Points</h2>"]
    parts.append(_table(
        ["point", *names, s["outcome_label"], "messages per customer", "opt-outs per 1,000",
         "Pareto: messages", "Pareto: opt-outs"],
        [[p["name"], *(str(p["settings"][n]) for n in names), f"{p[s['outcome']]:.4g}",
          f"{p['messages_per_customer']:.3f}", f"{p['opt_outs_per_1000_customers']:.2f}",
          "yes" if p["pareto_messages"] else "", "yes" if p["pareto_opt_outs"] else ""]
         for p in s["points"]],
    ))
    return title, "".join(parts)


# -- pieces --------------------------------------------------------------------------------------


def _meta(m: dict[str, Any]) -> str:
    facts = [f"{m['customers']:,} customers", f"{m['days']:g} days", f"seed {m['seed']}"]
    if m.get("replications", 1) > 1:
        facts.append(f"{m['replications']} replications")
    return f"<p class=\"meta\">{escape(', '.join(facts))}</p>"


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _list(lines: Iterable[str]) -> str:
    return "<ul class=\"reading\">" + "".join(f"<li>{escape(line)}</li>" for line in lines) + "</ul>"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _lift(lift: dict[str, Any]) -> tuple[Any, Any, Any]:
    return lift["lift"], lift["lift_ci95_low"], lift["lift_ci95_high"]


def _interval(value: float | None, low: float | None, high: float | None) -> str:
    if value is None or low is None or high is None:
        return "-"
    return f"{100 * value:+.2f} [{100 * low:+.2f}, {100 * high:+.2f}]"


def _pairs(counts: dict[str, Any], digits: int = 0) -> str:
    return ", ".join(f"{k} {v:,.{digits}f}" for k, v in counts.items()) or "none"
