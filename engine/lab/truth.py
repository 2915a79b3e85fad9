"""What each channel's messages caused: the truth attribution models estimate, known in simulation.

A channel's messages are *unnoticed* when customers get them and nothing follows: no open,
click, purchase or opt-out, no contact pressure (``scenarios.responses.Audience``). The same
population, with the world's common random numbers, is run once for each subset S of the
channels the program sends on, with only S noticed; each journey's conversions v(S) then differ
between runs only by what the messages did, customer by customer. So, per journey:

    caused(c)   the Shapley value of channel c in v: what c adds to the channels before it,
                averaged over every order of the channels. The values add up to
                v(all) - v(none): every conversion the messages caused, none counted twice.
    removal(c)  v(all) - v(all but c): what would be lost without c alone (the removal effect
                that the Markov model estimates, measured)

A model is scored against caused: ``share_distance`` is half the L1 distance between the shares
of the credit it gives each channel and the shares of the truth (0: the same split; 1: none in
common), and ``credited`` its total beside the caused total: a model credits every conversion
that had a touch, including those the customer would have made anyway.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from itertools import combinations
from typing import Any

from actors.journey import Program, SendStep
from engine.lab.runs import Job

MAX_CHANNELS = 6  # 2**6 = 64 runs of the population


def sent_channels(program: Program) -> list[str]:
    """The channels some send step of ``program`` may use, sorted."""
    return sorted({channel for journey in program.journeys for step in journey.steps.values()
                   if isinstance(step, SendStep) for channel in step.channels})


def truth_jobs(job: Job, channels: Sequence[str]) -> list[Job]:
    """``job`` itself (every channel noticed) and one job per other subset of ``channels``
    noticed, the rest unnoticed; the first is ``job``.

    Raises:
        ValueError: more than ``MAX_CHANNELS`` channels (too many runs).
    """
    if len(channels) > MAX_CHANNELS:
        raise ValueError(f"{len(channels)} channels would take {2 ** len(channels)} runs; the truth is "
                         f"measured for at most {MAX_CHANNELS}")
    every = frozenset(channels)
    return [dataclasses.replace(job, unnoticed=every - noticed) for noticed in _subsets(channels)]


def _subsets(channels: Sequence[str]) -> list[frozenset[str]]:
    """Every subset of ``channels``, the whole set first."""
    return [frozenset(s) for size in range(len(channels), -1, -1) for s in combinations(channels, size)]


def true_credit(conversions: dict[frozenset[str], float], channels: Sequence[str]) -> dict[str, Any]:
    """Each channel's caused conversions (Shapley) and removal effect, from ``conversions``: v(S)
    for every subset S of ``channels`` noticed."""
    n, every = len(channels), frozenset(channels)
    caused = {}
    for channel in channels:
        others = [c for c in channels if c != channel]
        total = 0.0
        for size in range(n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for before in combinations(others, size):
                s = frozenset(before)
                total += weight * (conversions[s | {channel}] - conversions[s])
        caused[channel] = total
    return {
        "caused": caused,
        "removal": {c: conversions[every] - conversions[every - {c}] for c in channels},
        "total_caused": conversions[every] - conversions[frozenset()],
        "conversions": {"+".join(sorted(s)) or "none": v for s, v in sorted(
            conversions.items(), key=lambda item: (-len(item[0]), sorted(item[0])))},
    }


def score(models: dict[str, dict[str, float]], caused: dict[str, float]) -> dict[str, Any]:
    """Each model's distance from the truth (module docstring), and the closest model."""
    truth = _shares(caused)
    scores = {}
    for model, credit in models.items():
        shares = _shares(credit)
        distance = None if truth is None or shares is None else 0.5 * sum(
            abs(shares.get(c, 0.0) - truth.get(c, 0.0)) for c in set(shares) | set(truth))
        scores[model] = {"share_distance": distance, "credited": sum(credit.values())}
    ranked = sorted((s["share_distance"], m) for m, s in scores.items() if s["share_distance"] is not None)
    return {"models": scores, "closest": ranked[0][1] if ranked else None}


def _shares(credit: dict[str, float]) -> dict[str, float] | None:
    """Each channel's share of the credit, or None when the credit is not positive in all (a
    negative truth, say: the messages cost conversions; shares of it mean nothing)."""
    total = sum(credit.values())
    if total <= 0 or any(v < 0 for v in credit.values()):
        return None
    return {c: v / total for c, v in credit.items()}


def attach_truth(metrics: dict[str, Any], runs: Iterable[tuple[frozenset[str], dict[str, Any]]],
                 channels: Sequence[str]) -> None:
    """Add, per journey of ``metrics`` (the run with every channel noticed), the truth from
    ``runs`` (``(unnoticed, metrics)`` of every subset) and each model's score, under
    ``metrics["attribution"][journey]["truth"]``."""
    every = frozenset(channels)
    by_subset = {every - unnoticed: m for unnoticed, m in runs}
    for jid, journey in metrics["journeys"].items():
        conversions = {s: _conversions(m["journeys"][jid]) for s, m in by_subset.items()}
        truth = true_credit(conversions, channels)
        complete = {s: _conversions(m["journeys"][jid], "conversions_complete") for s, m in by_subset.items()}
        lift, treated = journey["lift"], journey["treated"]["entrants_complete"]
        attributed = metrics.setdefault("attribution", {}).setdefault(jid, {"paths": [], "models": {}})
        attributed["truth"] = {
            **truth,
            # the holdout's basis: entries whose goal window closed within the run
            "total_caused_complete": complete[every] - complete[frozenset()],
            "holdout_incremental": journey.get("incremental_conversions"),
            "holdout_incremental_ci95": None if lift["lift"] is None else [
                lift["lift_ci95_low"] * treated, lift["lift_ci95_high"] * treated],
            "scores": score(attributed.get("models", {}), truth["caused"]),
        }


def _conversions(journey: dict[str, Any], key: str = "conversions") -> float:
    return float(journey["treated"][key] + journey["holdout"][key])
