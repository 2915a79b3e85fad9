"""Benchmark of snapshots alone: write every actor's state and restore it, N actors.

    python -m bench.snapshots --actors 1000000 --repeat 3

The actors are in the state ``bench.realtime`` snapshots: each entered the cart journey and its
first timer fired (one push sent, the next wait pending), driven here straight through the pure
core instead of the runtime, which gives the same state in a fraction of the time. Write and
restore are each run ``repeat`` times, and so is a write by a forked child as ``serve`` does
periodically (how long the parent pauses for the fork, how long the child takes, and its peak
resident memory: the pages it shares with the parent count there too, so this is the bound of
what copy-on-write may have copied, not the copy itself). The medians are printed beside the bare-loop
ceiling of the same run, as everywhere in bench/.
"""

from __future__ import annotations

import os
import resource
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Annotated

import typer

from actors.actor import Actor
from actors.journey import Program
from actors.messages import Event, TimerFired
from actors.profile import CHANNEL_BIT, Profile
from bench.ceiling import measure
from bench.report import report
from engine.runtime.channels import MockChannel
from engine.runtime.realtime import RealtimeRuntime
from engine.scenario_files import load_scenario
from engine.storage.snapshots import Snapshot, fork_snapshot, load_latest, write_snapshot

app = typer.Typer(add_completion=False)
REACH = CHANNEL_BIT["email"] | CHANNEL_BIT["push"]


def cart_actors(program: Program, count: int) -> dict[str, Actor]:
    """``count`` actors that entered the cart journey and had their first timer fire."""
    cart = Event("cart_add", {"value": 50.0})
    actors = {}
    for i in range(count):
        actor = Actor(program, Profile(f"c{i:07d}", reach=REACH))
        actor.handle(cart, 36_000.0)
        for timer in actor.live_timers():
            actor.handle(TimerFired(timer.journey, timer.version), 43_200.0)
        actors[actor.customer_id] = actor
    return actors


def _restore(folder: Path, program: Program) -> tuple[RealtimeRuntime, Snapshot, float, float]:
    """Restore as ``serve`` does: the runtime, the snapshot, seconds to load and in all."""
    began = time.perf_counter()
    snapshot = load_latest(folder, program, wake=False)
    load_seconds = time.perf_counter() - began
    runtime = RealtimeRuntime(program, MockChannel())
    runtime.restore(snapshot.actors, [], dormant=snapshot.dormant)
    return runtime, snapshot, load_seconds, time.perf_counter() - began


def restore_as_serve(folder: str) -> dict[str, float]:
    """In a fresh process: seconds to restore the snapshot in ``folder`` as ``serve`` does, and
    the process's peak memory."""
    program = load_scenario("cart_abandonment").program
    _, _, _, seconds = _restore(Path(folder), program)
    # VmHWM, not ru_maxrss: the latter keeps the peak of the parent this process was forked from
    status = Path("/proc/self/status").read_text()
    peak_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    return {"seconds": seconds, "peak_mb": peak_kb / 1024}


def measure_snapshot(program: Program, actors: dict[str, Actor]) -> dict[str, float]:
    """Write a snapshot of ``actors`` and restore it: seconds each, and the file's size.

    The restore is timed as ``serve`` restores: load the snapshot with its actors dormant and
    arm every live timer in a runtime, so that the engine could start; once here, once in a fresh
    process (as a starting ``serve`` is), with that process's peak memory. Apart from it: the load
    alone, a load that makes every actor at once (as ``export`` does), and writing the restored
    state again while its actors are still dormant (the first snapshot after a restart).
    """
    with tempfile.TemporaryDirectory() as folder:
        began = time.perf_counter()
        path = write_snapshot(Path(folder), 1, actors.values())
        write_seconds = time.perf_counter() - began
        size = path.stat().st_size
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            fresh = pool.submit(restore_as_serve, folder).result()  # the process serve would be
        runtime, snapshot, load_seconds, restore_seconds = _restore(Path(folder), program)
        if runtime.actor_count != len(actors) or len(runtime.timers) == 0:
            raise AssertionError(f"restored {runtime.actor_count} actors of {len(actors)}")
        began = time.perf_counter()
        write_snapshot(Path(folder), 2, (), dormant=snapshot.dormant)
        write_dormant_seconds = time.perf_counter() - began
        del runtime, snapshot
        began = time.perf_counter()
        restored = load_latest(Path(folder), program)
        woken_seconds = time.perf_counter() - began
    if len(restored.actors) != len(actors):
        raise AssertionError(f"restored {len(restored.actors)} actors of {len(actors)}")
    del restored
    with tempfile.TemporaryDirectory() as folder:  # as ``serve`` writes its periodic snapshots
        began = time.perf_counter()
        pid = fork_snapshot(Path(folder), 1, actors.values(), dict, [], {})
        pause = time.perf_counter() - began  # the engine waits this long
        _, status, usage = os.wait4(pid, 0)
        child_seconds = time.perf_counter() - began
        if os.waitstatus_to_exitcode(status) != 0:
            raise AssertionError("the forked snapshot writer failed")
    return {"write_seconds": write_seconds, "restore_seconds": restore_seconds, "bytes": size,
            "fresh_restore_seconds": fresh["seconds"], "fresh_restore_peak_mb": fresh["peak_mb"],
            "load_seconds": load_seconds, "restore_woken_seconds": woken_seconds,
            "write_dormant_seconds": write_dormant_seconds,
            "fork_pause_seconds": pause, "forked_write_seconds": child_seconds,
            "forked_writer_rss_mb": usage.ru_maxrss / 1024}


@app.command()
def main(
    actors: Annotated[int, typer.Option(help="How many actors to snapshot.")] = 1_000_000,
    repeat: Annotated[int, typer.Option(help="Write and restore this many times.")] = 3,
    json_out: Annotated[Path | None, typer.Option(help="Also write the results here.")] = None,
) -> None:
    """Measure snapshot write and restore seconds (medians) and the file's size."""
    program = load_scenario("cart_abandonment").program
    loaded = cart_actors(program, actors)
    runs = [measure_snapshot(program, loaded) for _ in range(repeat)]
    ceiling = measure(3)
    writes = [run["write_seconds"] for run in runs]
    restores = [run["restore_seconds"] for run in runs]
    report({
        "actors": actors,
        "snapshot_write_seconds": statistics.median(writes),
        "snapshot_restore_seconds": statistics.median(restores),
        "snapshot_write_runs": " ".join(f"{s:.2f}" for s in writes),
        "snapshot_restore_runs": " ".join(f"{s:.2f}" for s in restores),
        "snapshot_mb": runs[0]["bytes"] / 1e6,
        "restore_load_seconds": statistics.median(run["load_seconds"] for run in runs),
        "fresh_restore_seconds": statistics.median(run["fresh_restore_seconds"] for run in runs),
        "fresh_restore_runs": " ".join(f"{run['fresh_restore_seconds']:.2f}" for run in runs),
        "fresh_restore_peak_mb": max(run["fresh_restore_peak_mb"] for run in runs),
        "restore_woken_seconds": statistics.median(run["restore_woken_seconds"] for run in runs),
        "write_dormant_seconds": statistics.median(run["write_dormant_seconds"] for run in runs),
        "fork_pause_seconds": statistics.median(run["fork_pause_seconds"] for run in runs),
        "forked_write_seconds": statistics.median(run["forked_write_seconds"] for run in runs),
        "forked_writer_rss_mb": max(run["forked_writer_rss_mb"] for run in runs),
        "process_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "ceiling_events_per_second_median": ceiling["median"],
    }, json_out)


if __name__ == "__main__":
    app()
