"""``touchpoint bench``: what ``bench/`` measures, through the command line.

Each benchmark runs in a fresh process (``python -m bench.NAME ... --json-out FILE``: memory is
measured from a clean start, and one benchmark's garbage does not slow the next), prints its own
lines, and hands back its figures. ``touchpoint bench all`` runs them all (``--quick``: small
sizes, about a minute and a half) and prints one markdown table, with the machine and the command
that made it, every figure beside the bare-loop ceiling measured in the same benchmark's run.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from engine.cli.output import console, errors

app = typer.Typer(help="Benchmarks of the engine, each beside the bare-loop ceiling of its own run.",
                  no_args_is_help=True, add_completion=False)


@dataclass(frozen=True)
class Figure:
    key: str  # in the benchmark's JSON
    label: str
    unit: str
    rate: bool = False  # events a second: a ratio to the ceiling means something


@dataclass(frozen=True)
class Suite:
    module: str
    what: str
    quick: tuple[str, ...]  # the options of ``all --quick``
    full: tuple[str, ...]  # the options of ``all``
    figures: tuple[Figure, ...]


SUITES: dict[str, Suite] = {
    "sim": Suite("bench.sim_throughput", "simulation, cart abandonment",
                 ("--customers", "20000", "--days", "10", "--repeat", "1"),
                 ("--customers", "100000", "--days", "30", "--repeat", "3"),
                 (Figure("events_per_second_median", "simulated events a second", "events/s", True),
                  Figure("wall_seconds_median", "wall time", "s"),
                  Figure("bytes_per_customer", "memory per customer", "bytes"))),
    "timers": Suite("bench.realtime", "real-time engine: timers, memory, snapshot",
                    ("--actors", "100000"), ("--actors", "1000000"),
                    (Figure("timer_fires_per_second", "timers fired, each a send through every policy",
                            "fires/s", True),
                     Figure("relay_timer_fires_per_second", "timers fired, each re-arming the next",
                            "fires/s", True),
                     Figure("bytes_per_actor", "memory per actor", "bytes"),
                     Figure("snapshot_write_seconds", "snapshot of every actor: write", "s"),
                     Figure("snapshot_restore_seconds", "snapshot of every actor: restore", "s"))),
    "snapshot": Suite("bench.snapshots", "snapshots alone",
                      ("--actors", "100000", "--repeat", "1"), ("--actors", "1000000", "--repeat", "3"),
                      (Figure("snapshot_write_seconds", "write", "s"),
                       Figure("snapshot_restore_seconds", "restore", "s"),
                       Figure("fork_pause_seconds", "engine pause for a background snapshot", "s"))),
    "latency": Suite("bench.latency", "trigger latency in-process, log fsync on, outbox, mock provider",
                     ("--actors", "200000", "--rate", "10000", "--seconds", "3"),
                     ("--actors", "1000000", "--rate", "20000", "--seconds", "5", "--repeat", "3"),
                     (Figure("rate", "events a second offered (each makes a send)", "events/s"),
                      Figure("latency_p50_ms", "trigger latency p50", "ms"),
                      Figure("latency_p99_ms", "trigger latency p99", "ms"),
                      Figure("latency_p99.9_ms", "trigger latency p99.9", "ms"),
                      Figure("timer_send_p99_ms", "timer send from its due time, p99", "ms"))),
    "http": Suite("bench.http_load", "Segment /v1/batch into touchpoint serve, fsync on",
                  ("--events", "60000", "--repeat", "1", "--actors", "10000"), ("--repeat", "3"),
                  (Figure("events_per_second_median", "events acknowledged a second", "events/s", True),
                   Figure("request_p50_ms_median", "request p50 (batch of 500)", "ms"),
                   Figure("request_p99_ms_median", "request p99", "ms"),
                   Figure("server_cpu_us_per_event_median", "server CPU per event", "us"))),
    "trio": Suite("bench.baselines.trio_tasks", "baseline (a): one trio task per customer",
                  ("--customers", "100000"), ("--customers", "1000000"),
                  (Figure("timer_fires_per_second", "timers fired", "fires/s", True),
                   Figure("bytes_per_task", "memory per customer", "bytes"))),
    "apscheduler": Suite("bench.baselines.apscheduler_jobs", "baseline (b): APScheduler, a date job per wait",
                         ("--customers", "20000"), ("--customers", "100000"),
                         (Figure("timer_fires_per_second", "timers fired", "fires/s", True),)),
    "simpy": Suite("bench.baselines.simpy_processes", "baseline (c): one SimPy process per customer",
                   ("--customers", "20000", "--days", "10"), ("--customers", "100000", "--days", "30"),
                   (Figure("customer_days_per_second", "customer-days simulated a second", "days/s", True),)),
}
SUITES["latency-http"] = Suite(
    "bench.latency_http", "trigger latency over HTTP: touchpoint load into touchpoint serve, HTTP provider",
    ("--actors", "100000", "--customers", "100000", "--rate", "1000", "--seconds", "5"),
    ("--actors", "1000000", "--customers", "1000000", "--rate", "2000", "--seconds", "10"),
    (Figure("rate", "events a second offered", "events/s"),
     Figure("latency_p50_ms", "trigger latency p50", "ms"),
     Figure("latency_p99_ms", "trigger latency p99", "ms"),
     Figure("latency_max_ms", "trigger latency max", "ms")))
BASELINES = ("trio", "apscheduler", "simpy")  # run by ``all`` after the engine's benchmarks
# (engine figure, its suite; baseline figure, its suite): the ratios ``all`` prints
RATIOS = (
    ("timer fires a second", "timers", "timer_fires_per_second", "trio", "timer_fires_per_second"),
    ("timer fires a second", "timers", "timer_fires_per_second", "apscheduler", "timer_fires_per_second"),
    ("memory per customer (lower is better)", "timers", "bytes_per_actor", "trio", "bytes_per_task"),
    ("customer-days simulated a second", "sim", "customer_days_per_second", "simpy",
     "customer_days_per_second"),
)


def run_suite(name: str, options: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """Run one benchmark in a fresh process (its lines go to the terminal); its figures."""
    suite = SUITES[name]
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "result.json"
        command = [sys.executable, "-m", suite.module, *options, "--json-out", str(out)]
        console.print(f"[bold]{name}[/]: {' '.join(command[1:-2])}", highlight=False)
        done = subprocess.run(command, check=False)
        if done.returncode != 0 or not out.exists():
            errors.print(f"[bold red]bench {name} failed[/] (exit {done.returncode})", highlight=False)
            raise typer.Exit(1)
        result: dict[str, Any] = json.loads(out.read_text())
    if "wall_seconds_median" in result and "customers" in result and "days" in result:
        days = result["customers"] * result["days"]  # (the simulation's: customer-days a second)
        result["customer_days_per_second"] = days / result["wall_seconds_median"]
    return result


def machine() -> str:
    """The CPU model, cores, Python and async backend, in one line."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    python = f"{platform.python_implementation()} {platform.python_version()}"
    return f"{model}, {os.cpu_count()} cores, {python}, trio (anyio)"


