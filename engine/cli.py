"""The ``touchpoint`` command line.

    touchpoint run [SCENARIO]      simulate a scenario against a synthetic population
    touchpoint validate SCENARIO   check a scenario file
    touchpoint serve [SCENARIO]    run the engine as a service: HTTP ingestion, wall-clock journeys
    touchpoint export              print every profile of a service's state folder
    touchpoint scenarios           list the built-in scenarios

A bad scenario exits with status 2 and one message naming the file, journey, step and field; so
does a bad setting of ``serve`` (naming its config file and key) or a data folder it cannot write.
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
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar, get_args

import msgspec
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from actors import ScenarioError
from engine.runtime.memory import peak_rss_bytes
from engine.runtime.simulation import DAY, Simulation
from engine.scenario_files import DEFAULT_SCENARIO, load_scenario
from engine.storage.errors import StorageError
from reports.summary import print_summary
from scenarios import built_in_names

if TYPE_CHECKING:  # serve's modules load when it runs: other commands start faster without them
    from engine.delivery.outbox import OutboxSettings
    from engine.delivery.providers import ProviderSettings

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


# The bounds of serve's settings, shared by its options and the keys of its config file.
_LOWEST_PORT, _HIGHEST_PORT = 0, 65535  # 0: any free port
_MIN_SNAPSHOT_EVERY = 1.0  # seconds
_Fsync = Literal["batch", "none"]


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
    port: Annotated[
        int, typer.Option(min=_LOWEST_PORT, max=_HIGHEST_PORT, envvar="TOUCHPOINT_PORT",
                          help="Port to listen on (0: any free port).")
    ] = 8800,
    write_key: Annotated[
        list[str] | None,
        typer.Option(envvar="TOUCHPOINT_WRITE_KEY", help="A write key ingestion accepts (repeatable)."),
    ] = None,
    admin_token: Annotated[
        str | None,
        typer.Option(envvar="TOUCHPOINT_ADMIN_TOKEN", help="Bearer token of the admin API and /metrics."),
    ] = None,
    snapshot_every: Annotated[
        float, typer.Option(min=_MIN_SNAPSHOT_EVERY, help="Seconds between periodic snapshots.")
    ] = 300.0,
    fsync: Annotated[
        str, typer.Option(envvar="TOUCHPOINT_FSYNC", help="Log durability: batch (fsync per batch) or none.")
    ] = "batch",
    config: Annotated[
        Path | None,
        typer.Option(envvar="TOUCHPOINT_CONFIG",
                     help="A TOML file with any of: data, host, port, write_keys (an array of "
                          "strings), admin_token, snapshot_every, fsync (options and environment "
                          "variables win over it; a bad value exits 2 naming the key); "
                          "a \\[channels.NAME] table choosing the provider of a channel; an "
                          "\\[outbox] table of retry and breaker settings (see above)."),
    ] = None,
) -> None:
    r"""Serve the engine: Segment-compatible ingestion on HTTP, journeys on the wall clock.

    State is restored from --data at start-up (the newest snapshot plus the
    write-ahead log after it); a folder that cannot be created or written exits
    2 before anything starts. SIGINT or SIGTERM stops accepting, finishes what
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
    provider = "mock"     # latency (s), failure_rate, seed, record_limit
    \[outbox]              # every channel: workers (calls at once), max_attempts,
    max_attempts = 8      # base_delay, max_delay, breaker_failures, breaker_reset,
                          # memory_limit (dead letters, escalations kept in memory)

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

    from engine.delivery.outbox import OutboxSettings
    from engine.delivery.providers import describe
    from engine.service import CannotServe, ServiceFailed, run_service

    channels: dict[str, ProviderSettings] = {}
    outbox_settings = OutboxSettings()
    if config is not None:
        file, channels, outbox_settings = _service_config(config)
        chosen = _file_settings(ctx, file)
        data = Path(chosen.get("data", data))
        host = chosen.get("host", host)
        port = chosen.get("port", port)
        write_key = chosen.get("write_key", write_key)
        admin_token = chosen.get("admin_token", admin_token)
        snapshot_every = chosen.get("snapshot_every", snapshot_every)
        fsync = chosen.get("fsync", fsync)
    if fsync not in get_args(_Fsync):  # the file's fsync is checked already; this is the option's
        errors.print(f"[bold red]fsync {escape(repr(fsync))}[/]: expected batch or none")
        raise typer.Exit(2)

    if not write_key:
        errors.print("[bold red]no write key[/]: give --write-key KEY or set TOUCHPOINT_WRITE_KEY")
        raise typer.Exit(2)
    try:
        load_scenario(scenario)
    except ScenarioError as exc:
        raise _fail(exc) from None
    _check_data_folder(data)

    def ready(urls: list[str]) -> None:
        console.print(f"touchpoint serving {', '.join(urls)} (data: {data})", highlight=False,
                      soft_wrap=True)  # one line, for the scripts that wait for it

    sending = ", ".join(f"{channel} {describe(settings)}" for channel, settings in channels.items())
    console.print(f"sends: {sending or 'mock'}{', others mock' if sending else ''}", highlight=False,
                  soft_wrap=True)
    try:
        trio.run(partial(run_service, scenario, data, host, port, set(write_key), admin_token=admin_token,
                         snapshot_every=snapshot_every, fsync=fsync, channels=channels,
                         outbox_settings=outbox_settings, on_ready=ready))
    except ServiceFailed:  # (printed with its traceback where it happened)
        errors.print("[bold red]stopped after a failure[/]: exit 70 for a supervisor to restart the "
                     "service; the restart recovers from the log", highlight=False, soft_wrap=True)
        raise typer.Exit(70) from None
    except StorageError as exc:
        errors.print(f"[bold red]storage[/]: {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(74) from None
    except CannotServe as exc:
        errors.print(f"[bold red]cannot serve on[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    console.print("stopped cleanly: snapshot written", highlight=False)


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether an option came from the command line or the environment (not its default)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name != "DEFAULT"


def _check_data_folder(data: Path) -> None:
    """Create ``data`` (and its parents) and write a file in it, or exit 2 with one line: found
    now, where the service would fail later, with a traceback, at its first write."""
    probe = data / ".touchpoint-write-probe"
    try:
        data.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        errors.print(f"[bold red]data folder {escape(str(data))}[/]: cannot write ({escape(reason)})",
                     highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


_NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]


class _ServeFile(msgspec.Struct, forbid_unknown_fields=True):
    """The top-level keys of a serve config file, UNSET where the file leaves one out.

    Attributes are named as serve's options (``write_key`` is the file's ``write_keys``), so that
    an option given on the command line can replace its key by name.
    """

    data: str | msgspec.UnsetType = msgspec.UNSET
    host: str | msgspec.UnsetType = msgspec.UNSET
    port: (
        Annotated[int, msgspec.Meta(ge=_LOWEST_PORT, le=_HIGHEST_PORT, examples=[8800])]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    write_key: Annotated[list[_NonEmpty], msgspec.Meta(examples=[["KEY"]])] | msgspec.UnsetType = (
        msgspec.field(default=msgspec.UNSET, name="write_keys")
    )
    admin_token: Annotated[_NonEmpty, msgspec.Meta(examples=["TOKEN"])] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    snapshot_every: (
        Annotated[float, msgspec.Meta(ge=_MIN_SNAPSHOT_EVERY, examples=[300])] | msgspec.UnsetType
    ) = msgspec.UNSET
    fsync: _Fsync | msgspec.UnsetType = msgspec.UNSET


def _file_settings(ctx: typer.Context, file: _ServeFile) -> dict[str, Any]:
    """The values ``file`` sets, by option name, leaving out the options given on the command line
    or in the environment: those win over the file."""
    return {name: value for name, value in msgspec.structs.asdict(file).items()
            if value is not msgspec.UNSET and not _given(ctx, name)}


_CONFIG_TABLES = ("channels", "outbox")
_CHANNELS = ("email", "sms", "push", "in_app", "webhook")


class _ConfigError(Exception):
    """A bad value in a serve config file; the message starts with its key."""


def _service_config(
    path: Path,
) -> tuple[_ServeFile, dict[str, ProviderSettings], OutboxSettings]:
    """The top-level settings of a serve config file, the channels' provider settings and the
    outbox's; exits 2 with one line naming the file and the key on a bad file."""
    from engine.delivery.outbox import OutboxSettings

    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise _config_failure(path, str(exc)) from None
    tables = {name: document.pop(name) for name in _CONFIG_TABLES if name in document}
    keys = [field.encode_name for field in msgspec.structs.fields(_ServeFile)]
    unknown = sorted(set(document) - set(keys))
    if unknown:  # every one of them, where msgspec would name the first
        raise _config_failure(path, f"unknown keys {unknown}; expected {sorted([*keys, *_CONFIG_TABLES])}")
    try:
        file = _convert(document, _ServeFile, "")
        channels = _channels(tables.get("channels", {}))
        outbox = _convert(tables.get("outbox", {}), OutboxSettings, "outbox")
    except _ConfigError as exc:
        raise _config_failure(path, str(exc)) from None
    return file, channels, outbox


def _config_failure(path: Path, problem: str) -> typer.Exit:
    """Print ``config PATH: PROBLEM`` on stderr as one line; returns the exit (status 2) to raise."""
    errors.print(f"[bold red]config {escape(str(path))}[/]: {escape(problem)}",
                 highlight=False, soft_wrap=True)
    return typer.Exit(2)


def _channels(table: object) -> dict[str, ProviderSettings]:
    """``[channels.NAME]`` tables as provider settings, by channel."""
    from engine.delivery.providers import HttpSettings, MockSettings, SmtpSettings

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
    """``table`` as a ``kind`` settings record; ``_ConfigError`` naming the key if it is not one.

    ``where`` is the table's name in the file (``channels.email``; "" for the top level). The
    message keeps msgspec's words (``Expected `int`, got `str```) and adds, for a bad value, what
    to write instead in words for people who do not read Python types.
    """
    try:
        return msgspec.convert(table, kind)
    except msgspec.ValidationError as exc:
        message, _, path = str(exc).partition(" - at `$")
        path = path.rstrip("`")
        key = _dotted(where, path.lstrip("."))
        fields = msgspec.structs.fields(kind)
        missing = re.fullmatch(r"Object missing required field `(\w+)`", message)
        if missing:
            needed = [f.name for f in fields if f.required]
            raise _ConfigError(f"{_dotted(key, missing[1])}: missing (required: {needed})") from None
        extra = re.fullmatch(r"Object contains unknown field `(.+)`", message)
        if extra:
            known = [f.encode_name for f in fields]
            raise _ConfigError(f"{_dotted(key, extra[1])}: unknown key; expected one of {known}") from None
        raise _ConfigError(f"{key}: {message}{_what_to_write(kind, path)}") from None


def _dotted(*names: str) -> str:
    """``channels.email.port`` from its parts, the empty ones (the top level) left out."""
    return ".".join(name for name in names if name)


def _what_to_write(kind: type[msgspec.Struct], path: str) -> str:
    """``; write an integer from 0 to 65535 such as 8800``: what the key at the head of msgspec's
    ``path`` (``.port``, ``.write_keys[1]``; "" for the table itself) takes; "" when it cannot be
    said in words."""
    info: Any = msgspec.inspect.type_info(kind)
    head = re.match(r"\.(\w+)", path)
    if head:
        info = next((field.type for field in info.fields if field.encode_name == head[1]), None)
    words = _in_words(info)
    return f"; write {words}" if words else ""


_NOUNS: dict[type[msgspec.inspect.Type], tuple[str, str]] = {  # singular, plural
    msgspec.inspect.IntType: ("an integer", "integers"),
    msgspec.inspect.FloatType: ("a number", "numbers"),
    msgspec.inspect.StrType: ("a string", "strings"),
    msgspec.inspect.BoolType: ("true or false", "booleans"),
    msgspec.inspect.StructType: ("a table", "tables"),
}


def _in_words(info: Any, plural: bool = False) -> str:
    """A value of the msgspec type ``info`` as a person would ask for it in TOML: ``an array of
    non-empty strings such as ["KEY"]``; "" for a type this does not know."""
    inspect = msgspec.inspect
    if isinstance(info, inspect.Metadata):
        words = _in_words(info.type, plural)
        examples = (info.extra_json_schema or {}).get("examples")
        return f"{words} such as {json.dumps(examples[0])}" if words and examples else words
    if isinstance(info, inspect.UnionType):  # TOML has no null: None stands for a key left out
        kinds = [t for t in info.types if not isinstance(t, inspect.NoneType)]
        return " or ".join(filter(None, (_in_words(t, plural) for t in kinds)))
    if isinstance(info, inspect.LiteralType):
        return " or ".join(json.dumps(value) for value in info.values)
    if isinstance(info, (inspect.ListType, inspect.DictType)):
        array = isinstance(info, inspect.ListType)
        items = _in_words(info.item_type if array else info.value_type, plural=True)
        container = "an array" if array else "a table"
        return f"{container} of {items}" if items else container
    nouns = _NOUNS.get(type(info))
    if nouns is None:
        return ""
    if isinstance(info, inspect.StrType) and info.min_length:  # msgspec's message says how long
        nouns = ("a non-empty string", "non-empty strings")
    return nouns[plural] + _limits(info)


def _limits(info: Any) -> str:
    """The bounds of a number, or a string's pattern, as words to follow its noun."""
    if isinstance(info, msgspec.inspect.StrType):
        return f" matching {info.pattern}" if info.pattern else ""
    if not isinstance(info, (msgspec.inspect.IntType, msgspec.inspect.FloatType)):
        return ""
    if info.ge is not None and info.le is not None:
        return f" from {_number(info.ge)} to {_number(info.le)}"
    bounds = ((">=", info.ge), (">", info.gt), ("<=", info.le), ("<", info.lt))
    said = [f"{sign} {_number(value)}" for sign, value in bounds if value is not None]
    return " " + " and ".join(said) if said else ""


def _number(value: float) -> str:
    """``1`` for 1.0, as a person writes it; ``0.5`` stays."""
    return str(int(value)) if float(value).is_integer() else str(value)


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
