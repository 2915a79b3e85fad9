"""Baseline (a): one trio task per customer, sleeping through its wait.

    python -m bench.baselines.trio_tasks --customers 1000000

N tasks each sleep until the same due time (trio's MockClock: the clock jumps there once every
task sleeps, so the figure is the scheduler's, not the wall clock's), then do the timer work of
``bench.baselines.work``. Reported: fires a second, from the jump to the last task's end, and the
memory each sleeping task holds (resident size before and after spawning them, over N).
"""

from __future__ import annotations

import gc
import time
from pathlib import Path
from typing import Annotated

import trio
import trio.testing
import typer

from bench.baselines.work import NOON, Customer, customers, fire
from bench.ceiling import measure
from bench.report import report
from engine.runtime.memory import rss_bytes

app = typer.Typer(add_completion=False)


@app.command()
def main(
    customers_count: Annotated[int, typer.Option("--customers", help="Tasks, one per customer.")] = 1_000_000,
    json_out: Annotated[Path | None, typer.Option(help="Also write the results here.")] = None,
) -> None:
    """One trio task per customer: fires a second and bytes per task."""
    people = customers(customers_count)
    sends: list[tuple[Customer, float]] = []
    clock = trio.testing.MockClock()
    figures: dict[str, float] = {}

    async def customer(person: Customer) -> None:
        await trio.sleep_until(NOON)
        fire(person, NOON, sends)

    async def main_task() -> None:
        gc.collect()
        before = rss_bytes()
        async with trio.open_nursery() as nursery:
            for person in people:
                nursery.start_soon(customer, person)
            await trio.testing.wait_all_tasks_blocked()
            gc.collect()
            figures["bytes_per_task"] = (rss_bytes() - before) / customers_count
            figures["started"] = time.perf_counter()
            clock.jump(NOON - trio.current_time())
        figures["seconds"] = time.perf_counter() - figures["started"]

    trio.run(main_task, clock=clock)
    report({
        "customers": customers_count,
        "sends": len(sends),
        "timer_fires_per_second": customers_count / figures["seconds"],
        "bytes_per_task": figures["bytes_per_task"],
        "ceiling_events_per_second_median": measure(3)["median"],
    }, json_out)


if __name__ == "__main__":
    app()
