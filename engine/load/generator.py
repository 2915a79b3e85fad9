"""An open-loop load: requests go out at their intended times, whatever the server answers.

The arrival rate is a list of stages, each ramping linearly from the rate before it to its own
target over its duration (k6's ramping arrival rate; a constant rate is one stage that starts at
its target). Request ``k`` is due when the stages' events reach ``k * batch``.

One dispatcher puts each request in a queue at its intended time; ``connections`` senders take
them from it, each over a kept-alive connection. A request is timed from its intended time to its
whole answer, so a server that stalls shows up as latency: the requests due during the stall
wait in the queue and are timed from when they were due (a closed-loop generator, sending the
next request only after the last answer, would send fewer and hide it: coordinated omission). A
request that starts more than ``LATE`` after its intended time is counted late; one that finds
the queue full (``backlog`` requests waiting) is dropped and counted, so memory stays bounded.

The run is bounded: the stages' end, then at most ``timeout`` seconds for the last answers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import trio

from engine.load.results import SecondsFile, Tally, status_of
from engine.load.traffic import Traffic

LATE = 0.010  # seconds after its intended time a request may start and still be on time
STEP = 0.001  # seconds: the arrival schedule's resolution


@dataclass(frozen=True)
class Stage:
    """Ramp linearly to ``target`` events a second over ``seconds`` (from the previous stage's
    target, or from ``start`` for the first)."""

    seconds: float
    target: float


def constant(rate: float, seconds: float) -> list[Stage]:
    """A constant rate: the one stage, from its target."""
    return [Stage(0.0, rate), Stage(seconds, rate)]


def arrivals(stages: list[Stage], batch: int) -> Iterator[float]:
    """The intended times (seconds from the start) of requests of ``batch`` events."""
    at, owed, rate = 0.0, 0.0, 0.0
    for stage in stages:
        if stage.seconds <= 0:
            rate = stage.target
            continue
        steps = max(1, round(stage.seconds / STEP))
        start, slope = rate, (stage.target - rate) / steps
        for i in range(steps):
            owed += (start + slope * (i + 0.5)) * STEP
            while owed >= batch:
                owed -= batch
                yield at + i * STEP
        at += steps * STEP
        rate = stage.target


def total_seconds(stages: list[Stage]) -> float:
    return sum(stage.seconds for stage in stages)


@dataclass
class Plan:
    """A load run: where, what and how fast."""

    url: str
    write_key: str
    stages: list[Stage]
    batch: int = 100
    connections: int = 16
    timeout: float = 10.0  # seconds a request may take
    backlog: int = 100_000  # requests that may wait for a connection


async def run(plan: Plan, traffic: Traffic, seconds_file: SecondsFile,
              on_second: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Send the plan's load; return the summary: ``Tally.figures`` of the whole run, when it
    started (Unix time: request ``k`` was due that long after it) and how long it lasted. Each
    second's figures go to ``seconds_file`` and ``on_second``."""
    total, second = Tally(), Tally()
    queue_in, queue_out = trio.open_memory_channel[float](plan.backlog)
    wall_zero, zero = time.time(), trio.current_time()
    limits = httpx.Limits(max_connections=plan.connections, max_keepalive_connections=plan.connections)
    headers = {"content-type": "application/json", "user-agent": "touchpoint-load"}
    async with httpx.AsyncClient(base_url=plan.url.rstrip("/"), limits=limits, timeout=plan.timeout,
                                 auth=(plan.write_key, ""), headers=headers) as client:

        async def sender(requests: trio.MemoryReceiveChannel[float]) -> None:
            async with requests:
                async for intended in requests:
                    now = trio.current_time() - zero
                    if now - intended > LATE:
                        total.late += 1
                        second.late += 1
                    body = traffic.batch(plan.batch, wall_zero + intended, wall_zero + now)
                    total.sent += 1
                    second.sent += 1
                    try:
                        answer = await client.post("/v1/batch", content=body)
                        status = status_of(answer.status_code)
                    except httpx.HTTPError:
                        status = status_of(None)
                    latency = trio.current_time() - zero - intended
                    total.answered(status, plan.batch, latency)
                    second.answered(status, plan.batch, latency)

        async def dispatch() -> None:
            async with queue_in:
                for intended in arrivals(plan.stages, plan.batch):
                    await trio.sleep_until(zero + intended)
                    for tally in (total, second):
                        tally.intended += 1
                        tally.offered_events += plan.batch
                    try:
                        queue_in.send_nowait(intended)
                    except trio.WouldBlock:
                        total.dropped += 1
                        second.dropped += 1

        async def tick(done: trio.Event) -> None:
            nonlocal second
            number = 0
            while not done.is_set():
                number += 1
                with trio.move_on_at(zero + number):
                    await done.wait()
                ended, second = second, Tally()
                line = {"second": number, **ended.figures(1.0)}
                seconds_file.write(line)
                if on_second is not None:
                    on_second(line)

        finished = trio.Event()
        async with trio.open_nursery() as outer:
            outer.start_soon(tick, finished)
            with trio.move_on_at(zero + total_seconds(plan.stages) + plan.timeout):  # bounded
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(dispatch)
                    for _ in range(plan.connections):
                        nursery.start_soon(sender, queue_out.clone())
                    await queue_out.aclose()
            finished.set()
    elapsed = min(trio.current_time() - zero, total_seconds(plan.stages)) or 1.0
    lasted = round(trio.current_time() - zero, 3)
    return {"started_at": wall_zero, "seconds": lasted, **total.figures(elapsed)}
