"""The real-time pipeline under a paced load: latency from accepted to handed to the adapter.

    python -m bench.pipeline --actors 1000000 --rate 100000 --seconds 5

Loads N actors, then a producer task hands the runtime ``rate`` events a second (in 1-ms
batches, ``ingest_batch_nowait``, as an ingestion edge hands over each request's events) for
``seconds``; each event enters a journey that sends at once, and
an adapter stamps each send. Reports the achieved rate, refusals (a full inbox), and latency
percentiles from acceptance to hand-over, with the bare-loop ceiling of the same run.
"""

from __future__ import annotations

import time
import tomllib
from typing import Annotated

import anyio
import numpy as np
import trio
import typer

from actors.actor import Actor
from actors.messages import Event, Send, Submission
from actors.profile import Profile
from bench.ceiling import measure
from bench.report import report
from engine.runtime.memory import freeze_long_lived
from engine.runtime.realtime import RealtimeRuntime
from engine.scenario_files import scenario_from_document

app = typer.Typer(add_completion=False)

PING = """
[[journeys]]
id = "ping"
entry = { event = "ping" }
reentry = "1s"
start = "hook"
[journeys.steps.hook]
send = { message = "pong", channel = "webhook" }
next = "end"
[journeys.steps.end]
end = true
"""


class StampingAdapter:
    """Records how long each send took from acceptance to hand-over."""

    def __init__(self, accepted: dict[str, float]) -> None:
        self.accepted = accepted
        self.latencies: list[float] = []

    def deliver_nowait(self, customer_id: str, item: Send, at: float) -> None:
        self.latencies.append(time.perf_counter() - self.accepted[item.customer])


@app.command()
def main(
    actors: Annotated[int, typer.Option(help="Actors loaded before the load starts.")] = 1_000_000,
    rate: Annotated[int, typer.Option(help="Events per second offered.")] = 100_000,
    seconds: Annotated[float, typer.Option(help="How long the load lasts.")] = 5.0,
) -> None:
    """Measure the pipeline's latency and throughput under a paced load."""
    program = scenario_from_document(tomllib.loads(PING), "ping.toml").program
    accepted: dict[str, float] = {}
    adapter = StampingAdapter(accepted)
    runtime = RealtimeRuntime(program, adapter, buffer=1 << 20)
    ids = [f"c{i:07d}" for i in range(actors)]
    ping = Event("ping")
    loaded = {}
    for cid in ids:  # every actor exists (and has been in the journey) before the load
        loaded[cid] = actor = Actor(program, Profile(cid))
        actor.handle(ping, -10.0)
    runtime.restore(loaded, [])
    freeze_long_lived()
    offered = refused = 0

    async def producer() -> None:
        nonlocal offered, refused
        chunk = max(1, rate // 1000)
        start = trio.current_time()
        index = 0
        while (now := trio.current_time()) - start < seconds:
            due = int((now - start) * rate)
            while offered < due:
                batch = []
                for _ in range(min(chunk, due - offered)):
                    cid = ids[index % actors]
                    index += 1
                    accepted[cid] = time.perf_counter()
                    batch.append(Submission(cid, ping))
                try:
                    runtime.ingest_batch_nowait(batch)  # as an edge hands over a request's events
                except anyio.WouldBlock:
                    refused += len(batch)
                offered += len(batch)
                await trio.sleep(0)
            await trio.sleep(0.001)
        runtime.close()

    async def run() -> float:
        began = time.perf_counter()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(runtime.run)
            nursery.start_soon(producer)
        return time.perf_counter() - began

    wall = trio.run(run)
    latencies = np.asarray(adapter.latencies) * 1000.0
    ceiling = measure(3)
    result = {
        "actors": actors,
        "offered_rate": rate,
        "events_offered": offered,
        "refused": refused,
        "sends": len(latencies),
        "achieved_rate": len(latencies) / wall,
        "latency_p50_ms": float(np.percentile(latencies, 50)) if len(latencies) else float("nan"),
        "latency_p99_ms": float(np.percentile(latencies, 99)) if len(latencies) else float("nan"),
        "latency_max_ms": float(latencies.max()) if len(latencies) else float("nan"),
        "ceiling_events_per_second_median": ceiling["median"],
    }
    report(result)

if __name__ == "__main__":
    app()
