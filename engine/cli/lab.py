"""The laboratory's commands: ``compare`` designs on the same customers, ``sweep`` a grid of
settings, and ``report`` to draw a bundle's figures and page again."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from actors import ScenarioError
from engine.cli.output import console, errors, refuse_scenario
from engine.lab import sweep as lab_sweep
from engine.lab.runs import Design, DesignRun, Job, run_jobs, simulate
from engine.lab.sweep import parse_set
from engine.runtime.simulation import DAY
from engine.scenario_files import load_scenario
from reports.bundle import rebuild, write_bundle
from reports.comparison import DesignResult
from reports.comparison import compare as compare_designs

Customers = Annotated[
    int, typer.Option(min=1, help="Size of the synthetic population (the same for every design).")
]
Days = Annotated[float, typer.Option(min=0.01, help="Simulated days.")]
Seed = Annotated[int, typer.Option(help="Seed of the population and the world's draws.")]
Workers = Annotated[
    int | None, typer.Option(min=1, help="Processes running designs at once (default: one per core).")
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or tables.")]


def compare(
    scenarios: Annotated[
        list[str],
        typer.Argument(help="One scenario (its variants are the designs) or several files (each a design)."),
    ],
    variant: Annotated[
        list[str] | None,
        typer.Option("--variant", "-v", help="A variant to compare (repeatable; default: all of them)."),
    ] = None,
    customers: Customers = 20_000,
    days: Days = 30.0,
    seed: Seed = 1,
    replications: Annotated[
        int,
        typer.Option(min=1, help="Independent populations (seeds SEED, SEED+1...)."),
    ] = 1,
    workers: Workers = None,
    out: Annotated[
        Path | None, typer.Option(help="Bundle folder (default: runs/compare-<scenario>-<seed>).")
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Compare journey designs on the same customers, with paired 95% intervals.

    With one scenario, the designs are the scenario as written (the baseline) and its
    [variants] (all, or those named by --variant). With several files, each is a design and
    the first is the baseline. Every design runs on the same population with common random
    numbers, in parallel across cores: a customer the designs treat alike lives the same life in
    each, so differences are measured customer by customer. Writes metrics.json, figures and
    report.html into the bundle folder.

    Example: touchpoint compare cart_abandonment --variant email_first --variant no_sms
    """
    try:
        designs = _designs(scenarios, variant or [])
    except ScenarioError as exc:
        raise refuse_scenario(exc) from None
    seeds = [seed + k for k in range(replications)]
    jobs = [Job(d, customers, days, s) for d in designs for s in seeds]
    runs = run_designs(jobs, workers, quiet)
    results = [
        DesignResult(d.name, d.description, [r.metrics for r in runs[i * len(seeds):(i + 1) * len(seeds)]],
                     [r.outcomes for r in runs[i * len(seeds):(i + 1) * len(seeds)]])
        for i, d in enumerate(designs)
    ]
    result = {"kind": "compare", "scenario": runs[0].metrics["scenario"], "customers": customers,
              "days": days, "seed": seed, "replications": replications, **compare_designs(results)}
    folder = out or Path("runs") / f"compare-{result['scenario']}-{seed}"
    page = write_bundle(folder, result)
    if not quiet:
        _print_compare(result)
        console.print(f"wrote {folder / 'metrics.json'} and {page}")


class Outcome(StrEnum):
    conversion = "conversion"
    revenue = "revenue"
    incremental = "incremental"


