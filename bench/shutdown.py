"""SIGTERM while a restarted ``touchpoint serve`` fires a million overdue timers: how long the stop
takes, with what status, and what the next start finds.

    python -m bench.shutdown --actors 1000000 --after 2 --repeat 3

Each repeat writes a snapshot of ``--actors`` customers who entered the cart journey two hours
ago, reachable by email and push, so every first timer (one hour) is overdue; starts the real
service on it (mock providers, which report each send delivered back to the engine); sends
SIGTERM ``--after`` seconds after it serves, while timers fire, sends go out and their receipts
come back; and times the exit. Then it starts the service again on the same folder and checks
that every customer is there and the last snapshot is newer than the first, and stops it again.
The bare-loop ceiling is measured in the same run.
"""

from __future__ import annotations

import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Annotated

import httpx
import typer

from bench.ceiling import measure
from bench.http_load import cart_snapshot, engine_counters, start_service

app = typer.Typer(add_completion=False)


def stop(process: subprocess.Popen[str], timeout: float = 120.0) -> tuple[int, float, str]:
    """SIGTERM; the exit status, the seconds the exit took, and the output's end."""
    sent = time.perf_counter()
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=timeout)
    return process.returncode, time.perf_counter() - sent, out[-400:]


def run_once(actors: int, after: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder)
        cart_snapshot(data, actors, time.time() - 7_200)  # every first timer came due an hour ago
        first = sorted((data / "snapshots").glob("snap-*.msgpack"))
        process, url = start_service(data, None)
        time.sleep(after)
        fired = engine_counters(url)["touchpoint_messages_total"]
        status, took, out = stop(process)
        if status != 0:
            raise SystemExit(f"SIGTERM under load: exit {status}\n{out}")
        last = sorted((data / "snapshots").glob("snap-*.msgpack"))
        started = time.perf_counter()
        process, url = start_service(data, None)
        restart = time.perf_counter() - started
        kept = httpx.get(f"{url}/healthz", timeout=30).json()["actors"]
        second_status, _, out = stop(process)
        if second_status != 0 or kept != actors or last[-1] == first[-1]:
            raise SystemExit(f"after the stop: exit {second_status}, {kept:,} of {actors:,} customers, "
                             f"snapshots {first} then {last}\n{out}")
    return {"messages_before_sigterm": fired, "stop_seconds": took, "restart_seconds": restart,
            "customers_kept": kept}


@app.command()
def main(
    actors: Annotated[int, typer.Option(min=1, help="Customers, each with an overdue timer.")] = 1_000_000,
    after: Annotated[float, typer.Option(help="Seconds of firing before SIGTERM.")] = 2.0,
    repeat: Annotated[int, typer.Option(min=1, help="Fresh state, service and stop, this many times.")] = 3,
) -> None:
    """Time a SIGTERM while a restarted service fires overdue timers into its mock providers."""
    runs = []
    for _ in range(repeat):
        runs.append(run_once(actors, after))
        print({name: round(value, 3) for name, value in runs[-1].items()}, flush=True)
    ceiling = measure()
    for name in runs[0]:
        values = [run[name] for run in runs]
        print(f"{name:28} median {statistics.median(values):>14,.3f}  (runs: "
              + ", ".join(f"{v:,.3f}" for v in values) + ")")
    print(f"{'ceiling_events_per_second':28} median {ceiling['median']:>14,.0f}")


if __name__ == "__main__":
    app()
