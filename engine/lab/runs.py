"""Designs, and their runs in worker processes.

A ``Design`` names what to simulate: a scenario file or built-in, optionally one of its
variants, optionally values set by dotted path (a sweep's point). A ``Job`` is a design with a
population (customers, days, seed); ``simulate`` runs one job and returns its metrics and each
customer's outcomes. ``run_jobs`` runs many on a process pool, reporting each one's simulated
time as it goes, so one progress bar per job can follow them. Every job of a compare or sweep
uses the same population and the world's common random numbers, so two designs differ only by
what they change.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from engine.runtime.memory import peak_rss_bytes
from engine.runtime.simulation import Simulation
from engine.scenario_files import Scenario, load_scenario
from reports.metrics import Outcomes
from scenarios.behaviour import World
from scenarios.sessions import remember_days


@dataclass(frozen=True)
class Design:
    """What to simulate.

    Attributes:
        name: how reports call it (the variant's or the file's name, or the point's settings).
        source: a scenario file or a built-in name.
        variant: one of the scenario's ``[variants]``, or None for the scenario as written.
        settings: values set by dotted path over it (``{"policy.caps.0.max": 2}``).
        description: what the design is, for reports (the variant's or the file's own).
    """

    name: str
    source: str
    variant: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    def load(self) -> Scenario:
        """The design's scenario, validated and compiled."""
        scenario = load_scenario(self.source)
        if self.variant is not None:
            scenario = scenario.variant(self.variant)
        if self.settings:
            scenario = scenario.with_settings(self.settings, self.name)
        return scenario


@dataclass(frozen=True)
class Job:
    """A design on a population; ``unnoticed``: channels whose messages the customers do not
    notice (the truth's counterfactual runs: ``engine.lab.truth``)."""

    design: Design
    customers: int
    days: float
    seed: int
    unnoticed: frozenset[str] = frozenset()


@dataclass(frozen=True)
class DesignRun:
    """What a job gave: the run's metrics (metrics.json's content), each customer's outcomes, and
    how long it took."""

    job: Job
    metrics: dict[str, Any]
    outcomes: Outcomes
    wall_seconds: float
    events: int  # messages handed to actors
    events_ignored: int  # events the program ignores, counted and not handed over
    world_wakes: int
    actors: int
    peak_rss_bytes: int


Progress = Callable[[int, float], None]  # (job index, simulated seconds)
R = TypeVar("R")
Task = Callable[[Job, Callable[[float], None] | None], R]  # a job's work, given its progress

_progress_queue: Any = None  # a worker's end of the progress queue (set by ``_start_worker``)


def simulate(job: Job, on_progress: Callable[[float], None] | None = None, paths: bool = True) -> DesignRun:
    """Run one job (in whichever process calls it); ``paths=False``: without the last entries'
    null paths (``Simulation.run``)."""
    started = time.perf_counter()
    world = partial(World, unnoticed=job.unnoticed) if job.unnoticed else World
    simulation = Simulation(job.design.load(), job.customers, job.days, job.seed, world=world)
    stats = simulation.run(on_progress, paths)
    world = simulation.world
    assert isinstance(world, World)  # (the synthetic world: a job has no other)
    metrics = {
        "scenario": simulation.scenario.name,
        "customers": job.customers,
        "days": job.days,
        "seed": job.seed,
        **simulation.metrics.to_dict(),
        "agents": simulation.agents.statistics(simulation.horizon),
        "world": {
            "sessions": world.sessions,
            "purchases": world.purchases,
            "orders_after_click": dict(sorted(world.orders_after_click.items())),
        },
    }
    return DesignRun(job, metrics, simulation.metrics.outcomes(), time.perf_counter() - started,
                     stats.messages_handled, stats.events_ignored, stats.world_wakes, stats.actors,
                     peak_rss_bytes())


def run_jobs(
    jobs: Sequence[Job],
    workers: int | None = None,
    on_progress: Progress | None = None,
    *,
    task: Task[R],
    on_done: Callable[[int, R], None] | None = None,
) -> list[R]:
    """Run ``task`` (``simulate``, say) on each of ``jobs`` on a pool of ``workers`` processes
    (default: one per core); return the results in the jobs' order.

    In this process, ``on_progress(index, simulated_seconds)`` is called as the jobs advance
    (every simulated hour of each), and ``on_done(index, result)`` as each completes. ``task``
    must be a module-level function (workers import it).
    """
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    context = multiprocessing.get_context("spawn")  # (no fork of a process with threads)
    progress = context.Queue()
    with ProcessPoolExecutor(workers, context, initializer=_start_worker, initargs=(progress,)) as pool:
        futures = [pool.submit(_in_worker, task, index, job) for index, job in enumerate(jobs)]
        _follow(futures, progress, on_progress, on_done)
        return [future.result() for future in futures]


def _follow(futures: list[Future[R]], progress: Any, on_progress: Progress | None,
            on_done: Callable[[int, R], None] | None) -> None:
    """Pass the workers' progress and results on until every job is done."""
    reported: set[int] = set()
    while len(reported) < len(futures):
        try:
            index, at = progress.get(timeout=0.2)
        except queue.Empty:
            pass
        else:
            if on_progress is not None:
                on_progress(index, at)
        for index, future in enumerate(futures):
            if index not in reported and future.done():
                reported.add(index)
                if on_done is not None and future.exception() is None:
                    on_done(index, future.result())


def _start_worker(progress: Any) -> None:
    global _progress_queue
    _progress_queue = progress
    remember_days()  # (the jobs share a world: a worker decides its sessions once)


def _in_worker(task: Task[R], index: int, job: Job) -> R:
    put = _progress_queue.put
    return task(job, lambda at: put((index, at)))