def sweep(
    scenario: Annotated[str, typer.Argument(help="A scenario file or built-in name.")],
    settings: Annotated[
        list[str],
        typer.Option(
            "--set", "-s",
            help="PATH=V1,V2,... : values of one setting by dotted path (repeatable; the grid is "
                 "their product). Lists by index, journeys and steps by id: policy.caps.0.max=1,2,3 "
                 "or journeys.cart_abandonment.steps.wait_1h.wait=30m,1h,4h",
        ),
    ],
    random_points: Annotated[
        int | None,
        typer.Option("--random", min=1, help="Run N points of the grid drawn at random (by --seed)."),
    ] = None,
    outcome: Annotated[
        Outcome, typer.Option(help="What the frontier maximises.")
    ] = Outcome.conversion,
    customers: Customers = 20_000,
    days: Days = 30.0,
    seed: Seed = 1,
    workers: Workers = None,
    dask: Annotated[
        str | None,
        typer.Option(help="Run the points on the Dask scheduler at this address (tcp://HOST:PORT; "
                          "needs touchpoint[dask] there and here)."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Bundle folder (default: runs/sweep-<scenario>-<seed>).")
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Run a grid of settings, each point a design on the same customers, and draw the frontier.

    Prints each point's outcome, messages per customer and opt-outs per 1,000 customers, and
    marks the Pareto-optimal points: those no other point beats on both the outcome and the cost.
    Each point's result is kept in the bundle's points/ folder under a key of what decides it
    (the scenario file, the point, customers, days, seed, the engine's code): run the same sweep
    again, or a wider one, and only new points run.

    Example: touchpoint sweep cart_abandonment --set policy.caps.0.max=1,2,3,4
    --set journeys.cart_abandonment.steps.wait_1h.wait=30m,1h,4h --customers 20000
    """
    try:
        grid_settings = [parse_set(option) for option in settings]
        points = lab_sweep.grid(grid_settings, random_points, seed)
        lab_sweep.check_points(scenario, points)
    except ValueError as exc:
        errors.print(f"[bold red]bad --set[/]: {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except ScenarioError as exc:
        raise refuse_scenario(exc) from None
    loaded = load_scenario(scenario)
    if outcome is Outcome.incremental and not all(j.holdout > 0 for j in loaded.program.journeys):
        errors.print("[bold red]bad --outcome[/]: incremental needs a holdout in every journey "
                     f"of {scenario}; use conversion or revenue", highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    name = loaded.name
    folder = out or Path("runs") / f"sweep-{name}-{seed}"
    with _bars(quiet) as (progress, tasks):
        tasks.extend(progress.add_task(p.name, total=days * DAY, day=0.0, of=days) for p in points)

        def advance(index: int, at: float) -> None:
            progress.update(tasks[index], completed=at, day=at / DAY)

        def cached(index: int) -> None:
            progress.update(tasks[index], completed=days * DAY, day=days,
                            description=f"{points[index].name} (cached)")

        if not quiet:
            used = min(workers or os.cpu_count() or 1, len(points))
            where = f"the Dask scheduler at {dask}" if dask else f"{used} processes"
            console.print(f"{len(points)} points of {customers:,} customers on {where}")
        try:
            figures = lab_sweep.run_points(scenario, points, customers, days, seed, folder / "points",
                                           workers=workers, dask=dask, on_progress=advance, on_cached=cached)
            rows = lab_sweep.sweep_result(points, figures, outcome.value)
        except (OSError, RuntimeError) as exc:
            errors.print(f"[bold red]sweep failed[/]: {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
    result = {"kind": "sweep", "scenario": name, "customers": customers, "days": days, "seed": seed,
              "settings": {path: values for path, values in grid_settings}, "points": rows,
              "outcome": outcome.value, "outcome_label": lab_sweep.OUTCOMES[outcome.value][0],
              "reading": lab_sweep.reading(rows, outcome.value)}
    page = write_bundle(folder, result)
    if not quiet:
        _print_sweep(result)
        console.print(f"wrote {folder / 'metrics.json'} and {page}")


def report(
    folder: Annotated[Path, typer.Argument(help="A bundle folder written by run, compare or sweep.")],
) -> None:
    """Draw a bundle's figures and write its report.html again from its metrics.json."""
    try:
        page = rebuild(folder)
    except (OSError, ValueError) as exc:
        errors.print(f"[bold red]not a bundle[/] {folder}: {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    console.print(f"wrote {page}")


# -- designs and runs ----------------------------------------------------------------------------


def _designs(sources: Sequence[str], variants: Sequence[str]) -> list[Design]:
    """The designs named on the command line, the baseline first."""
    if len(sources) > 1:
        if variants:
            raise ScenarioError("--variant takes one scenario; with several files each file is a design",
                                source=sources[0])
        loaded = [load_scenario(source) for source in sources]
        names = [s.name for s in loaded]
        if len(set(names)) < len(names):  # (two files of one scenario: tell them apart by path)
            names = [Path(source).stem if Path(source).is_file() else source for source in sources]
        return [Design(name, source, description=_described(s.document))
                for name, source, s in zip(_distinct(names), sources, loaded, strict=True)]
    source = sources[0]
    scenario = load_scenario(source)
    chosen = list(variants) or list(scenario.variants)
    for name in chosen:
        scenario.variant(name)  # (an unknown name is refused here, before anything runs)
    if not chosen:
        raise ScenarioError("has no [variants] to compare: declare some, or give several files",
                            source=scenario.source)
    return [Design(scenario.name, source, description=_described(scenario.document))] + [
        Design(name, source, name, description=_described(scenario.variants[name])) for name in chosen]


def _described(tables: dict[str, Any]) -> str:
    return str(tables.get("description", ""))


@contextmanager
def _bars(quiet: bool) -> Iterator[tuple[Progress, list[TaskID]]]:
    """A progress bar per design, in simulated days."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("day {task.fields[day]:>5.1f} of {task.fields[of]:g}"),
        TimeElapsedColumn(),
        console=console,
        disable=quiet,
        transient=True,
    ) as progress:
        yield progress, []


def _distinct(names: Sequence[str]) -> list[str]:
    """``names`` with repeats numbered (``a``, ``a (2)``): a design is known by its name."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return out


def run_designs(jobs: list[Job], workers: int | None, quiet: bool,
                label: Callable[[Job], str] | None = None) -> list[DesignRun]:
    """Run ``jobs`` on a pool of ``workers`` processes, a progress bar each (named by ``label``:
    by default the design and seed)."""
    with _bars(quiet) as (progress, tasks):
        tasks.extend(
            progress.add_task(label(job) if label else f"{job.design.name} (seed {job.seed})",
                              total=job.days * DAY, day=0.0, of=job.days)
            for job in jobs
        )

        def advance(index: int, at: float) -> None:
            progress.update(tasks[index], completed=at, day=at / DAY)

        used = min(workers or os.cpu_count() or 1, len(jobs))
        if not quiet:
            console.print(f"{len(jobs)} runs of {jobs[0].customers:,} customers on {used} processes")
        return run_jobs(jobs, workers, advance, task=simulate)


# -- printing ------------------------------------------------------------------------------------


def _print_compare(result: dict[str, Any]) -> None:
    first = result["designs"][0]
    # the table shows the journey most customers enter (report.html shows every journey)
    jid = max(first["journeys"], key=lambda j: first["journeys"][j]["entrants"])
    table = Table(title=f"{result['scenario']}: {result['customers']:,} customers, {result['days']:g} days"
                        + (f", {result['replications']} replications" if result["replications"] > 1 else ""))
    for column in ("design", "conv. treated", "conv. holdout", "lift, pts (95% CI)", "msgs/customer",
                   "revenue/msg", "opt-outs/1k", "pressure p95/wk", "conv./1k msgs"):
        first_column = column == "design"
        table.add_column(column, justify="left" if first_column else "right", no_wrap=first_column)
    best = (result["best_per_message"] or {}).get("design")
    for d in result["designs"]:
        j = d["journeys"][jid]
        lift = j["lift"]
        lift_text = "-" if lift["lift"] is None else (
            f"{100 * lift['lift']:+.2f} "
            f"[{100 * lift['lift_ci95_low']:+.2f}, {100 * lift['lift_ci95_high']:+.2f}]"
        )
        name = f"[bold green]{d['name']}[/]" if d["name"] == best else d["name"]
        table.add_row(
            name, _pct(j["treated"]["rate"]), _pct(j["holdout"]["rate"]), lift_text,
            f"{d['messages_per_customer']:.3f}", _num(d["revenue_per_message"]),
            f"{d['opt_outs_per_1000_customers']:.2f}", _num(d["pressure_p95"], 0),
            _num(d["conversions_per_1000_messages"], 1),
        )
    console.print(table)
    if len(result["designs"][0]["journeys"]) > 1:
        console.print(f"(the table shows {jid}, the journey most customers enter; report.html shows "
                      "every journey)")
    for line in result["reading"]:
        console.print(f"- {line}", highlight=False)
    for diff in result["differences"]:
        spread = (diff.get("across_replications") or {}).get("conversion_rate_points", {}).get(jid)
        if spread is not None:
            console.print(
                f"  {diff['design']}: across {spread['replications']} replications (Student's t), the "
                f"conversion difference is {spread['difference']:+.2f} points "
                f"[{spread['low']:+.2f}, {spread['high']:+.2f}]", highlight=False,
            )
        d = diff["conversion_rate_points"][jid]
        if d is not None and d["width"] > 0:
            console.print(
                f"  {diff['design']}: the paired interval of the conversion difference is {d['width']:.2f} "
                f"points wide; with independent populations it would be {d['width_independent']:.2f} "
                f"({d['width_independent'] / d['width']:.1f} times wider)", highlight=False,
            )


def _print_sweep(result: dict[str, Any]) -> None:
    outcome = result["outcome"]
    table = Table(title=f"sweep of {result['scenario']}: {len(result['points'])} points, "
                        f"{result['customers']:,} customers, {result['days']:g} days")
    for column in ("point", lab_sweep.OUTCOMES[outcome][1], "msgs/customer", "opt-outs/1k", "revenue/msg",
                   "Pareto msgs", "Pareto opt-outs"):
        table.add_column(column, justify="left" if column == "point" else "right", no_wrap=column == "point")
    for p in result["points"]:
        table.add_row(
            f"[bold green]{p['name']}[/]" if p["pareto_messages"] else p["name"],
            f"{p[outcome]:.4g}", f"{p['messages_per_customer']:.3f}",
            f"{p['opt_outs_per_1000_customers']:.2f}", _num(p["revenue_per_message"]),
            "yes" if p["pareto_messages"] else "", "yes" if p["pareto_opt_outs"] else "",
        )
    console.print(table)
    for line in result["reading"]:
        console.print(f"- {line}", highlight=False)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"
