"""Wall time of ``touchpoint sweep``: 8 designs of the cart scenario on one population, next to
one design run alone on one core and the bare-loop ceiling of the same run.

    python -m bench.sweep --customers 100000 --days 30 --repeat 3

Each repeat runs the real command line in a fresh process and an empty bundle folder (so no point
comes from the cache). The sweep's ideal on ``workers`` cores is points x single / workers.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer

from bench.ceiling import measure
from bench.report import report

app = typer.Typer(add_completion=False)

GRID = ["--set", "policy.caps.0.max=2,3",
        "--set", "journeys.cart_abandonment.steps.wait_1h.wait=30m,1h,4h,12h"]


def _timed(arguments: list[str]) -> float:
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "engine", *arguments, "--out", out, "--quiet"], check=True)
        return time.perf_counter() - started


@app.command()
def main(
    customers: int = 100_000,
    days: float = 30.0,
    repeat: int = 3,
    workers: Annotated[int, typer.Option(help="Processes of the sweep's pool.")] = os.cpu_count() or 1,
    json_out: Annotated[Path | None, typer.Option(help="Also write the results here as JSON.")] = None,
) -> None:
    """Time a sweep of 8 points and one run alone, taken turn about."""
    population = ["--customers", str(customers), "--days", str(days)]
    sweeps, singles = [], []
    for _ in range(repeat):
        singles.append(_timed(["run", "cart_abandonment", *population]))
        sweeps.append(_timed(["sweep", "cart_abandonment", *GRID, *population, "--workers", str(workers)]))
    ceiling = measure(repeat)
    single = statistics.median(singles)
    result = {
        "customers": customers,
        "days": days,
        "points": 8,
        "workers": workers,
        "sweep_seconds_median": statistics.median(sweeps),
        "sweep_seconds": sweeps,
        "single_run_seconds_median": single,
        "single_run_seconds": singles,
        "ideal_sweep_seconds": 8 * single / workers,
        "ceiling_events_per_second_median": ceiling["median"],
        "ceiling_events_per_second_max": ceiling["max"],
    }
    report(result, json_out)


if __name__ == "__main__":
    app()
