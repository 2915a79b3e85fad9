"""Benchmarks of the real-time engine's state: timer fires, memory, snapshots.

    python -m bench.realtime --actors 1000000

Loads N actors into a ``RealtimeRuntime`` (each enters the cart journey, so each has one pending
timer), then measures: memory per actor; firing all N timers in one batch through the runtime
(fires per second); writing a snapshot of every actor and restoring it (seconds;
``bench.snapshots`` measures these alone, quicker to iterate on). The bare-loop ceiling of the
same run is printed beside, as everywhere in bench/.
"""

from __future__ import annotations

import gc
import time
from pathlib import Path
from typing import Annotated

import trio
import typer

from actors.actor import Actor
from actors.messages import Event
from actors.profile import CHANNEL_BIT, Profile
from bench.ceiling import measure
from bench.report import report
from bench.snapshots import measure_snapshot
from engine.channels import MockChannel
from engine.memory import peak_rss_bytes, rss_bytes
from engine.realtime import RealtimeRuntime
from engine.scenario_files import load_scenario

app = typer.Typer(add_completion=False)
REACH = CHANNEL_BIT["email"] | CHANNEL_BIT["push"]


@app.command()
def main(
    actors: Annotated[int, typer.Option(help="How many actors to load.")] = 1_000_000,
    json_out: Annotated[Path | None, typer.Option(help="Also write the results here.")] = None,
) -> None:
    """Measure timer fires per second, memory per actor, snapshot write and restore."""
    program = load_scenario("cart_abandonment").program
    channel = MockChannel()
    cart = Event("cart_add", {"value": 50.0})
    before = rss_bytes()
    started = time.perf_counter()
    loaded_actors, timers = {}, []
    for i in range(actors):
        actor = Actor(program, Profile(f"c{i:07d}", reach=REACH))
        actor.handle(cart, 36_000.0)  # entering schedules the 1-hour timer
        loaded_actors[actor.customer_id] = actor
        timers.extend((actor.customer_id, timer) for timer in actor.live_timers())
    load_seconds = time.perf_counter() - started
    gc.collect()
    loaded = rss_bytes()
    pending = len(timers)

    async def fire_all() -> float:
        # restored two hours later: every timer is overdue and fires in the runtime's first batch
        runtime = RealtimeRuntime(program, channel, epoch=36_000.0 + 7_200.0 - trio.current_time())
        runtime.restore(loaded_actors, timers)
        runtime.close()
        began = time.perf_counter()
        await runtime.run()
        return time.perf_counter() - began

    fire_seconds = trio.run(fire_all)
    sends = len(channel.delivered)
    snapshot = measure_snapshot(program, loaded_actors)
    ceiling = measure(3)
    result = {
        "actors": actors,
        "load_seconds": load_seconds,
        "bytes_per_actor": (loaded - before) / actors,
        "pending_timers": pending,
        "timer_fires_per_second": pending / fire_seconds,
        "sends_from_fired_timers": sends,
        "snapshot_write_seconds": snapshot["write_seconds"],
        "snapshot_restore_seconds": snapshot["restore_seconds"],
        "snapshot_bytes": int(snapshot["bytes"]),
        "ceiling_events_per_second_median": ceiling["median"],
        "peak_rss_mb": peak_rss_bytes() / 2**20,
    }
    report(result, json_out)

if __name__ == "__main__":
    app()
