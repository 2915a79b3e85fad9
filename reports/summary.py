"""The summary table printed after a run (rich)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from reports.attribution_view import attribution_reading, attribution_rows
from reports.paired import interval, signed


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def print_summary(console: Console, metrics: dict[str, Any]) -> None:
    """Print per-journey results, messages, suppressions, opt-outs and agent KPIs."""
    title = f"{metrics['scenario']}: {metrics['customers']:,} customers, {metrics['days']:g} days"
    table = Table(title=title)
    columns = ("journey", "entries", "holdout", "conv. treated", "conv. holdout", "lift (95% CI)",
               "revenue", "messages")
    for column in columns:
        table.add_column(column, justify="left" if column == "journey" else "right")
    for jid, j in metrics["journeys"].items():
        lift = j["lift"]
        lift_text = "-"
        if lift["lift"] is not None:
            low, high = 100 * lift["lift_ci95_low"], 100 * lift["lift_ci95_high"]
            lift_text = f"{signed(100 * lift['lift'], 2)} pp {interval(low, high, 2)}"
        table.add_row(
            jid,
            f"{j['entrants']:,}",
            f"{j['holdout']['entrants']:,}",
            _pct(j["treated"]["rate"]),
            _pct(j["holdout"]["rate"]),
            lift_text,
            f"{j['treated']['revenue'] + j['holdout']['revenue']:,.0f}",
            f"{sum(j['messages_by_channel'].values()):,}",
        )
    console.print(table)
    console.print("entries: journey entries (a customer may enter again after the re-entry period); "
                  "revenue in the scenario's currency units")
    for jid, j in metrics["journeys"].items():
        complete = j["treated"]["entrants_complete"] + j["holdout"]["entrants_complete"]
        console.print(f"{jid}: rates count {j['rate_basis']} ({complete:,} of {j['entrants']:,})"
                      + ("; run longer to measure them" if j["entrants"] and not complete else ""))
    messages = metrics["messages"]
    console.print(
        f"messages: {messages['total']:,} ({_pairs(messages['by_channel'])}); "
        f"per customer mean {messages['per_customer']['mean']:.2f}, max {messages['per_customer']['max']}"
    )
    if "pressure" in metrics:
        pressure = metrics["pressure"]
        console.print(f"contact pressure: {pressure['mean']:.2f} messages per customer per week, "
                      f"95th percentile {pressure['p95']:g}, most {pressure['max']}")
    suppressed, opt_outs = metrics["suppressed"], metrics["opt_outs"]
    deferred = suppressed.get("deferred_by_rule", {})
    skipped = {rule: n - deferred.get(rule, 0) for rule, n in suppressed["by_rule"].items()
               if n > deferred.get(rule, 0)}
    console.print(f"sends skipped by a rule: {sum(skipped.values()):,} ({_pairs(skipped)}); "
                  f"deferred and tried again later: {sum(deferred.values()):,} ({_pairs(deferred)})")
    console.print(f"opt-outs: {opt_outs['total']:,} ({_pairs(opt_outs['by_channel'])})")
    for sid, seg in metrics.get("segments", {}).items():
        console.print(f"segment {sid}: {seg['members']:,} members at the end ({seg['entered']:,} entries, "
                      f"{seg['left']:,} exits)")
    if (scoring := metrics.get("scoring")) is not None:
        fits = scoring["fits"]
        last = fits[-1] if fits else {}
        fitted = (", ".join(f"{k} {last[k]:.3g}" for k in ("r", "alpha", "a", "b")) if fits
                  else f"no fit ({scoring['fit_problem']})")
        console.print(f"scores: {scoring['passes']:,} passes, at most {scoring['every_s'] / 3600:g} h old; "
                      f"BG/NBD fitted {len(fits)} times, last {fitted}")
    for jid, j in metrics["journeys"].items():
        used = j.get("best_send_time", {})
        if sum(used.values()):
            console.print(f"{jid}: best send hour from the customer's own history {used['own_history']:,} "
                          f"times, the default {used['default']:,} times")
    for name, q in metrics.get("agents", {}).items():
        console.print(
            f"agents ({name}): {q['cases']:,} cases, "
            f"wait mean {q['wait_mean_s']:.0f} s, first response mean {q['first_response_mean_s']:.0f} s, "
            f"service level {_pct(q['service_level'])} within {q['service_level_target_s']:.0f} s, "
            f"resolution mean {q['resolution_mean_s'] / 60:.1f} min, abandoned {q['abandoned']:,}, "
            f"occupancy {_pct(q['occupancy'])}"
        )
    for jid, attributed in metrics.get("attribution", {}).items():
        if "truth" in attributed:  # (the models against what was caused: only when measured)
            headers, rows = attribution_rows(attributed)
            truth_table = Table(title=f"{jid}: conversions credited by each model, and caused")
            for i, column in enumerate(headers):
                truth_table.add_column(column, justify="left" if i == 0 else "right")
            for row in rows:
                truth_table.add_row(*map(str, row))
            console.print(truth_table)
            for line in attribution_reading(jid, attributed):
                console.print(line)


def _pairs(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in counts.items()) or "none"
