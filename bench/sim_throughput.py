"""Throughput and memory of ``touchpoint run``, next to the bare-loop ceiling of the same run.

    python -m bench.sim_throughput --customers 100000 --days 30 --repeat 3

Each repeat runs the real command line in a fresh process (so peak memory is that run's own) and
reads the run.json it writes. Events are the simulated world's messages (events, timers,
receipts), whether handed to an actor or, as browsing no journey listens to, counted and kept
back: the count a run that hands over everything handles, so rates compare across versions.
Memory per customer is the run's peak resident set minus the fixed
cost (the same command on one customer: interpreter, libraries, scenario), divided by the
population size.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from bench.ceiling import measure
from bench.report import report

app = typer.Typer(add_completion=False)


def _run_once(scenario: str, customers: int, days: float, seed: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "engine", "run", scenario, "--customers", str(customers),
                   "--days", str(days), "--seed", str(seed), "--out", out, "--quiet"]
        subprocess.run(command, check=True)
        return json.loads((Path(out) / "run.json").read_text())  # type: ignore[no-any-return]


def _fixed_cost_rss(scenario: str) -> int:
    """Peak memory of the same command on one customer for a few minutes: the fixed cost."""
    return int(_run_once(scenario, 1, 0.01, 1)["peak_rss_bytes"])


@app.command()
def main(
    scenario: str = "cart_abandonment",
    customers: int = 100_000,
    days: float = 30.0,
    seed: int = 1,
    repeat: int = 3,
    json_out: Annotated[Path | None, typer.Option(help="Also write the results here as JSON.")] = None,
) -> None:
    """Measure simulated events per second and memory per customer of `touchpoint run`."""
    runs = [_run_once(scenario, customers, days, seed) for _ in range(repeat)]
    baseline = _fixed_cost_rss(scenario)
    ceiling = measure(repeat)
    rates = [r["events_per_second"] for r in runs]
    items = [r["items_per_second"] for r in runs]
    peak = max(r["peak_rss_bytes"] for r in runs)
    result = {
        "scenario": scenario,
        "customers": customers,
        "days": days,
        "repeat": repeat,
        "events": runs[0]["events"],  # handed to actors, or ignored by the program and counted
        "messages_handled": runs[0]["messages_handled"],
        "events_ignored": runs[0]["events_ignored"],
        "world_wakes": runs[0]["world_wakes"],
        "wall_seconds_median": statistics.median(r["wall_seconds"] for r in runs),
        "events_per_second_median": statistics.median(rates),
        "events_per_second_max": max(rates),
        "items_per_second_median": statistics.median(items),
        "ceiling_events_per_second_median": ceiling["median"],
        "ceiling_events_per_second_max": ceiling["max"],
        "ratio_to_ceiling": statistics.median(rates) / ceiling["median"],
        "peak_rss_mb": peak / 2**20,
        "fixed_cost_rss_mb": baseline / 2**20,
        "bytes_per_customer": (peak - baseline) / customers,
    }
    report(result, json_out)

if __name__ == "__main__":
    app()
