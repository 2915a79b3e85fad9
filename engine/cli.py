"""The ``touchpoint`` command line.

    touchpoint run [SCENARIO]      simulate a scenario against a synthetic population
    touchpoint validate SCENARIO   check a scenario file
    touchpoint scenarios           list the built-in scenarios

A bad scenario exits with status 2 and one message naming the file, journey, step and field.
"""

from __future__ import annotations

import json
import platform
import sys
import time
import tomllib
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from actors import ScenarioError
from engine.memory import peak_rss_bytes
from engine.scenario_files import DEFAULT_SCENARIO, load_scenario
from engine.simulation import DAY, Simulation
from reports.summary import print_summary
from scenarios import built_in_names

app = typer.Typer(
    help="Touchpoint: cross-channel customer journeys, and a laboratory to test them before launch.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
errors = Console(stderr=True)


def _fail(exc: ScenarioError) -> typer.Exit:
    errors.print(f"[bold red]invalid scenario[/] {exc}", highlight=False, soft_wrap=True)
    return typer.Exit(2)


@app.command()
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
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or table.")] = False,
) -> None:
    """Simulate SCENARIO (default: cart_abandonment) and write DIR/metrics.json.

    Metrics per journey: entrants, holdout, conversion rate in each group, incremental lift with
    a 95% confidence interval, revenue, time to convert; messages by channel and per customer;
    suppressed sends by rule; opt-outs by channel; agent KPIs. DIR/run.json holds the wall time
    and throughput of the run, which vary from run to run; metrics.json does not.
    """
    try:
        loaded = load_scenario(scenario)
    except ScenarioError as exc:
        raise _fail(exc) from None
    folder = out or Path("runs") / f"{loaded.name}-{seed}"
    started = time.perf_counter()
    simulation = Simulation(loaded, customers, days, seed)
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
        label = f"{loaded.name}: {customers:,} customers"
        task = progress.add_task(label, total=days * DAY, day=0.0, of=days)
        stats = simulation.run(
            None if quiet else lambda at: progress.update(task, completed=at, day=at / DAY)
        )
    wall = time.perf_counter() - started
    metrics = _metrics(loaded.name, customers, days, seed, simulation)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    performance = {
        "wall_seconds": wall,
        "messages_handled": stats.messages_handled,
        "world_wakes": stats.world_wakes,
        "events_per_second": stats.messages_handled / wall if wall > 0 else None,
        "items_per_second": (stats.messages_handled + stats.world_wakes) / wall if wall > 0 else None,
        "actors": stats.actors,
        "peak_rss_bytes": peak_rss_bytes(),
        "python": platform.python_version(),
    }
    (folder / "run.json").write_text(json.dumps(performance, indent=2, sort_keys=True) + "\n")
    if not quiet:
        print_summary(console, metrics)
        console.print(
            f"{stats.messages_handled:,} events in {wall:.1f} s "
            f"({performance['events_per_second']:,.0f}/s); wrote {folder / 'metrics.json'}"
        )


def _metrics(name: str, customers: int, days: float, seed: int, sim: Simulation) -> dict[str, Any]:
    return {
        "scenario": name,
        "customers": customers,
        "days": days,
        "seed": seed,
        **sim.metrics.to_dict(),
        "agents": sim.agents.statistics(sim.horizon),
        "world": {
            "sessions": sim.world.sessions,
            "purchases": sim.world.purchases,
            "orders_after_click": dict(sorted(sim.world.orders_after_click.items())),
        },
    }


@app.command()
def validate(
    scenario: Annotated[str, typer.Argument(help="A scenario file, or a built-in name.")],
) -> None:
    """Check a scenario file: exit 0 if valid, 2 with the first problem located if not."""
    try:
        loaded = load_scenario(scenario)
    except ScenarioError as exc:
        raise _fail(exc) from None
    journeys = ", ".join(f"{j.id} ({len(j.steps)} steps)" for j in loaded.program.journeys)
    console.print(f"[green]valid[/] {loaded.source}: {journeys}", highlight=False)


