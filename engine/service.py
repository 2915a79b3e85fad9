"""``touchpoint serve``: the engine as a single-node service, and ``touchpoint export``.

Start-up restores state from the data folder (newest snapshot plus the write-ahead log after it)
and re-arms timers; then the HTTP edge, the engine task, the outbox and a periodic snapshot task
run in one trio nursery.

Stopping is bounded, whatever is in flight. SIGINT or SIGTERM:

    1. the HTTP edge stops accepting and finishes the requests in hand (hypercorn's graceful
       timeout: 3 s);
    2. the outbox stops (``Outbox.stop``): no new provider call, the calls in flight get up to
       ``STOP_GRACE`` seconds, backoffs and breaker waits end at once; every unsettled send stays
       pending;
    3. the engine handles what is queued (receipts included) and stops; timers still due stay
       with their actors;
    4. the last snapshot is written with the pending sends, which the next start hands to the
       outbox again under their idempotency keys, as after a crash; the log is closed, and
       ``run_service`` returns (exit status 0).

Failure is loud. If a task fails (the engine, the outbox or the snapshot task raising what it
was not built to: our bug), the error is printed once with its traceback, ingestion answers 503
and ``/healthz`` "failed", the edge finishes its requests, and ``run_service`` raises
``ServiceFailed`` without writing a snapshot (the state may be half-updated; the log is the
truth): the process exits non-zero within seconds for a supervisor to restart it, and the restart
recovers every acknowledged event. Storage faults are not bugs: a log that cannot be written
answers 503 until it can (``engine.runtime.realtime``); a snapshot that cannot be written is reported
(stderr and ``/metrics``) and leaves the older snapshot and the log as they were.

Periodic snapshots are written by a forked child (``engine.storage.snapshots.fork_snapshot``), so the
engine pauses for the fork, not for the write; once the child has put the snapshot in place, the
log before it is dropped. Where there is no ``fork``, and for the last snapshot, the engine
writes it itself.

Each channel sends through the provider its settings name (``engine.delivery.providers``: mock, HTTP or
SMTP); a channel without settings gets the mock, which records sends and reports them delivered.

The data folder holds ``wal/``, ``snapshots/``, ``settled.log`` (the sends settled since the
last snapshot; ``settled.log.prev`` while a background snapshot is written),
``dead-letters.jsonl`` (the sends given up on, for the operator) and ``scenario.toml`` (the
scenario the state was built with, which ``export`` reads back). A restart hands the outbox
again every send of the recovered state that is not in ``settled.log`` (or ``.prev``), under its
idempotency key.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import AsyncExitStack
from functools import partial
from pathlib import Path

import anyio
import httpx
import msgspec
import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from actors.messages import DeliveryReceipt
from engine.delivery.outbox import Outbox, OutboxSettings, Provider
from engine.delivery.providers import (
    PROVIDER_CHANNELS,
    AddressOf,
    HttpProvider,
    HttpSettings,
    MockProvider,
    MockSettings,
    ProviderSettings,
    Receipts,
    SmtpProvider,
    SmtpSettings,
)
from engine.edge.archive import Archive
from engine.edge.http import create_app
from engine.edge.views import profile_view
from engine.lab.scoring import Scoring
from engine.runtime.calendar import keep_calendar
from engine.runtime.desk import Desk
from engine.runtime.memory import freeze_long_lived
from engine.runtime.realtime import RealtimeRuntime
from engine.scenario_files import Scenario, load_scenario
from engine.storage.errors import StorageError
from engine.storage.outbox_files import DeadLetterFile, SettledLog
from engine.storage.recovery import recover
from engine.storage.snapshots import SnapshotStatistics, fork_snapshot, write_snapshot
from reports.metrics import RunMetrics

STOP_GRACE = 5.0  # seconds a provider call in flight at shutdown may take to finish


class CannotServe(Exception):
    """The HTTP edge could not bind its address (the port is taken, or the host is not this one's)."""


class ServiceFailed(Exception):
    """A task of the service failed (our bug); it was printed with its traceback. Exit non-zero:
    a supervisor restarts the service, which recovers from its log."""


async def run_service(
    scenario: Scenario,
    scenario_file: Path,
    data: Path,
    host: str,
    port: int,
    write_keys: set[str],
    *,
    admin_token: str | None = None,
    agent_token: str | None = None,
    snapshot_every: float = 300.0,
    fsync: str = "batch",
    channels: Mapping[str, ProviderSettings] | None = None,
    outbox_settings: OutboxSettings | None = None,
    on_ready: object = None,
    archive: bool = False,
) -> None:
    """Serve until SIGINT or SIGTERM; ``on_ready(urls)`` is called once the port is bound.

    ``scenario`` is the loaded scenario and ``scenario_file`` the file it was loaded from, copied
    into ``data`` (``export`` reads it back). ``channels`` gives a channel's provider settings
    (the mock for a channel not in it); ``outbox_settings`` the outbox's workers, retries and
    breaker. With ``archive``, every call accepted is appended to ``data/archive.ndjson``
    (``engine.edge.archive.Archive``: what ``touchpoint replay`` reads).
    """
    # signals are taken from here on: one that comes during recovery stops the service as soon as
    # it runs, cleanly, instead of killing it
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        data.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(scenario_file, data / "scenario.toml")
        for unfinished in (data / "snapshots").glob(".snap-*.tmp"):
            unfinished.unlink()  # a writer that died with an earlier run (writers die with the engine)
        metrics = RunMetrics(scenario.program, 0, close_windows=True)  # the snapshot's, then the log's
        desk = Desk(scenario.simulation.agents)  # (the same: its cases, and the agents' actions)
        recovered = recover(data, scenario.program, fsync=fsync, wake=False, tallies=metrics, desk=desk)
        log = recovered.log
        settled = SettledLog(data / "settled.log")
        metrics.count_recalled_keys(settled.recalled_before)  # (since the snapshot, which has the rest)
        dead = DeadLetterFile(data / "dead-letters.jsonl")

        def receipt(customer_id: str, message: DeliveryReceipt) -> None:
            try:
                runtime.ingest_nowait(customer_id, message)
            except (anyio.WouldBlock, anyio.ClosedResourceError):  # saturated, or stopping
                outbox.receipts_refused += 1  # synthetic receipts only; counted, never silent

        def trait_of(name: str) -> AddressOf:
            def address_of(customer_id: str) -> str | None:
                actor = runtime.actor(customer_id)
                value = actor.profile.trait(name) if actor is not None else None
                return value if isinstance(value, str) else None

            return address_of

        chosen = {channel: (channels or {}).get(channel, MockSettings()) for channel in PROVIDER_CHANNELS}
        async with AsyncExitStack() as clients:
            providers = {ch: await _provider(s, receipt, trait_of, clients) for ch, s in chosen.items()}
            rates = {ch: s.rate for ch, s in chosen.items() if s.rate is not None}
            options = msgspec.structs.asdict(outbox_settings or OutboxSettings())
            outbox = Outbox(providers, rates=rates, settled_log=settled, dead_letter_file=dead, **options)
            runtime = RealtimeRuntime(scenario.program, outbox, log=log, metrics=metrics, desk=desk)
            outbox.clock = runtime.now  # (trigger latency: engine time on both ends)
            runtime.restore(recovered.actors, recovered.timers, recovered.seen, recovered.aliases,
                            recovered.dormant)
            freeze_long_lived()
            for send in recovered.resend:  # not known to be settled before the stop: again, same keys
                if send.key not in settled.settled_before:
                    outbox.deliver_nowait(send.customer, send, 0.0)
            archived = Archive(data / "archive.ndjson") if archive else None
            try:
                await _serve(runtime, outbox, data, host, port, write_keys, signals,
                             (admin_token, agent_token), snapshot_every, on_ready, archived)
            finally:
                settled.close()
                dead.close()
                if archived is not None:
                    archived.close()


async def _provider(
    settings: ProviderSettings,
    receipts: Receipts,
    trait_of: Callable[[str], AddressOf],
    clients: AsyncExitStack,
) -> Provider:
    """The provider ``settings`` describe (an HTTP one's client closes with ``clients``)."""
    if isinstance(settings, SmtpSettings):
        return SmtpProvider(settings.host, settings.port, settings.sender, trait_of(settings.address_trait))
    if isinstance(settings, HttpSettings):
        client = await clients.enter_async_context(httpx.AsyncClient(timeout=settings.timeout))
        address_of = trait_of(settings.address_trait) if settings.address_trait else None
        return HttpProvider(settings.url, client, dict(settings.headers), address_of)
    return MockProvider(settings.latency, settings.failure_rate, settings.seed, receipts=receipts,
                        record_limit=settings.record_limit)


async def _serve(
    runtime: RealtimeRuntime,
    outbox: Outbox,
    data: Path,
    host: str,
    port: int,
    write_keys: set[str],
    signals: AsyncIterator[int],
    tokens: tuple[str | None, str | None],
    snapshot_every: float,
    on_ready: object,
    archive: Archive | None = None,
) -> None:
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    stop = trio.Event()
    failures: list[BaseException] = []
    snapshots = SnapshotStatistics()
    final = False
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_on_signals, signals, stop)

        def supervised(name: str, work: Callable[[], Awaitable[None]]) -> trio.Event:
            done = trio.Event()
            nursery.start_soon(_supervise, name, work, done, failures, runtime, stop)
            return done

        engine_done = supervised("engine", runtime.run)
        outbox_done = supervised("outbox", outbox.run)
        snapshotting = trio.Lock()  # one snapshot at a time: a background one, or the last
        scoring = runtime.metrics.scoring = Scoring.of(runtime.program.scoring)
        supervised("calendar", partial(keep_calendar, runtime, scoring))  # (scores, broadcasts)
        supervised("snapshot task",
                   partial(_snapshots, runtime, outbox, data, snapshot_every, snapshotting, snapshots))
        app = create_app(runtime, write_keys, tokens[0], snapshots=snapshots, agent_token=tokens[1],
                         archive=archive)
        http_done = trio.Event()

        async def http(task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
            await serve(app, config, shutdown_trigger=stop.wait, task_status=task_status)
            http_done.set()

        unbound: OSError | None = None
        try:
            urls = await nursery.start(http)
        except* OSError as group:  # the port is taken, or the address is not this host's
            unbound = next(_leaves(group))
        else:
            if callable(on_ready):
                on_ready(urls)
            await stop.wait()
            await http_done.wait()  # no new request; those in hand answered (hypercorn's grace)
        if unbound is not None or failures:
            nursery.cancel_scope.cancel()  # a crash, in effect: the log is the truth
        else:
            outbox.stop(STOP_GRACE)
            await outbox_done.wait()  # what is not settled stays pending (in the snapshot)
            runtime.close()
            await engine_done.wait()  # the queued messages (receipts too) handled
            async with snapshotting:  # (a background snapshot finishes first)
                final = _snapshot(runtime, outbox, data, snapshots)
            nursery.cancel_scope.cancel()
    if runtime.log is not None:
        runtime.log.close()
    if unbound is not None:
        raise CannotServe(f"{host}:{port}: {unbound.strerror or unbound}") from unbound
    if failures:
        raise ServiceFailed(f"{failures[0]!r}") from failures[0]
    if not final:
        raise StorageError(f"the last snapshot could not be written ({snapshots.last_error}); the log "
                           "holds every acknowledged event, so the next start recovers them")


def _leaves(group: BaseExceptionGroup[OSError]) -> Iterator[OSError]:
    """The exceptions of a (nested) exception group."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


async def _supervise(
    name: str,
    work: Callable[[], Awaitable[None]],
    done: trio.Event,
    failures: list[BaseException],
    runtime: RealtimeRuntime,
    stop: trio.Event,
) -> None:
    """Run one of the service's tasks; if it fails, print it once and stop the service."""
    try:
        await work()
    except Exception as exc:  # our bug (storage faults are handled where they happen)
        failures.append(exc)
        print(f"touchpoint: the {name} failed; stopping without a snapshot (the log has every "
              "acknowledged event; a restart recovers them):", file=sys.stderr, flush=True)
        traceback.print_exception(exc, file=sys.stderr)
        if runtime.failure is None:
            runtime.failure = exc  # ingestion answers 503 at once
        stop.set()
    finally:
        done.set()


async def _on_signals(signals: AsyncIterator[int], stop: trio.Event) -> None:
    async for _ in signals:
        stop.set()
        return


async def _snapshots(
    runtime: RealtimeRuntime,
    outbox: Outbox,
    data: Path,
    every: float,
    lock: trio.Lock,
    statistics: SnapshotStatistics,
) -> None:
    while True:
        await trio.sleep(every)
        async with lock:
            if hasattr(os, "fork"):
                await _snapshot_in_background(runtime, outbox, data, statistics)
            else:
                _snapshot(runtime, outbox, data, statistics)


def _snapshot(runtime: RealtimeRuntime, outbox: Outbox, data: Path, statistics: SnapshotStatistics) -> bool:
    """Write a snapshot here and now (the engine waits): the last one, at shutdown. Return
    whether it was written (a failure is reported and leaves the older snapshot and the log)."""
    # synchronous on purpose: no other task runs meanwhile, so the actors are exactly the state
    # after ``applied_lsn``, and the outbox's pending sends are exactly those not yet settled
    lsn = runtime.applied_lsn
    seen = runtime.seen.recent(runtime.now())
    try:
        write_snapshot(data / "snapshots", lsn, runtime.actors.values(), seen, outbox.pending.values(),
                       runtime.aliases.of, runtime.dormant, runtime.state())
    except StorageError as exc:
        statistics.failure(str(exc))
        return False
    if outbox.settled_log is not None:
        # a restart from this snapshot re-sends its pending sends and those the log after it
        # produces: none of the keys settled so far can be among them
        outbox.settled_log.restart()
    _snapshot_in_place(runtime, data, lsn)
    statistics.succeeded()
    return True


async def _snapshot_in_background(
    runtime: RealtimeRuntime, outbox: Outbox, data: Path, statistics: SnapshotStatistics
) -> None:
    """Write a snapshot from a forked child while the engine goes on (``fork_snapshot``)."""
    # the state at the fork is exactly the state after ``applied_lsn``, as in ``_snapshot``:
    # no other task runs between these lines
    lsn, now = runtime.applied_lsn, runtime.now()
    if outbox.settled_log is not None:
        outbox.settled_log.rotate()  # the keys settled before the fork, until the snapshot is in
    try:
        pid = fork_snapshot(data / "snapshots", lsn, runtime.actors.values(),
                            partial(runtime.seen.recent, now), outbox.pending.values(),
                            runtime.aliases.of, runtime.dormant, runtime.state)
    except OSError as exc:  # (no memory or no process left for a child)
        print(f"cannot start a snapshot writer ({exc}); writing the snapshot in-process",
              file=sys.stderr, flush=True)
        _snapshot(runtime, outbox, data, statistics)
        return
    _, status = await trio.to_thread.run_sync(os.waitpid, pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:  # (the writer told why on stderr)
        statistics.failure(f"background snapshot at {lsn}: writer exit {os.waitstatus_to_exitcode(status)}; "
                           "the next one tries again")
        return
    if outbox.settled_log is not None:
        outbox.settled_log.drop_rotated()
    _snapshot_in_place(runtime, data, lsn)
    statistics.succeeded()


def _snapshot_in_place(runtime: RealtimeRuntime, data: Path, lsn: int) -> None:
    """A snapshot at ``lsn`` is in place: drop what it makes redundant."""
    for old in sorted((data / "snapshots").glob("snap-*.msgpack"))[:-2]:
        old.unlink()  # keep the two newest
    if runtime.log is not None:
        runtime.log.drop_through(lsn)


def export_profiles(data: Path) -> Iterator[str]:
    """Every profile in ``data`` as one JSON line, rebuilt offline from snapshot plus log."""
    scenario: Scenario = load_scenario(str(data / "scenario.toml"))
    recovered = recover(data, scenario.program, fsync="none")
    recovered.log.close()
    for customer_id in sorted(recovered.actors):
        yield json.dumps(profile_view(recovered.actors[customer_id]), sort_keys=True)
