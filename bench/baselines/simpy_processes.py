"""Baseline (c): one SimPy process per customer, living the cart journey.

    python -m bench.baselines.simpy_processes --customers 100000 --days 30

Each customer is a process: sessions come at the customer's own rate (gamma over the
population, 0.35 a day on average, as the cart scenario's population); a session adds a cart with
the world's chance (0.18, a lognormal value) which is bought at once at the world's checkout
rate; an abandoned cart over 20 starts the journey (a tenth held out): a process of its own that
waits an hour, sends a reminder (clicked with a 4% chance, then bought), waits a day for the
click, sends an email (3%), waits two days, sends an SMS, and ends at once when the customer
buys. That is the engine's cart journey and world without their policies, time zones, fatigue
or metrics: less work than the engine's simulation does, so the ratio is not flattered by the
baseline. Reported: customer-days simulated a second.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Annotated, Any

import simpy
import typer

from bench.ceiling import measure
from bench.report import report

app = typer.Typer(add_completion=False)
DAY, HOUR = 86400.0, 3600.0
SESSIONS_PER_DAY, SHAPE = 0.35, 1.5
CART, CHECKOUT, HOLDOUT = 0.18, 0.2981, 0.10
STEPS = ((HOUR, 0.04), (DAY, 0.03), (2 * DAY, 0.02))  # (wait before the send, its click chance)


class Tally:
    def __init__(self) -> None:
        self.sessions = self.carts = self.sends = self.purchases = 0


def customer(env: simpy.Environment, rng: random.Random, rate: float, tally: Tally) -> Any:
    journey: simpy.Process | None = None
    while True:
        yield env.timeout(rng.expovariate(rate))
        tally.sessions += 1
        if rng.random() >= CART:
            continue
        tally.carts += 1
        value = rng.lognormvariate(3.8, 0.6)
        if rng.random() < CHECKOUT:
            tally.purchases += 1
            if journey is not None and journey.is_alive:
                journey.interrupt()  # the purchase ends the journey
            continue
        if value > 20 and (journey is None or not journey.is_alive) and rng.random() >= HOLDOUT:
            journey = env.process(reminders(env, rng, tally))


def reminders(env: simpy.Environment, rng: random.Random, tally: Tally) -> Any:
    try:
        for wait, click in STEPS:
            yield env.timeout(wait)
            tally.sends += 1
            if rng.random() < click:
                yield env.timeout(rng.expovariate(1 / HOUR))
                tally.purchases += 1
                return
    except simpy.Interrupt:
        return


@app.command()
def main(
    customers: Annotated[int, typer.Option(help="Processes, one per customer.")] = 100_000,
    days: Annotated[float, typer.Option(help="Simulated days.")] = 30.0,
    seed: int = 1,
    json_out: Annotated[Path | None, typer.Option(help="Also write the results here.")] = None,
) -> None:
    """One SimPy process per customer: customer-days a second."""
    rng = random.Random(seed)
    env, tally = simpy.Environment(), Tally()
    started = time.perf_counter()
    for _ in range(customers):
        rate = rng.gammavariate(SHAPE, SESSIONS_PER_DAY / SHAPE) / DAY
        env.process(customer(env, rng, rate, tally))
    env.run(until=days * DAY)
    seconds = time.perf_counter() - started
    report({
        "customers": customers,
        "days": days,
        "sessions": tally.sessions,
        "carts": tally.carts,
        "sends": tally.sends,
        "purchases": tally.purchases,
        "wall_seconds": seconds,
        "customer_days_per_second": customers * days / seconds,
        "ceiling_events_per_second_median": measure(3)["median"],
    }, json_out)


if __name__ == "__main__":
    app()
