"""A sweep: a grid of settings, each point a design run on the same customers.

``grid`` reads ``--set PATH=V1,V2`` options into the points of their product (or a random
sample of it); ``run_points`` runs the points not yet in the cache, on a process pool or a Dask
cluster, and stores each as it completes, so an interrupted sweep resumes where it stopped;
``sweep_result`` marks the Pareto-optimal points and says what the frontier shows.

A point's cache key is the hash of what decides its result: the scenario file's bytes, the
point's settings, the population (customers, days, seed) and the engine's own code.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import random
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actors import ScenarioError
from engine.lab.runs import Design, Job, Progress, run_jobs, simulate
from engine.scenario_files import load_scenario, resolve
from reports.comparison import DesignResult, headline

OUTCOMES = {  # outcome: (label, short label)
    "conversion": ("conversion rate of treated entrants (%)", "conv. %"),
    "revenue": ("revenue per customer", "revenue/cust."),
    "incremental": ("incremental conversions per 1,000 customers", "incr. conv./1k"),
}


@dataclass(frozen=True)
class Point:
    """One point of a sweep: a name for reports and the values it sets, by dotted path."""

    name: str
    settings: Mapping[str, Any]


def parse_set(option: str) -> tuple[str, list[Any]]:
    """``"policy.caps.0.max=1,2,3"`` -> ``("policy.caps.0.max", [1, 2, 3])``.

    Values read as TOML where they are TOML (numbers, booleans, quoted strings), else as plain
    strings (``30m``).

    Raises:
        ValueError: no ``=``, an empty path or no value.
    """
    path, equals, values = option.partition("=")
    path = path.strip()
    if not equals or not path or not values.strip():
        raise ValueError(f"--set {option!r}: expected PATH=VALUE[,VALUE...], e.g. policy.caps.0.max=1,2,3")
    parsed = [_value(text.strip()) for text in values.split(",")]
    if any(text == "" for text in parsed):
        raise ValueError(f"--set {option!r}: an empty value")
    return path, parsed


def grid(settings: Sequence[tuple[str, list[Any]]], sample: int | None = None, seed: int = 1,
         ) -> list[Point]:
    """The points of the product of ``settings`` (in order), or ``sample`` of them drawn at random
    (without replacement, in grid order, the same for the same seed)."""
    paths = [path for path, _ in settings]
    if len(set(paths)) < len(paths):
        raise ValueError("a path is set twice; give all its values in one --set")
    labels = _labels(paths)
    combos = list(itertools.product(*(values for _, values in settings)))
    if sample is not None and sample < len(combos):
        chosen = sorted(random.Random(seed).sample(range(len(combos)), sample))
        combos = [combos[i] for i in chosen]
    return [
        Point(", ".join(f"{label}={_text(v)}" for label, v in zip(labels, combo, strict=True)),
              dict(zip(paths, combo, strict=True)))
        for combo in combos
    ]


def check_points(source: str, points: Iterable[Point]) -> None:
    """Load every point's scenario once, so a bad path or value stops the sweep before it runs.

    Raises:
        ScenarioError: naming the point's setting that the scenario refuses.
    """
    scenario = load_scenario(source)
    for point in points:
        scenario.with_settings(point.settings, point.name)


def cache_key(scenario: str, point: Point, customers: int, days: float, seed: int) -> str:
    """What decides a point's result, hashed (``scenario``: the hash of the scenario file)."""
    described = json.dumps(
        {
            "scenario": scenario,
            "settings": {path: point.settings[path] for path in sorted(point.settings)},
            "customers": customers,
            "days": days,
            "seed": seed,
            "code": _code_version(),
        },
        sort_keys=True,
    )
    return hashlib.sha256(described.encode()).hexdigest()[:32]


