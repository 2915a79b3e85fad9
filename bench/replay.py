"""``touchpoint replay`` on a recorded log of a million calls: calls per second, next to the
bare-loop ceiling.

    python -m bench.replay --calls 1000000 --repeat 3

The log is the cart scenario's world as traffic (``engine.load.traffic``: identifies with traits
and context, page views, cart adds and purchases in the world's proportions, each call with a
``messageId``, a ``timestamp`` and ``context.library`` as the official libraries set them), one
call per line, spread evenly over ``--days`` days from 2026-03-02, among ``--customers``
customers. It is written once; each repeat runs the real command line on it in a fresh process
and is timed whole: start, reading and validating every line, the replay (on one process per core
unless ``--workers`` says otherwise), sends.csv, suppressed.csv and conversions.csv,
metrics.json, the figures and report.html.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import msgspec
import typer

from bench.ceiling import measure
from bench.report import report
from engine.load.traffic import Traffic, iso
from engine.scenario_files import load_scenario

app = typer.Typer(add_completion=False)
START = datetime(2026, 3, 2, tzinfo=UTC).timestamp()


def write_log(path: Path, calls: int, customers: int, days: float, seed: int = 1) -> None:
    """``calls`` calls of the cart scenario's world, one per line, evenly over ``days`` days."""
    traffic = Traffic(load_scenario("cart_abandonment"), customers, seed)
    encode = msgspec.json.Encoder().encode
    step = days * 86400.0 / calls
    with open(path, "wb") as file:
        for first in range(0, calls, 10_000):
            for i, call in enumerate(traffic.calls(min(10_000, calls - first)), start=first):
                call["messageId"] = str(uuid.UUID(int=i + 1))
                call["timestamp"] = iso(START + i * step)
                file.write(encode(call) + b"\n")


@app.command()
def main(
    calls: Annotated[int, typer.Option(help="Calls in the log (one a line).")] = 1_000_000,
    customers: Annotated[int, typer.Option(help="Customers they come from.")] = 100_000,
    days: Annotated[float, typer.Option(help="Days the log spans.")] = 30.0,
    repeat: int = 3,
    workers: Annotated[int | None, typer.Option(help="replay --workers (default: its own, one per core "
                                                     "for a log this size).")] = None,
    json_out: Annotated[Path | None, typer.Option(help="Also write the results here.")] = None,
) -> None:
    """Time ``touchpoint replay`` of the cart design over a log of ``calls`` calls."""
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "events.ndjson"
        write_log(log, calls, customers, days)
        runs = []
        for _ in range(repeat):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "engine", "replay", str(log), "--scenario",
                            "cart_abandonment", "--out", str(Path(folder) / "out"), "-q",
                            *(["--workers", str(workers)] if workers else [])],
                           check=True, capture_output=True)
            runs.append(time.perf_counter() - started)
        size = log.stat().st_size
    median = statistics.median(runs)
    ceiling = measure(3)
    report({"calls": calls, "customers": customers, "days": days, "log_megabytes": round(size / 1e6, 1),
            "workers": workers or f"default ({os.cpu_count()} cores)",
            "repeat": repeat, "seconds_median": median, "seconds_runs": ", ".join(f"{r:.2f}" for r in runs),
            "calls_per_second_median": calls / median, "calls_per_second_best": calls / min(runs),
            "ceiling_events_per_second_median": ceiling["median"],
            "ceiling_events_per_second_max": ceiling["max"],
            "ratio_to_ceiling": calls / median / ceiling["median"]}, json_out)


if __name__ == "__main__":
    app()
