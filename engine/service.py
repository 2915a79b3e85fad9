"""``touchpoint serve``: the engine as a single-node service, and ``touchpoint export``.

Start-up restores state from the data folder (newest snapshot plus the write-ahead log after it)
and re-arms timers; then the HTTP edge, the engine task and a periodic snapshot task run in one
trio nursery. SIGINT or SIGTERM stops accepting requests, lets the engine finish what it has
accepted, writes a snapshot, closes the log, and returns (exit status 0).

The data folder holds ``wal/``, ``snapshots/`` and ``scenario.toml`` (the scenario the state was
built with, which ``export`` reads back).
"""

from __future__ import annotations

import json
import shutil
import signal
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import anyio
import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from actors.messages import DeliveryReceipt
from engine.http import create_app
from engine.outbox import Outbox
from engine.providers import MockProvider
from engine.realtime import RealtimeRuntime
from engine.scenario_files import Scenario, load_scenario, resolve
from engine.snapshots import recover, write_snapshot
from engine.views import profile_view

MOCK_CHANNELS = ("email", "sms", "push", "in_app", "webhook")


async def run_service(
    scenario_name: str,
    data: Path,
    host: str,
    port: int,
    write_keys: set[str],
    *,
    admin_token: str | None = None,
    snapshot_every: float = 300.0,
    fsync: str = "batch",
    on_ready: object = None,
) -> None:
    """Serve until SIGINT or SIGTERM; ``on_ready(urls)`` is called once the port is bound."""
    scenario = load_scenario(scenario_name)
    data.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(resolve(scenario_name), data / "scenario.toml")
    recovered = recover(data, scenario.program, fsync=fsync)
    log = recovered.log

    def receipt(customer_id: str, message: DeliveryReceipt) -> None:
        try:
            runtime.ingest_nowait(customer_id, message)
        except anyio.WouldBlock:
            outbox.receipts_refused += 1  # synthetic receipts only; counted, never silent

    # dry-run providers for now: every channel's sends are recorded and acknowledged
    outbox = Outbox({channel: MockProvider(receipts=receipt) for channel in MOCK_CHANNELS})
    runtime = RealtimeRuntime(scenario.program, outbox, log=log)
    runtime.restore(recovered.actors, recovered.timers, recovered.seen)
    for send in recovered.resend:  # not known to be settled before the stop: again, same keys
        outbox.deliver_nowait(0.0, send)
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_on_signals, stop)
        engine_done = trio.Event()

        async def engine() -> None:
            await runtime.run()
            engine_done.set()

        nursery.start_soon(engine)
        outbox_done = trio.Event()

        async def sending() -> None:
            await outbox.run()
            outbox_done.set()

        nursery.start_soon(sending)
        nursery.start_soon(_snapshots, runtime, data, snapshot_every)
        app = create_app(runtime, write_keys, admin_token)
        urls = await nursery.start(partial(serve, app, config, shutdown_trigger=stop.wait))
        if callable(on_ready):
            on_ready(urls)
        await stop.wait()
        # hypercorn has stopped accepting and finished its requests; drain the engine, then save
        runtime.close()
        await engine_done.wait()
        outbox.close()  # let the queued sends settle (delivered or dead-lettered)
        await outbox_done.wait()
        _snapshot(runtime, data)
        log.close()
        nursery.cancel_scope.cancel()


async def _on_signals(stop: trio.Event) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            stop.set()
            return


async def _snapshots(runtime: RealtimeRuntime, data: Path, every: float) -> None:
    while True:
        await trio.sleep(every)
        _snapshot(runtime, data)


def _snapshot(runtime: RealtimeRuntime, data: Path) -> None:
    # synchronous on purpose: no other task runs meanwhile, so the actors are exactly the state
    # after ``applied_lsn``
    lsn = runtime.applied_lsn
    pending = runtime.channel.pending.values() if isinstance(runtime.channel, Outbox) else ()
    seen = runtime.seen.recent(runtime.now())
    write_snapshot(data / "snapshots", lsn, runtime.actors.values(), seen, pending)
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
