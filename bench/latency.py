"""Trigger latency end to end, in-process: from an event's intended time to its send's arrival at
the provider, through the write-ahead log (fsync on), the actor and the outbox.

    python -m bench.latency --actors 1000000 --rate 100000 --seconds 5 [--sweep] [--repeat 3]

N actors are loaded (each has been in both journeys once). A producer then hands the engine
``rate`` events a second in 1-ms batches on a fixed schedule (``ingest_batch_nowait``, as the
HTTP edge hands over each request's events), each to a customer who gets no other in the run. An
event's intended time is its place on the schedule, so a producer or engine that falls behind
shows up as latency, never as a slower schedule. Each event starts a journey that sends a webhook
at once; one in ten also starts one that waits a second and then sends a push (a send made by a
timer). The
engine logs every round to the write-ahead log with an fsync before it applies it, and hands the
sends to the outbox, whose workers call a mock provider that stamps each arrival.

Reported: the offered and achieved rates; the latency of the sends made at once, from the
event's intended time (p50, p90, p99, p99.9, max); the latency of the sends made by timers, from
the timer's due time (its lateness plus the send's way out); the share of events refused (a full
inbox). ``--sweep`` steps the rate up (10k, 25k, 50k, 100k, 150k, 200k a second) until the p99
passes 100 ms or events are refused, prints each step and draws latency against throughput
(``--plot``): the knee is the last step before the curve turns up. The bare-loop ceiling of the
same run is printed beside.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Annotated, Any

import anyio
import trio
import typer

from actors.actor import Actor
from actors.messages import Event, Schedule, Send, Submission, TimerFired
from actors.profile import CHANNEL_BIT, Profile
from bench.ceiling import measure
from bench.report import report
from engine.delivery.outbox import Outbox
from engine.load.results import histogram, latencies_ms
from engine.runtime.memory import freeze_long_lived
from engine.runtime.realtime import RealtimeRuntime
from engine.scenario_files import scenario_from_document
from engine.storage.wal import WriteAheadLog

app = typer.Typer(add_completion=False)

PING = """
[[journeys]]
id = "ping"
entry = { event = "ping" }
reentry = "1s"
start = "hook"
[journeys.steps.hook]
send = { message = "pong", channel = "webhook", transactional = true }
next = "end"
[journeys.steps.end]
end = true
"""  # (bench.latency_http's journey too)
JOURNEYS = PING + """
[[journeys]]
id = "later"
entry = { event = "ping", where = [{ field = "event.timer", op = ">", value = 0 }] }
reentry = "1s"
start = "pause"
[journeys.steps.pause]
wait = "1s"
next = "nudge"
[journeys.steps.nudge]
send = { message = "nudge", channel = "push", transactional = true }
next = "end"
[journeys.steps.end]
end = true
"""
TIMER_DELAY = 1.0  # the "later" journey's wait
SWEEP_RATES = (10_000, 25_000, 50_000, 100_000, 150_000, 200_000)
KNEE_P99_MS = 100.0


class StampingProvider:
    """A mock provider that takes every send at once and times it from its trigger's intended
    time (``due``: by customer; a timer's send from that time plus the wait)."""

    def __init__(self, due: dict[str, float], delay: float, clock: Any) -> None:
        self.due, self.delay, self.clock = due, delay, clock
        self.latency = histogram()
        self.received = 0

    async def send(self, send: Send) -> None:
        intended = self.due.get(send.customer)
        if intended is not None:
            self.latency.record_value(max(1, round((self.clock() - intended - self.delay) * 1e6)))
        self.received += 1


def measure_rate(actors: int, rate: int, seconds: float, fsync: str) -> dict[str, Any]:
    """One run at ``rate`` events a second; its figures."""
    program = scenario_from_document(tomllib.loads(JOURNEYS), "latency.toml").program
    ids = [f"c{i:07d}" for i in range(actors)]
    reach = CHANNEL_BIT["webhook"] | CHANNEL_BIT["push"]
    ping, ping_timer = Event("ping"), Event("ping", {"timer": 1})
    loaded = {}
    for cid in ids:  # every actor exists, and has been through both journeys, before the load
        loaded[cid] = actor = Actor(program, Profile(cid, reach=reach))
        for effect in actor.handle(ping_timer, -10.0):
            if isinstance(effect, Schedule):  # (the wait of "later", run to its end)
                actor.handle(TimerFired(effect.journey, effect.version), effect.at)
    intended_now: dict[str, float] = {}
    intended_timer: dict[str, float] = {}
    epoch = time.time()

    def clock() -> float:  # engine time: seconds since the epoch, as the runtime counts it
        return epoch + trio.current_time()

    now_sends = StampingProvider(intended_now, 0.0, clock)
    timer_sends = StampingProvider(intended_timer, TIMER_DELAY, clock)
    outbox = Outbox({"webhook": now_sends, "push": timer_sends}, workers=8)
    with tempfile.TemporaryDirectory() as folder:
        log = WriteAheadLog(Path(folder) / "wal", fsync=fsync)
        runtime = RealtimeRuntime(program, outbox, buffer=1 << 20, log=log, epoch=epoch)
        runtime.restore(loaded, [])
        del loaded
        freeze_long_lived()
        counts = {"offered": 0, "refused": 0}
        per_ms = rate / 1000.0

        async def producer() -> None:
            start = trio.current_time()
            index = 0
            tick = 0
            while tick < seconds * 1000:
                tick += 1
                await trio.sleep_until(start + tick / 1000.0)
                due = int(tick * per_ms)
                batch = []
                while index < due:
                    cid = ids[index % actors]
                    intended = epoch + start + index / rate
                    intended_now[cid] = intended_timer[cid] = intended
                    batch.append(Submission(cid, ping_timer if index % 10 == 0 else ping))
                    index += 1
                try:
                    runtime.ingest_batch_nowait(batch)
                except anyio.WouldBlock:
                    counts["refused"] += len(batch)
                counts["offered"] += len(batch)
            await trio.sleep(TIMER_DELAY + 0.5)  # the timers' sends
            runtime.close()
            outbox.close()

        async def run() -> float:
            began = time.perf_counter()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(runtime.run)
                nursery.start_soon(outbox.run)
                nursery.start_soon(producer)
            return time.perf_counter() - began

        wall = trio.run(run)
        log.close()
    now_ms, timer_ms = latencies_ms(now_sends.latency), latencies_ms(timer_sends.latency)
    return {
        "rate": rate,
        "offered": counts["offered"],
        "refused": counts["refused"],
        "sends_at_once": now_sends.received,
        "sends_by_timers": timer_sends.received,
        "achieved_rate": now_sends.received / max(wall - TIMER_DELAY - 0.5, 1e-9),
        **{f"latency_{k}_ms": v for k, v in now_ms.items() if k != "mean"},
        **{f"timer_send_{k}_ms": v for k, v in timer_ms.items() if k != "mean"},
    }


@app.command()
def main(
    actors: Annotated[int, typer.Option(help="Actors loaded before the load starts.")] = 1_000_000,
    rate: Annotated[int, typer.Option(help="Events per second offered.")] = 100_000,
    seconds: Annotated[float, typer.Option(help="How long the load lasts.")] = 5.0,
    fsync: Annotated[str, typer.Option(help="The log's fsync: batch (each round) or none.")] = "batch",
    repeat: Annotated[int, typer.Option(min=1, help="Runs at the rate; medians are reported.")] = 1,
    sweep: Annotated[bool, typer.Option(help="Step the rate up to the knee instead.")] = False,
    plot: Annotated[Path | None, typer.Option(help="With --sweep: draw latency against throughput.")] = None,
    json_out: Annotated[Path | None, typer.Option(help="Also write the results here.")] = None,
) -> None:
    """Trigger latency in-process, through the log with fsync, the actor and the outbox."""
    if sweep:
        steps = []
        for step_rate in SWEEP_RATES:
            figures = measure_rate(actors, step_rate, seconds, fsync)
            steps.append(figures)
            print(f"{step_rate:>9,}/s  p50 {figures['latency_p50_ms']:8.2f} ms  p99 "
                  f"{figures['latency_p99_ms']:8.2f} ms  max {figures['latency_max_ms']:8.2f} ms  refused "
                  f"{figures['refused']:,}", flush=True)
            if figures["refused"] or (figures["latency_p99_ms"] or 0) > KNEE_P99_MS:
                break
        knee = _knee(steps)
        if plot is not None:
            _draw(steps, plot)
        result: dict[str, Any] = {"actors": actors, "seconds": seconds, "fsync": fsync,
                                  "knee_events_per_second": knee, "steps": steps}
    else:
        runs = [measure_rate(actors, rate, seconds, fsync) for _ in range(repeat)]
        result = {"actors": actors, "seconds": seconds, "fsync": fsync, "repeat": repeat,
                  **{key: statistics.median(r[key] for r in runs) if isinstance(runs[0][key], (int, float))
                     else runs[0][key] for key in runs[0]}}
    result["ceiling_events_per_second_median"] = measure(3)["median"]
    report({k: v for k, v in result.items() if k != "steps"})
    if json_out is not None:
        json_out.write_text(json.dumps(result, indent=2) + "\n")


def _knee(steps: list[dict[str, Any]]) -> int | None:
    """The highest rate whose p99 stayed within twice the lowest rate's and nothing was refused."""
    if not steps:
        return None
    base = steps[0]["latency_p99_ms"] or 0.0
    good = [s["rate"] for s in steps if not s["refused"] and (s["latency_p99_ms"] or 0) <= max(2 * base, 5.0)]
    return max(good) if good else None


def _draw(steps: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    achieved = [s["achieved_rate"] for s in steps]
    for key, label in (("latency_p50_ms", "p50"), ("latency_p99_ms", "p99"), ("latency_max_ms", "max")):
        axis.plot(achieved, [s[key] for s in steps], marker="o", label=label)
    axis.set_xlabel("events per second handled (each makes a send)")
    axis.set_ylabel("trigger latency (ms), log scale")
    axis.set_yscale("log")
    axis.set_title("Trigger latency against throughput (in-process, log fsync on)")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


if __name__ == "__main__":
    app()
