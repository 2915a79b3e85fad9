"""Baseline (b): APScheduler 3 with one date job per wait.

    python -m bench.baselines.apscheduler_jobs --customers 100000

N date jobs (one per customer, each doing the timer work of ``bench.baselines.work``) are added to
a paused ``BackgroundScheduler`` (its default memory job store, a thread pool of 4 workers), all
due at once; reported: fires a second from the scheduler's resumption to the last job's end, and
the adding's rate.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from bench.baselines.work import NOON, Customer, customers, fire
from bench.ceiling import measure
from bench.report import report

app = typer.Typer(add_completion=False)


@app.command()
def main(
    customers_count: Annotated[int, typer.Option("--customers", help="Date jobs, one a customer.")] = 100_000,
    json_out: Annotated[Path | None, typer.Option(help="Also write the results here.")] = None,
) -> None:
    """APScheduler date jobs: fires a second."""
    people = customers(customers_count)
    sends: list[tuple[Customer, float]] = []
    done = threading.Event()
    count = [0]
    lock = threading.Lock()

    def job(person: Customer) -> None:
        fire(person, NOON, sends)
        with lock:
            count[0] += 1
            if count[0] == customers_count:
                done.set()

    scheduler = BackgroundScheduler(executors={"default": ThreadPoolExecutor(4)},
                                    job_defaults={"misfire_grace_time": 3600, "coalesce": False})
    scheduler.start(paused=True)
    started = time.perf_counter()
    due = datetime.now()  # (due at once: the paused scheduler runs none until it resumes)
    for person in people:
        scheduler.add_job(job, "date", run_date=due, args=(person,))
    added = time.perf_counter() - started
    began = time.perf_counter()
    scheduler.resume()
    done.wait(timeout=600)
    seconds = time.perf_counter() - began
    scheduler.shutdown(wait=False)
    report({
        "customers": customers_count,
        "fired": count[0],
        "sends": len(sends),
        "timer_fires_per_second": count[0] / seconds,
        "jobs_added_per_second": customers_count / added,
        "ceiling_events_per_second_median": measure(3)["median"],
    }, json_out)


if __name__ == "__main__":
    app()
