"""A run's attribution, shown: per journey and channel, each model's credit beside the
incremental conversions the holdout measures and, with ``--truth``, the conversions the
channel's messages caused (``engine.lab.truth``), each model scored by its distance from them.

``attribution_rows`` gives the table as plain cells (the page and the console both show it);
``attribution_html`` the page's section; ``attribution_reading`` its sentences.
"""

from __future__ import annotations

from html import escape
from typing import Any

from reports.attribution import MODELS
from reports.markup import Group, bullet_list, legend, table

TRUTH_COLUMNS = ("caused (measured)", "removal effect")


def attribution_rows(attributed: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """Headers and rows: a row per channel, then the totals, then each model's distance."""
    models = attributed.get("models", {})
    truth = attributed.get("truth")
    names = sorted(models, key=lambda m: (MODELS.index(m) if m in MODELS else len(MODELS), m))  # (as
    # ``touchpoint attribute`` lists them, however metrics.json ordered its keys)
    caused = (truth or {}).get("caused", {})
    channels = sorted({c for credit in models.values() for c in credit} | set(caused))
    headers = ["channel", *names, *(TRUTH_COLUMNS if truth else ())]
    rows: list[list[Any]] = []
    for channel in channels:
        row = [channel, *(_number(models[m].get(channel, 0.0)) for m in names)]
        if truth:
            row += [_number(truth["caused"].get(channel, 0.0)), _number(truth["removal"].get(channel, 0.0))]
        rows.append(row)
    total = ["total", *(_number(sum(models[m].values())) for m in names)]
    if truth:
        total += [_number(truth["total_caused"]), "-"]
        scores = truth["scores"]["models"]
        distance = ["distance from caused",
                    *(_share(scores.get(m, {}).get("share_distance")) for m in names), "0", "-"]
        rows += [total, distance]
    else:
        rows.append(total)
    return headers, rows


def attribution_reading(jid: str, attributed: dict[str, Any]) -> list[str]:
    """What the table says, in sentences."""
    truth = attributed.get("truth")
    models = attributed.get("models", {})
    if not models:
        return [f"{jid}: no conversion after a send, so nothing to attribute."]
    credited = sum(next(iter(models.values())).values())
    if not truth:
        return [f"{jid}: the models share {credited:,.0f} conversions that came after a send among the "
                "channels; run with --truth to measure what each channel's messages caused."]
    lines = [f"{jid}: the models credit {credited:,.0f} conversions that came after a send; the messages "
             f"caused {truth['total_caused']:,.0f} of the journey's conversions (the same customers with "
             "every channel unnoticed convert that many fewer)."]
    holdout, interval = truth.get("holdout_incremental"), truth.get("holdout_incremental_ci95")
    if holdout is not None and interval is not None:
        lines.append(f"Among entries whose goal window closed within the run, the messages caused "
                     f"{truth['total_caused_complete']:,.0f} conversions; the holdout estimates "
                     f"{holdout:,.0f} [{interval[0]:,.0f}, {interval[1]:,.0f}] from those same entries.")
    closest = truth["scores"]["closest"]
    if closest is not None:
        distance = truth["scores"]["models"][closest]["share_distance"]
        lines.append(f"By how it splits the credit among channels, {closest} comes closest to what each "
                     f"channel caused (distance {distance:.3f}; 0 is the same split).")
    return lines


def attribution_html(metrics: dict[str, Any]) -> str:
    """The run page's attribution section ("" when the run has no paths)."""
    attribution = {jid: a for jid, a in metrics.get("attribution", {}).items() if a.get("models")}
    if not attribution:
        return ""
    parts = ["<h2>Attribution</h2>"]
    for jid, attributed in attribution.items():
        headers, rows = attribution_rows(attributed)
        parts += [f"<h3>{escape(jid)}</h3>", bullet_list(attribution_reading(jid, attributed)),
                  table(headers, rows)]
    truth = any("truth" in a for a in attribution.values())
    parts.append(legend(
        "conversions credited to each channel by each model, on the journey's conversion paths (the paths-"
        "JOURNEY.csv files beside this page)",
        *(("caused: the conversions each channel's messages caused, measured by running the same customers "
           "with channels unnoticed and shared among channels by the Shapley value",
           "removal effect: the conversions lost when only that channel goes unnoticed",
           "distance: half the sum of the differences between a model's shares of the credit and the shares "
           "of what was caused (0: the same split, 1: none in common)") if truth else ()),
    ))
    return "".join(parts)


def compare_attribution_html(c: dict[str, Any]) -> str:
    """A compare page's attribution section: per journey, each design's credit by model and
    channel (its first replication's paths: the bundle's paths-DESIGN-JOURNEY.csv)."""
    runs = [(run["name"], run["metrics"].get("attribution", {})) for run in c["runs"]]
    journeys = sorted({jid for _, attribution in runs for jid, a in attribution.items() if a.get("models")})
    if not journeys:
        return ""
    parts = ["<h2>Attribution, design by design</h2>"]
    for jid in journeys:
        rows: list[Any] = []
        headers: list[str] = []
        for name, attribution in runs:
            attributed = attribution.get(jid, {})
            if not attributed.get("models"):
                continue
            headers, design_rows = attribution_rows(attributed)
            rows += [Group(name), *design_rows]
        parts += [f"<h3>{escape(jid)}</h3>", table(headers, rows)]
    parts.append(legend("conversions credited to each channel by each model, on each design's conversion "
                        "paths (its first replication's, in the paths-DESIGN-JOURNEY.csv files beside this "
                        "page); touchpoint run --truth measures what each channel caused"))
    return "".join(parts)


def _number(value: float) -> str:
    return f"{value:,.1f}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