def table(results: dict[str, dict[str, Any]], command: str) -> str:
    """The figures as one markdown table."""
    lines = [f"Machine: {machine()}.  ", f"Command: `{command}`", "",
             "| benchmark | figure | value | ceiling of the run (events/s) | ratio to the ceiling |",
             "|---|---|---|---|---|"]
    for name, result in results.items():
        suite = SUITES[name]
        ceiling = result.get("ceiling_events_per_second_median")
        for figure in suite.figures:
            value = result.get(figure.key)
            if value is None:
                continue
            ratio = f"{value / ceiling:.3f}" if figure.rate and ceiling else ""
            shown = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
            beside = f"{ceiling:,.0f}" if ceiling else ""
            cells = (f"{name}: {suite.what}", figure.label, f"{shown} {figure.unit}", beside, ratio)
            lines.append("| " + " | ".join(cells) + " |")
    ratios = [(label, results[mine][key], base, results[base][their])
              for label, mine, key, base, their in RATIOS
              if key in results.get(mine, {}) and their in results.get(base, {})]
    if ratios:
        lines += ["", "| against the baselines | the engine | the baseline | ratio |", "|---|---|---|---|"]
        for label, value, base, theirs in ratios:
            ratio = f"{value / theirs:.2f}"
            cells = (f"{label}: {SUITES[base].what}", f"{value:,.0f}", f"{theirs:,.0f}", ratio)
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _suite_command(name: str, help_text: str) -> None:
    def command(options: Annotated[list[str] | None, typer.Argument(
            help="Options for the benchmark (after --), e.g. -- --actors 200000.")] = None) -> None:
        run_suite(name, options or list(SUITES[name].quick))

    command.__doc__ = help_text
    app.command(name)(command)


