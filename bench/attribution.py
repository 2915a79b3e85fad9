"""``touchpoint attribute`` on a large path table: wall time, next to the bare-loop ceiling.

    python -m bench.attribution --paths 1000000 --repeat 3

A table of ``--paths`` rows (distinct and repeated paths of one to six touches over six channels,
conversions, values and nulls drawn with a fixed seed) is written once; each repeat runs the
real command line on it in a fresh process, every model, and is timed whole (start, reading,
models, table, JSON).
"""

from __future__ import annotations

import random
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
CHANNELS = ("email", "push", "sms", "in_app", "webhook", "agent")


def write_table(path: Path, rows: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as file:
        file.write("path;total_conversions;total_conversion_value;total_null\n")
        for _ in range(rows):
            touches = " > ".join(rng.choice(CHANNELS) for _ in range(rng.randint(1, 6)))
            conversions = rng.randint(0, 3)
            value = conversions * rng.uniform(20, 80)
            file.write(f"{touches};{conversions};{value:.2f};{rng.randint(0, 5)}\n")


@app.command()
def main(
    paths: Annotated[int, typer.Option(help="Rows of the path table.")] = 1_000_000,
    repeat: int = 3,
    json_out: Annotated[Path | None, typer.Option(help="Also write the results here.")] = None,
) -> None:
    """Time ``touchpoint attribute`` (every model) on a table of ``paths`` rows."""
    with tempfile.TemporaryDirectory() as folder:
        table = Path(folder) / "paths.csv"
        write_table(table, paths)
        runs = []
        for _ in range(repeat):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "engine", "attribute", str(table), "--out",
                            str(Path(folder) / "r.json")], check=True, capture_output=True)
            runs.append(time.perf_counter() - started)
    report({"paths": paths, "repeat": repeat, "seconds_median": statistics.median(runs),
            "seconds_runs": ", ".join(f"{r:.2f}" for r in runs),
            "ceiling_events_per_second_median": measure(3)["median"]}, json_out)


if __name__ == "__main__":
    app()
