"""The ``touchpoint`` command line.

    touchpoint run [SCENARIO]      simulate a scenario against a synthetic population
    touchpoint validate SCENARIO   check a scenario file
    touchpoint scenarios           list the built-in scenarios

A bad scenario exits with status 2 and one message naming the file, journey, step and field.
"""

from __future__ import annotations

import json
import platform
import re
import sys
import time
import tomllib
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import msgspec
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from actors import ScenarioError
from engine.memory import peak_rss_bytes
from engine.scenario_files import DEFAULT_SCENARIO, load_scenario
from engine.simulation import DAY, Simulation
from reports.summary import print_summary
from scenarios import built_in_names

if TYPE_CHECKING:  # serve's modules load when it runs: other commands start faster without them
    from engine.outbox import OutboxSettings
    from engine.providers import ProviderSettings

_Settings = TypeVar("_Settings", bound=msgspec.Struct)

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
                          "snapshot_every, fsync (options and environment variables win over it); "
                          "a \\[channels.NAME] table choosing the provider of a channel; an "
                          "\\[outbox] table of retry and breaker settings (see above)."),
    ] = None,
) -> None:
    r"""Serve the engine: Segment-compatible ingestion on HTTP, journeys on the wall clock.

    State is restored from --data at start-up (the newest snapshot plus the
    write-ahead log after it). SIGINT or SIGTERM stops accepting, finishes what
    was accepted, writes a snapshot and exits 0.

    Sends leave through the outbox (rate limit, retries with backoff, circuit
    breaker, dead letters), each with its idempotency key, to the provider of
    its channel, chosen in the --config file:

    \[channels.email]
    provider = "smtp"     # needs host, port, sender
    host = "localhost"
    port = 25
    sender = "shop@example.com"
    address_trait = "email"   # the profile trait holding the address
    \[channels.sms]
    provider = "http"     # needs url; headers, timeout (s) optional
    url = "https://sms.example.com/v1/send"
    headers = { Authorization = "Bearer KEY" }
    address_trait = "phone"   # optional: sent in the body as "to"
    rate = 10             # any channel: at most 10 sends a second
    \[channels.push]
    provider = "mock"     # latency (s), failure_rate, seed
    \[outbox]              # every channel: workers (calls at once), max_attempts,
    max_attempts = 8      # base_delay, max_delay, breaker_failures, breaker_reset

    Channels: email, sms, push, in_app, webhook. One without a table gets the
    mock, which records its sends and reports them delivered. A bad table
    exits 2 naming the file and the key.

    The HTTP provider POSTs JSON (customer, channel, message, journey, entry,
    transactional, to) with an Idempotency-Key header; 2xx is success, 408,
    429 and 5xx are retried, other statuses are dead-lettered. A restart after
    a crash sends again, under the same keys, whatever was not known to be
    settled: a provider that honours the key applies each send once.
    """
    import trio

    from engine.outbox import OutboxSettings
    from engine.providers import describe
    from engine.service import run_service

    channels: dict[str, ProviderSettings] = {}
    outbox_settings = OutboxSettings()
    if config is not None:
        settings, channels, outbox_settings = _service_config(config)
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

    sending = ", ".join(f"{channel} {describe(settings)}" for channel, settings in channels.items())
    console.print(f"sends: {sending or 'mock'}{', others mock' if sending else ''}", highlight=False,
                  soft_wrap=True)
    trio.run(partial(run_service, scenario, data, host, port, set(write_key), admin_token=admin_token,
                     snapshot_every=snapshot_every, fsync=fsync, channels=channels,
                     outbox_settings=outbox_settings, on_ready=ready))
    console.print("stopped cleanly: snapshot written", highlight=False)


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether an option came from the command line or the environment (not its default)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name != "DEFAULT"


_CONFIG_KEYS = {"data": "data", "host": "host", "port": "port", "write_keys": "write_key",
                "admin_token": "admin_token", "snapshot_every": "snapshot_every", "fsync": "fsync"}
_CONFIG_TABLES = ("channels", "outbox")
_CHANNELS = ("email", "sms", "push", "in_app", "webhook")


class _ConfigError(Exception):
    """A bad value in a serve config file; the message starts with its key."""


def _service_config(
    path: Path,
) -> tuple[dict[str, Any], dict[str, ProviderSettings], OutboxSettings]:
    """The settings of a serve config file by option name, the channels' provider settings and
    the outbox's; exits 2 with one line naming the file and the key on a bad file."""
    from engine.outbox import OutboxSettings

    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        errors.print(f"[bold red]config {path}[/]: {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None
    unknown = sorted(set(document) - set(_CONFIG_KEYS) - set(_CONFIG_TABLES))
    if unknown:
        expected = sorted([*_CONFIG_KEYS, *_CONFIG_TABLES])
        errors.print(f"[bold red]config {path}[/]: unknown keys {unknown}; expected {expected}",
                     highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    try:
        channels = _channels(document.get("channels", {}))
        outbox = _convert(document.get("outbox", {}), OutboxSettings, "outbox")
    except _ConfigError as exc:
        errors.print(f"[bold red]config {path}[/]: {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    options = {_CONFIG_KEYS[key]: value for key, value in document.items() if key in _CONFIG_KEYS}
    return options, channels, outbox


def _channels(table: object) -> dict[str, ProviderSettings]:
    """``[channels.NAME]`` tables as provider settings, by channel."""
    from engine.providers import HttpSettings, MockSettings, SmtpSettings

    providers: dict[str, type[ProviderSettings]] = {
        "http": HttpSettings, "mock": MockSettings, "smtp": SmtpSettings,
    }
    if not isinstance(table, dict):
        raise _ConfigError("channels: expected tables such as [channels.email]")
    channels: dict[str, ProviderSettings] = {}
    for channel, settings in table.items():
        where = f"channels.{channel}"
        if channel not in _CHANNELS:
            raise _ConfigError(f"{where}: unknown channel; expected one of {list(_CHANNELS)}")
        if not isinstance(settings, dict):
            raise _ConfigError(f"{where}: expected a table with provider = {' | '.join(providers)}")
        kind = settings.get("provider")
        if kind not in providers:
            what = "missing" if kind is None else f"unknown provider {kind!r}"
            raise _ConfigError(f"{where}.provider: {what}; expected one of {list(providers)}")
        channels[channel] = _convert(settings, providers[kind], where)
    return channels


def _convert(table: object, kind: type[_Settings], where: str) -> _Settings:
    """``table`` as a ``kind`` settings record; ``_ConfigError`` naming the key if it is not one."""
    try:
        return msgspec.convert(table, kind)
    except msgspec.ValidationError as exc:
        message, _, path = str(exc).partition(" - at `$")
        key = where + path.rstrip("`")
        fields = msgspec.structs.fields(kind)
        missing = re.fullmatch(r"Object missing required field `(\w+)`", message)
        if missing:
            needed = [f.name for f in fields if f.required]
            raise _ConfigError(f"{key}.{missing[1]}: missing (required: {needed})") from None
        extra = re.fullmatch(r"Object contains unknown field `(.+)`", message)
        if extra:
            known = [f.name for f in fields]
            raise _ConfigError(f"{key}.{extra[1]}: unknown key; expected one of {known}") from None
        raise _ConfigError(f"{key}: {message}") from None


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
