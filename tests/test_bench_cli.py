"""``touchpoint bench``: a benchmark runs in a process of its own and its figures come back into
one markdown table, each beside the ceiling of its run."""

from __future__ import annotations

import subprocess
import sys

from harness import ROOT

from engine.cli.bench import table


def test_the_table_shows_each_figure_beside_the_ceiling_and_rates_as_ratios():
    text = table({"sim": {"events_per_second_median": 250_000.0, "wall_seconds_median": 12.345,
                          "bytes_per_customer": 706.0, "ceiling_events_per_second_median": 2_000_000.0}},
                 "touchpoint bench all --quick")
    lines = text.splitlines()
    assert lines[0].startswith("Machine: ") and "cores" in lines[0] and "Python" in lines[0]
    assert lines[1] == "Command: `touchpoint bench all --quick`"
    sim = "| sim: simulation, cart abandonment |"
    assert f"{sim} simulated events a second | 250,000 events/s | 2,000,000 | 0.125 |" in lines
    assert f"{sim} wall time | 12.3 s | 2,000,000 |  |" in lines


def test_a_benchmark_runs_through_the_command_line():
    command = [sys.executable, "-m", "engine", "bench", "sim", "--", "--customers", "2000", "--days", "2",
               "--repeat", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "events_per_second_median" in done.stdout and "ceiling_events_per_second_median" in done.stdout
