"""The service commands: ``serve`` the engine (HTTP ingestion, wall-clock journeys), ``export``
the profiles of its state folder. Each option of ``serve`` is resolved by click from the command
line, then its environment variable, then the ``--config`` file (``engine.cli.serve_config``),
then its default."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import Annotated, get_args

import typer
from rich.markup import escape

from actors import ScenarioError
from engine.cli.output import console, errors, refuse_scenario
from engine.cli.serve_config import (
    HIGHEST_PORT,
    LOWEST_PORT,
    MIN_SNAPSHOT_EVERY,
    Fsync,
    config_tables,
    read_config_file,
)
from engine.scenario_files import DEFAULT_SCENARIO, load_scenario, resolve
from engine.storage.errors import StorageError

READY = "touchpoint serving {urls} (data: {data})"  # one line, for the scripts that wait for it


def announced_url(output: Iterable[str]) -> str | None:
    """The first URL a ``serve`` process announces on its output (read line by line until it
    comes), or None if the output ends first: how scripts and tests wait for a service."""
    for line in output:
        found = re.search(r"touchpoint serving (http://[^\s,]+)", line)
        if found:
            return found.group(1)
    return None


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
        int, typer.Option(min=LOWEST_PORT, max=HIGHEST_PORT, envvar="TOUCHPOINT_PORT",
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
    agent_token: Annotated[
        str | None,
        typer.Option(envvar="TOUCHPOINT_AGENT_TOKEN",
                     help="Bearer token of the agent API only (/v1/desk, /v1/cases); the admin "
                          "token opens it too."),
    ] = None,
    snapshot_every: Annotated[
        float, typer.Option(min=MIN_SNAPSHOT_EVERY, help="Seconds between periodic snapshots.")
    ] = 300.0,
    fsync: Annotated[
        str, typer.Option(envvar="TOUCHPOINT_FSYNC", help="Log durability: batch (fsync per batch) or none.")
    ] = "batch",
    archive: Annotated[
        bool, typer.Option(help="Append every call accepted to DATA/archive.ndjson, with when it was "
                                "received: a log `touchpoint replay` runs a design over.")
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option(envvar="TOUCHPOINT_CONFIG", is_eager=True, callback=read_config_file,
                     help="A TOML file with any of: data, host, port, write_keys (an array of "
                          "strings), admin_token, agent_token, snapshot_every, fsync, archive (options and "
                          "environment variables win over it; a bad value exits 2 naming the key); "
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
                          # memory_limit (dead letters kept in memory)

    Channels: email, sms, push, in_app, webhook. One without a table gets the
    mock, which records its sends and reports them delivered. A bad table
    exits 2 naming the file and the key.

    The HTTP provider POSTs JSON (customer, channel, message, journey, entry,
    transactional, to) with an Idempotency-Key header; 2xx is success, 408,
    429 and 5xx are retried, other statuses are dead-lettered. A restart after
    a crash sends again, under the same keys, whatever was not known to be
    settled: a provider that honours the key applies each send once.

    Escalations open cases in the scenario's agent queues (\[agents.NAME]),
    which agents work through the agent API with --agent-token (or the admin
    token): GET /v1/desk and /v1/desk/QUEUE list them with the customer's
    context; POST /v1/cases/ID/claim, /reply and /resolve act on one. A
    resolution reaches the customer's journeys as ticket_resolved.
    """
    import trio

    from engine.delivery.providers import describe
    from engine.service import CannotServe, ServiceFailed, run_service

    channels, outbox_settings = config_tables(ctx)
    if fsync not in get_args(Fsync):  # the file's fsync is checked already; this is the option's
        errors.print(f"[bold red]fsync {escape(repr(fsync))}[/]: expected batch or none")
        raise typer.Exit(2)

    if not write_key:
        errors.print("[bold red]no write key[/]: give --write-key KEY or set TOUCHPOINT_WRITE_KEY")
        raise typer.Exit(2)
    try:
        loaded = load_scenario(scenario)
    except ScenarioError as exc:
        raise refuse_scenario(exc) from None
    _check_data_folder(data)

    def ready(urls: list[str]) -> None:
        console.print(READY.format(urls=", ".join(urls), data=data), highlight=False, soft_wrap=True)

    sending = ", ".join(f"{channel} {describe(settings)}" for channel, settings in channels.items())
    console.print(f"sends: {sending or 'mock'}{', others mock' if sending else ''}", highlight=False,
                  soft_wrap=True)
    try:
        trio.run(partial(run_service, loaded, resolve(scenario), data, host, port, set(write_key),
                         admin_token=admin_token, agent_token=agent_token,
                         snapshot_every=snapshot_every, fsync=fsync,
                         channels=channels, outbox_settings=outbox_settings, on_ready=ready,
                         archive=archive))
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