@app.command()
def serve(
    ctx: typer.Context,
    scenario: Annotated[
        str, typer.Argument(help="A scenario file, or a built-in name: its journeys and policies.")
    ] = DEFAULT_SCENARIO,
    data: Annotated[
        Path, typer.Option(envvar="TOUCHPOINT_DATA", help="State folder: write-ahead log and snapshots.")
    ] = Path("touchpoint-data"),
    host: Annotated[str, typer.Option(envvar="TOUCHPOINT_HOST", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="TOUCHPOINT_PORT", help="Port to listen on.")] = 8800,
    write_key: Annotated[
        list[str] | None,
        typer.Option(envvar="TOUCHPOINT_WRITE_KEY", help="A write key ingestion accepts (repeatable)."),
    ] = None,
    admin_token: Annotated[
        str | None,
        typer.Option(envvar="TOUCHPOINT_ADMIN_TOKEN", help="Bearer token of the admin API and /metrics."),
    ] = None,
    snapshot_every: Annotated[
        float, typer.Option(min=1.0, help="Seconds between periodic snapshots.")
    ] = 300.0,
    fsync: Annotated[
        str, typer.Option(envvar="TOUCHPOINT_FSYNC", help="Log durability: batch (fsync per batch) or none.")
    ] = "batch",
    config: Annotated[
        Path | None,
        typer.Option(envvar="TOUCHPOINT_CONFIG",
                     help="A TOML file with any of: data, host, port, write_keys, admin_token, "
                          "snapshot_every, fsync. Options and environment variables win over it."),
    ] = None,
) -> None:
    """Serve the engine: Segment-compatible ingestion on HTTP, journeys on the wall clock.

    State is restored from --data at start-up (newest snapshot plus the write-ahead log after it);
    SIGINT or SIGTERM stops accepting, finishes what was accepted, writes a snapshot and exits 0.
    Sends go through the outbox to mock providers for now (recorded and reported delivered).
    """
    import trio

    from engine.service import run_service

    if config is not None:
        settings = _service_config(config)
        given = {n for n in settings if _given(ctx, n)}
        chosen = {name: value for name, value in settings.items() if name not in given}
        data = Path(chosen.get("data", data))
        host = str(chosen.get("host", host))
        port = int(chosen.get("port", port))
        write_key = list(chosen.get("write_key", write_key or []))
        admin_token = chosen.get("admin_token", admin_token)
        snapshot_every = float(chosen.get("snapshot_every", snapshot_every))
        fsync = str(chosen.get("fsync", fsync))
    if fsync not in ("batch", "none"):
        errors.print(f"[bold red]fsync {fsync!r}[/]: expected batch or none")
        raise typer.Exit(2)

    if not write_key:
        errors.print("[bold red]no write key[/]: give --write-key KEY or set TOUCHPOINT_WRITE_KEY")
        raise typer.Exit(2)
    try:
        load_scenario(scenario)
    except ScenarioError as exc:
        raise _fail(exc) from None

    def ready(urls: list[str]) -> None:
        console.print(f"touchpoint serving {', '.join(urls)} (data: {data})", highlight=False)

    trio.run(partial(run_service, scenario, data, host, port, set(write_key), admin_token=admin_token,
                     snapshot_every=snapshot_every, fsync=fsync, on_ready=ready))
    console.print("stopped cleanly: snapshot written", highlight=False)


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether an option came from the command line or the environment (not its default)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name != "DEFAULT"


_CONFIG_KEYS = {"data": "data", "host": "host", "port": "port", "write_keys": "write_key",
                "admin_token": "admin_token", "snapshot_every": "snapshot_every", "fsync": "fsync"}


def _service_config(path: Path) -> dict[str, Any]:
    """The settings of a serve config file, by option name; exits 2 on a bad file."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        errors.print(f"[bold red]config {path}[/]: {exc}", highlight=False)
        raise typer.Exit(2) from None
    unknown = sorted(set(document) - set(_CONFIG_KEYS))
    if unknown:
        errors.print(f"[bold red]config {path}[/]: unknown keys {unknown}; expected {sorted(_CONFIG_KEYS)}",
                     highlight=False)
        raise typer.Exit(2)
    return {_CONFIG_KEYS[key]: value for key, value in document.items()}


@app.command()
def export(
    data: Annotated[
        Path, typer.Option(envvar="TOUCHPOINT_DATA", help="State folder written by `touchpoint serve`.")
    ] = Path("touchpoint-data"),
) -> None:
    """Print every profile as one JSON line, rebuilt offline from the snapshot and the log."""
    from engine.service import export_profiles

    if not (data / "scenario.toml").is_file():
        errors.print(f"[bold red]no engine state[/] in {data}: expected scenario.toml, wal/, snapshots/")
        raise typer.Exit(2)
    for line in export_profiles(data):
        sys.stdout.write(line + "\n")


@app.command()
def scenarios() -> None:
    """List the built-in scenarios."""
    for name in built_in_names():
        loaded = load_scenario(name)
        description = str(loaded.document.get("description", ""))
        console.print(f"[bold]{name}[/]  {description}", highlight=False)


def main() -> None:  # pragma: no cover - console script entry
    sys.exit(app())