_suite_command("sim", "Simulated events a second (bench.sim_throughput); default: the quick sizes.")
_suite_command("timers", "Timer fires, memory per actor, snapshot of every actor (bench.realtime).")
_suite_command("memory", "Memory per actor and peak (bench.realtime, as timers).")
_suite_command("snapshot", "Snapshot write, restore, fork pause (bench.snapshots).")


@app.command("latency")
def latency(
    actors: Annotated[int, typer.Option(help="Customers in the state before the load.")] = 200_000,
    rate: Annotated[float, typer.Option(help="Events a second offered.")] = 10_000,
    duration: Annotated[float, typer.Option(help="Seconds the load lasts.")] = 3.0,
    http: Annotated[bool, typer.Option(help="Over HTTP: touchpoint load into touchpoint serve (fsync on), "
                                            "sends to a loopback HTTP provider.")] = False,
    sweep: Annotated[bool, typer.Option(help="In-process: step the rate up to the knee.")] = False,
    plot: Annotated[Path | None, typer.Option(help="With --sweep: latency against throughput (PNG).")] = None,
) -> None:
    """Trigger latency from an event's intended time to the provider's receipt of its send.

    In-process (bench.latency): through the write-ahead log with fsync, the actor and the outbox
    to the mock provider; timer sends from their due time. --http (bench.latency_http): a
    touchpoint load process into a real touchpoint serve, its sends to an HTTP provider on
    127.0.0.1.
    """
    common = ["--actors", str(actors), "--rate", str(round(rate)), "--seconds", str(duration)]
    if http:
        run_suite("latency-http", [*common, "--customers", str(max(actors, 1000))])
        return
    extra = ["--sweep"] if sweep else []
    run_suite("latency", [*common, *extra, *(["--plot", str(plot)] if plot is not None else [])])
_suite_command("http", "Segment batches over HTTP into touchpoint serve (bench.http_load).")
_suite_command("trio", "Baseline (a): one trio task per customer (bench.baselines.trio_tasks).")
_suite_command("apscheduler", "Baseline (b): APScheduler date jobs (bench.baselines.apscheduler_jobs).")
_suite_command("simpy", "Baseline (c): a SimPy process per customer (bench.baselines.simpy_processes).")
SUITES["memory"] = SUITES["timers"]


@app.command("all")
def run_all(
    quick: Annotated[bool, typer.Option(help="Small sizes: about a minute and a half.")] = False,
    out: Annotated[Path | None, typer.Option(help="Also write the table (markdown) here.")] = None,
) -> None:
    """Every benchmark, then one markdown table of their figures with the machine and this command."""
    results = {name: run_suite(name, suite.quick if quick else suite.full)
               for name, suite in SUITES.items() if name != "memory"}
    text = table(results, "touchpoint bench all" + (" --quick" if quick else ""))
    console.print()
    console.print(text, highlight=False, soft_wrap=True, markup=False)
    if out is not None:
        out.write_text(text + "\n", encoding="utf-8")