def point_figures(job: Job, on_progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    """Run one point and return its headline figures (the design's, as a compare gives them)."""
    run = simulate(job, on_progress, paths=False)  # (a point's figures hold no attribution)
    figures = headline(DesignResult(job.design.name, "", [run.metrics], [run.outcomes]))
    figures["wall_seconds"] = run.wall_seconds
    return figures


def run_points(
    source: str,
    points: Sequence[Point],
    customers: int,
    days: float,
    seed: int,
    cache: Path,
    *,
    workers: int | None = None,
    dask: str | None = None,
    on_progress: Progress | None = None,
    on_cached: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """Each point's figures, in order: from ``cache`` where a run left them, else run (on a process
    pool of ``workers``, or on the Dask scheduler at ``dask``) and stored there as each completes.

    ``on_cached(index)`` is called for each point found in the cache, ``on_progress(index,
    simulated seconds)`` as the others advance (only on the local pool), and with the run's end
    when each completes.
    """
    cache.mkdir(parents=True, exist_ok=True)
    scenario = hashlib.sha256(resolve(source).read_bytes()).hexdigest()  # (read once, not per point)
    keys = [cache_key(scenario, p, customers, days, seed) for p in points]
    found: dict[int, dict[str, Any]] = {}
    for index, key in enumerate(keys):
        stored = _read_cached(cache / f"{key}.json")
        if stored is not None:
            found[index] = stored
            if on_cached is not None:
                on_cached(index)
    missing = [i for i in range(len(points)) if i not in found]
    jobs = [Job(Design(points[i].name, source, None, dict(points[i].settings)), customers, days, seed)
            for i in missing]

    def store(position: int, figures: dict[str, Any]) -> None:
        index = missing[position]
        text = json.dumps(figures, sort_keys=True)
        found[index] = json.loads(text)  # (as the cache gives it back: lists, not tuples)
        _write_cached(cache / f"{keys[index]}.json", text)
        if on_progress is not None:
            on_progress(index, days * 86_400.0)

    def progress(position: int, at: float) -> None:
        if on_progress is not None:
            on_progress(missing[position], at)

    if jobs and dask is not None:
        _run_on_dask(dask, jobs, store)
    elif jobs:
        run_jobs(jobs, workers, progress, task=point_figures, on_done=store)
    return [found[i] for i in range(len(points))]


def sweep_result(points: Sequence[Point], figures: Sequence[dict[str, Any]], outcome: str,
                 ) -> list[dict[str, Any]]:
    """The sweep's rows: each point's settings and figures, the outcome in ``OUTCOMES`` units, and
    whether it is Pareto-optimal against messages per customer and against opt-outs."""
    rows = []
    for point, f in zip(points, figures, strict=True):
        rows.append({
            "name": point.name,
            "settings": dict(point.settings),
            outcome: outcome_value(f, outcome),
            "messages_per_customer": f["messages_per_customer"],
            "opt_outs_per_1000_customers": f["opt_outs_per_1000_customers"],
            "revenue_per_message": f["revenue_per_message"],
            "pressure_p95": f["pressure_p95"],
            "wall_seconds": f["wall_seconds"],
        })
    for cost, mark in (("messages_per_customer", "pareto_messages"),
                       ("opt_outs_per_1000_customers", "pareto_opt_outs")):
        optimal = pareto([(row[outcome], row[cost]) for row in rows])
        for row, is_optimal in zip(rows, optimal, strict=True):
            row[mark] = is_optimal
    return rows


def outcome_value(figures: dict[str, Any], outcome: str) -> float:
    """A point's outcome: the treated conversion rate in percent (on entrants whose goal window
    fits in the run), revenue per customer, or incremental conversions per 1,000 customers."""
    journeys = figures["journeys"].values()
    if outcome == "conversion":
        entrants = sum(j["treated"]["entrants_complete"] for j in journeys)
        conversions = sum(j["treated"]["conversions_complete"] for j in journeys)
        return 100.0 * float(conversions) / entrants if entrants else 0.0
    if outcome == "revenue":
        return float(figures["revenue"]) / figures["customers"]
    if outcome == "incremental":
        incremental = [j["incremental_conversions"] for j in journeys]
        if any(value is None for value in incremental):
            raise ScenarioError("--outcome incremental needs a holdout in every journey")
        return 1000.0 * float(sum(incremental)) / figures["customers"]
    raise ValueError(f"unknown outcome {outcome!r}; known: {', '.join(OUTCOMES)}")


def pareto(points: Sequence[tuple[float, float]]) -> list[bool]:
    """For each ``(value, cost)``: True when no other point is at least as good on both and
    strictly better on one (more value, less cost)."""
    return [
        not any(
            (v2 >= v and c2 <= c) and (v2 > v or c2 < c)
            for j, (v2, c2) in enumerate(points) if j != i
        )
        for i, (v, c) in enumerate(points)
    ]


def reading(rows: Sequence[dict[str, Any]], outcome: str) -> list[str]:
    """What the frontier says, in plain sentences."""
    label = OUTCOMES[outcome][0].split(" (")[0]
    unit = "%" if outcome == "conversion" else ""
    best = max(rows, key=lambda r: r[outcome])
    cheapest = min(rows, key=lambda r: r["messages_per_customer"])
    optimal = [r["name"] for r in rows if r["pareto_messages"]]
    return [
        f"Highest {label}: {best['name']}, {best[outcome]:.4g}{unit}, at {best['messages_per_customer']:.3f} "
        f"messages per customer and {best['opt_outs_per_1000_customers']:.2f} opt-outs per 1,000 "
        f"customers.",
        f"Fewest messages: {cheapest['name']}, {cheapest['messages_per_customer']:.3f} per customer, "
        f"for {label} {cheapest[outcome]:.4g}{unit}.",
        f"Pareto-optimal against messages per customer ({len(optimal)} of {len(rows)} points): "
        f"{'; '.join(optimal)}. Each other point sends more for no more {label}.",
    ]


# -- running ---------------------------------------------------------------------------------------


def _run_on_dask(address: str, jobs: Sequence[Job], store: Callable[[int, dict[str, Any]], None]) -> None:
    """Hand the jobs to the Dask scheduler at ``address``; store each result as it arrives."""
    try:
        from distributed import Client, as_completed
    except ImportError as exc:  # pragma: no cover - depends on the extra being installed
        raise RuntimeError("--dask needs the dask extra: pip install 'touchpoint[dask]'") from exc
    with Client(address, timeout="10s") as client:
        futures = client.map(point_figures, list(jobs), pure=False)
        position = {future.key: i for i, future in enumerate(futures)}
        for future in as_completed(futures):
            store(position[future.key], future.result())


def _read_cached(path: Path) -> dict[str, Any] | None:
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # (none yet, or a file cut short by a crash: run the point again)
    return stored if isinstance(stored, dict) else None


def _write_cached(path: Path, text: str) -> None:
    partial = path.with_suffix(".partial")
    partial.write_text(text)
    partial.replace(path)  # (whole or absent)


# -- names -----------------------------------------------------------------------------------------


def _value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _labels(paths: Sequence[str]) -> list[str]:
    """The shortest dotted suffix telling each path apart (``max``, ``wait_1h.wait``)."""
    labels = []
    for path in paths:
        parts = path.split(".")
        for size in range(1, len(parts) + 1):
            label = ".".join(parts[-size:])
            if sum(other.split(".")[-size:] == parts[-size:] for other in paths) == 1:
                break
        labels.append(label)
    return labels


@functools.cache
def _code_version() -> str:
    """The hash of the code a point's result depends on (a changed world or engine runs it again)."""
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parents[2]
    for package in ("actors", "engine", "reports", "scenarios"):
        for path in sorted((root / package).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()
