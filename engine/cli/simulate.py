"""The simulation commands: ``run`` a scenario against a synthetic population, ``validate`` a
scenario file, list the built-in ``scenarios``."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from actors import ScenarioError
from engine.cli.output import console, errors, refuse_scenario
from engine.lab.runs import Design, DesignRun, Job, simulate
from engine.runtime.simulation import DAY
from engine.scenario_files import DEFAULT_SCENARIO, Scenario, load_scenario
from reports.bundle import write_bundle
from reports.summary import print_summary
from scenarios import built_in_names


def run(
    scenario: Annotated[
        str, typer.Argument(help="A scenario file, or a built-in name (see `touchpoint scenarios`).")
    ] = DEFAULT_SCENARIO,
    customers: Annotated[int, typer.Option(min=1, help="Size of the synthetic population.")] = 10_000,
    days: Annotated[float, typer.Option(min=0.01, help="Simulated days.")] = 30.0,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives byte-identical metrics.")] = 1,
    out: Annotated[
        Path | None, typer.Option(help="Output folder (default: runs/<scenario>-<seed>).")
    ] = None,
    truth: Annotated[bool, typer.Option(
        help="Also measure what each channel's messages caused: the same customers once per subset of "
             "the channels noticed (2^channels runs, in parallel), and score each attribution model "
             "against it.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or table.")] = False,
) -> None:
    """Simulate SCENARIO (default: cart_abandonment) and write a report bundle into DIR.

    DIR/metrics.json: per journey entrants, holdout, conversion rate in each group (counting
    entrants whose whole goal window fits in the run), incremental lift with a 95% confidence
    interval, revenue, time to convert, the funnel by step; messages by channel and per customer;
    contact pressure per week; suppressed sends by rule; opt-outs by channel; agent KPIs; per
    journey the conversion and null paths (DIR/paths-JOURNEY.csv) and every attribution model's
    credit on them, and with --truth the conversions each channel's messages caused.
    DIR/report.html shows it with figures (DIR/*.png); DIR/run.json holds the wall time and
    throughput of the run, which vary from run to run; metrics.json does not.
    """
    try:
        loaded = load_scenario(scenario)
    except ScenarioError as exc:
        raise refuse_scenario(exc) from None
    folder = out or Path("runs") / f"{loaded.name}-{seed}"
    job = Job(Design(loaded.name, scenario), customers, days, seed)
    if truth:
        result = _with_truth(job, loaded, quiet)
    else:
        result = _simulate(job, loaded.name, quiet)
    page = write_bundle(folder, {"kind": "run", **result.metrics})
    wall = result.wall_seconds
    events = result.events + result.events_ignored  # (what a run that hands over everything handles)
    performance = {
        "wall_seconds": wall,
        "events": events,
        "messages_handled": result.events,
        "events_ignored": result.events_ignored,
        "world_wakes": result.world_wakes,
        "events_per_second": events / wall if wall > 0 else None,
        "items_per_second": (result.events + result.world_wakes) / wall if wall > 0 else None,
        "actors": result.actors,
        "peak_rss_bytes": result.peak_rss_bytes,
        "python": platform.python_version(),
    }
    (folder / "run.json").write_text(json.dumps(performance, indent=2, sort_keys=True) + "\n")
    if not quiet:
        print_summary(console, result.metrics)
        console.print(
            f"{events:,} events in {wall:.1f} s "
            f"({performance['events_per_second']:,.0f}/s); wrote {folder / 'metrics.json'} and {page}"
        )


def _simulate(job: Job, name: str, quiet: bool) -> DesignRun:
    """One run, in this process, with a progress bar."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("day {task.fields[day]:>5.1f} of {task.fields[of]:g}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=quiet,
        transient=True,
    ) as progress:
        task = progress.add_task(f"{name}: {job.customers:,} customers", total=job.days * DAY, day=0.0,
                                 of=job.days)
        return simulate(job, None if quiet else lambda at: progress.update(task, completed=at, day=at / DAY))


def _with_truth(job: Job, loaded: Scenario, quiet: bool) -> DesignRun:
    """The run and its counterfactual runs (``engine.lab.truth``), the truth added to its metrics."""
    from engine.cli.lab import run_designs
    from engine.lab.truth import attach_truth, sent_channels, truth_jobs

    channels = sent_channels(loaded.program)
    try:
        jobs = truth_jobs(job, channels)
    except ValueError as exc:
        errors.print(f"[bold red]--truth[/]: {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None

    def label(j: Job) -> str:
        return "noticed: " + (", ".join(sorted(set(channels) - j.unnoticed)) or "none")

    runs = run_designs(jobs, None, quiet, label)
    attach_truth(runs[0].metrics, [(j.unnoticed, r.metrics) for j, r in zip(jobs, runs, strict=True)],
                 channels)
    return runs[0]


def validate(
    scenario: Annotated[str, typer.Argument(help="A scenario file, or a built-in name.")],
) -> None:
    """Check a scenario file: exit 0 if valid, 2 with the first problem located if not."""
    try:
        loaded = load_scenario(scenario)
    except ScenarioError as exc:
        raise refuse_scenario(exc) from None
    program = loaded.program
    journeys = ", ".join(f"{j.id} ({len(j.steps)} steps{'' if j.enabled else ', switched off'})"
                         for j in program.journeys)
    extra = f"; segments {', '.join(s.id for s in program.segments)}" if program.segments else ""
    variants = f"; variants {', '.join(loaded.variants)}" if loaded.variants else ""
    console.print(f"[green]valid[/] {loaded.source}: {journeys}{extra}{variants}", highlight=False)


def scenarios() -> None:
    """List the built-in scenarios."""
    for name in built_in_names():
        loaded = load_scenario(name)
        description = str(loaded.document.get("description", ""))
        console.print(f"[bold]{name}[/]  {description}", highlight=False)
