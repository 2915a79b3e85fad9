"""Benchmarks of the real-time engine's state: timer fires, memory, snapshots.

    python -m bench.realtime --actors 1000000

Loads N actors into a ``RealtimeRuntime`` (each enters the cart journey, so each has one pending
timer), then measures: memory per actor; firing all N timers through the runtime, each of which
sends a push through every policy (fires per second); writing a snapshot of every actor and
restoring it (seconds; ``bench.snapshots`` measures these alone, quicker to iterate on). Then
the timer machinery alone: N actors in a relay journey whose timers each move the run on to its
next wait (fire, hand to the actor, advance, re-arm; no send). The bare-loop ceiling of the same
run is printed beside, as everywhere in bench/.
"""

from __future__ import annotations

import gc
import time
import tomllib
from pathlib import Path
from typing import Annotated

import trio
import typer

from actors.actor import Actor
from actors.journey import Program
from actors.messages import Event, Schedule
from actors.profile import CHANNEL_BIT, Profile
from bench.ceiling import measure
from bench.report import report
from bench.snapshots import measure_snapshot
from engine.runtime.channels import MockChannel
from engine.runtime.memory import freeze_long_lived, peak_rss_bytes, rss_bytes
from engine.runtime.realtime import RealtimeRuntime
from engine.scenario_files import load_scenario, scenario_from_document

app = typer.Typer(add_completion=False)
REACH = CHANNEL_BIT["email"] | CHANNEL_BIT["push"]
RELAY = """
[[journeys]]
id = "relay"
entry = { event = "go" }
start = "first"
[journeys.steps.first]
wait = "1h"
next = "second"
[journeys.steps.second]
wait = "1h"
next = "end"
[journeys.steps.end]
end = true
"""


def fire_all(program: Program, actors: dict[str, Actor], timers: list[tuple[str, Schedule]],
             at: float) -> tuple[float, MockChannel]:
    """Restore the actors into a runtime at ``at`` (every timer overdue) and fire them all;
    return the seconds it took and the channel the sends went to."""
    channel = MockChannel()

    async def fire() -> float:
        runtime = RealtimeRuntime(program, channel, epoch=at - trio.current_time())
        runtime.restore(actors, timers)
        began = time.perf_counter()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(runtime.run)
            # a round fires at most TIMERS_PER_BATCH timers: wait until none is due any more
            # (the runs' next timers are an hour or more away), then stop the runtime
            while runtime.timers.peek_time() <= at:
                await trio.sleep(0)
            runtime.close()
        return time.perf_counter() - began

    return trio.run(fire), channel


def load(
    program: Program, actors: int, event: Event, reach: int
) -> tuple[dict[str, Actor], list[tuple[str, Schedule]]]:
    """N actors that each took ``event`` at 10:00 (UTC), with their live timers."""
    loaded, timers = {}, []
    for i in range(actors):
        actor = Actor(program, Profile(f"c{i:07d}", reach=reach))
        actor.handle(event, 36_000.0)
        loaded[actor.customer_id] = actor
        timers.extend((actor.customer_id, timer) for timer in actor.live_timers())
    return loaded, timers


@app.command()
def main(
    actors: Annotated[int, typer.Option(help="How many actors to load.")] = 1_000_000,
    json_out: Annotated[Path | None, typer.Option(help="Also write the results here.")] = None,
) -> None:
    """Measure timer fires per second, memory per actor, snapshot write and restore."""
    program = load_scenario("cart_abandonment").program
    before = rss_bytes()
    started = time.perf_counter()
    loaded_actors, timers = load(program, actors, Event("cart_add", {"value": 50.0}), REACH)
    load_seconds = time.perf_counter() - started
    gc.collect()
    loaded = rss_bytes()
    pending = len(timers)
    freeze_long_lived()  # as serve does once state is loaded
    # two hours later: every timer is overdue
    fire_seconds, channel = fire_all(program, loaded_actors, timers, 36_000.0 + 7_200.0)
    sends = len(channel.delivered)
    snapshot = measure_snapshot(program, loaded_actors)
    del loaded_actors, timers, channel
    relay = scenario_from_document(tomllib.loads(RELAY), "relay.toml").program
    relay_actors, relay_timers = load(relay, actors, Event("go"), REACH)
    freeze_long_lived()
    relay_seconds, _ = fire_all(relay, relay_actors, relay_timers, 36_000.0 + 3_900.0)
    ceiling = measure(3)
    result = {
        "actors": actors,
        "load_seconds": load_seconds,
        "bytes_per_actor": (loaded - before) / actors,
        "pending_timers": pending,
        "timer_fires_per_second": pending / fire_seconds,
        "sends_from_fired_timers": sends,
        "relay_timer_fires_per_second": len(relay_timers) / relay_seconds,
        "snapshot_write_seconds": snapshot["write_seconds"],
        "snapshot_restore_seconds": snapshot["restore_seconds"],
        "snapshot_bytes": int(snapshot["bytes"]),
        "ceiling_events_per_second_median": ceiling["median"],
        "peak_rss_mb": peak_rss_bytes() / 2**20,
    }
    report(result, json_out)

if __name__ == "__main__":
    app()
