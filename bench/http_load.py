"""Segment ``/v1/batch`` over real HTTP into ``touchpoint serve``: events acknowledged per second.

    python -m bench.http_load --events 600000 --batch 500 --connections 4 --repeat 3

Each repeat starts the real service (``touchpoint serve``: hypercorn's trio worker, 127.0.0.1,
a temporary data folder, ``--fsync batch``) as a subprocess, with ``--actors`` customers already
in a snapshot there (each in the cart journey). A separate load process then posts pre-built
``/v1/batch`` requests over keep-alive connections, one request in flight on each, from raw
sockets: per request it only writes bytes and reads the short answer, so the load process is not
the bottleneck an HTTP client library would be. The bodies are Segment calls as the official
libraries send them (track, identify and page, a context, distinct messageIds over a few thousand
userIds; some ``cart_add`` and ``purchase`` so journeys are entered and left). The load stops
after ``--events`` events or ``--seconds`` seconds, whichever comes first.

A 2xx means the events are in the write-ahead log (fsync per batch), so the figure is events
acknowledged durably per second, with the latency of each request (send to whole answer) and the
CPU time each process spent per event (the service's is steadier than its rate on a shared
machine). After the load the service's ``/metrics`` must show exactly the acknowledged events
logged and handled, or the command exits 1. The bare-loop ceiling is measured in the same run.
``--profile FILE`` runs the service under cProfile (its main thread: the event loop, parsing, the
actors) and prints the top functions; the log's encoding and fsync run in a worker thread,
outside it (``py-spy record --threads`` sees both).
"""

from __future__ import annotations

import base64
import os
import pstats
import random
import re
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from multiprocessing import get_context
from pathlib import Path
from typing import Annotated, Any

import httpx
import msgspec
import typer

from actors.actor import Actor
from actors.messages import Event
from actors.profile import CHANNEL_BIT, Profile
from bench.ceiling import measure
from bench.report import report
from engine.cli.serve import announced_url
from engine.scenario_files import load_scenario
from engine.storage.snapshots import write_snapshot

app = typer.Typer(add_completion=False)
KEY = "wk_bench"
ADMIN = "bench-admin"
REACH = CHANNEL_BIT["email"] | CHANNEL_BIT["push"]

# the mix of calls (kind, event name, weight): mostly browsing, some carts and purchases
MIX = [("track", "Product Viewed", 45), ("page", None, 20), ("identify", None, 10),
       ("track", "cart_add", 15), ("track", "purchase", 5), ("track", "Checkout Started", 5)]
CONTEXT = {"library": {"name": "analytics-python", "version": "2.3.1"}, "ip": "203.0.113.7",
           "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/126.0"}


def user_id(number: int) -> str:
    return f"u{number:07d}"


def segment_calls(
    rng: random.Random, count: int, users: int, first: int, at: datetime
) -> list[dict[str, Any]]:
    """``count`` Segment calls, messageIds ``m<first>``, ``m<first+1>``..., over ``users`` ids,
    stamped a millisecond apart up to ``at``."""
    kinds = [(kind, event) for kind, event, weight in MIX for _ in range(weight)]
    calls = []
    for n in range(first, first + count):
        kind, event = rng.choice(kinds)
        uid = user_id(rng.randrange(users))
        stamp = (at - timedelta(milliseconds=count + first - n)).isoformat(timespec="milliseconds")
        call: dict[str, Any] = {"type": kind, "userId": uid, "messageId": f"m{n:09d}", "timestamp": stamp,
                                "context": CONTEXT, "integrations": {}}
        if kind == "identify":
            call["traits"] = {"email": f"{uid}@example.com", "plan": rng.choice(["free", "pro"])}
        elif kind == "page":
            call["name"] = rng.choice(["Home", "Category", "Search"])
            call["properties"] = {"path": "/c/shoes", "referrer": "https://example.com/"}
        else:
            call["event"] = event
            call["properties"] = {"sku": f"SKU-{rng.randrange(900):03d}", "currency": "USD",
                                  "value": round(rng.uniform(5, 200), 2),
                                  "product": {"category": "shoes", "brand": "Acme"}}
        calls.append(call)
    return calls


def batch_requests(host: str, port: int, events: int, batch: int, users: int, seed: int) -> list[bytes]:
    """Whole HTTP/1.1 requests (keep-alive, write key as Basic user), ``batch`` calls each."""
    rng = random.Random(seed)
    auth = base64.b64encode(f"{KEY}:".encode()).decode()
    at = datetime.now(UTC)
    requests = []
    for first in range(0, events, batch):
        calls = segment_calls(rng, min(batch, events - first), users, first, at)
        body = msgspec.json.encode({"batch": calls, "sentAt": at.isoformat(timespec="milliseconds")})
        head = (f"POST /v1/batch HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                f"Authorization: Basic {auth}\r\nContent-Length: {len(body)}\r\n\r\n")
        requests.append(head.encode() + body)
    return requests


_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


def _answer(buffer: bytearray) -> tuple[int, bool] | None:
    """The status of the response in ``buffer`` and whether the service closes the connection
    after it (hypercorn does after 1,000 requests on one), once it is whole; else None."""
    head_end = buffer.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    head = bytes(buffer[:head_end]).lower()
    found = _LENGTH.search(head)
    if found is None:
        raise RuntimeError(f"an answer without content-length: {head!r}")
    if len(buffer) < head_end + 4 + int(found.group(1)):
        return None
    return int(head[9:12]), b"\r\nconnection: close" in head


def drive(host: str, port: int, events: int, batch: int, users: int, connections: int, seconds: float,
          seed: int) -> dict[str, Any]:
    """The load process: post every request once over ``connections`` keep-alive sockets, one in
    flight on each, until all are answered or ``seconds`` have passed. Returns the tallies."""
    requests = batch_requests(host, port, events, batch, users, seed)
    sizes = [min(batch, events - first) for first in range(0, events, batch)]
    todo = iter(range(len(requests)))
    selector = selectors.DefaultSelector()
    pending: dict[socket.socket, tuple[int, float, bytearray]] = {}
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    acknowledged = 0

    def send_next(sock: socket.socket) -> None:
        index = next(todo, None)
        if index is None or time.perf_counter() > deadline:
            selector.unregister(sock)
            sock.close()
            return
        pending[sock] = (index, time.perf_counter(), bytearray())
        sock.sendall(requests[index])

    def connect() -> None:
        sock = socket.create_connection((host, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        selector.register(sock, selectors.EVENT_READ, data=sock)
        send_next(sock)

    started, cpu = time.perf_counter(), time.process_time()
    deadline = started + seconds
    for _ in range(connections):
        connect()
    while selector.get_map():
        if time.perf_counter() > deadline + 60.0:
            raise RuntimeError(f"no answer for {len(pending)} requests a minute after the deadline")
        for key, _ in selector.select(timeout=1.0):
            sock = key.data
            index, sent_at, buffer = pending[sock]
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError("the service closed a connection")
            buffer += chunk
            answer = _answer(buffer)
            if answer is None:
                continue
            status, closing = answer
            latencies.append(time.perf_counter() - sent_at)
            statuses[status] = statuses.get(status, 0) + 1
            if 200 <= status < 300:
                acknowledged += sizes[index]
            del pending[sock]
            if closing:  # go on over a new connection
                selector.unregister(sock)
                sock.close()
                connect()
            else:
                send_next(sock)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"wall": wall, "load_cpu": cpu, "acknowledged": acknowledged, "latencies": latencies,
            "statuses": statuses, "requests": len(latencies)}


def cart_snapshot(data: Path, actors: int, entered_at: float) -> None:
    """A snapshot in ``data`` of ``actors`` customers (none: no snapshot) who each entered the
    cart journey at ``entered_at``: their first timer is due an hour after it."""
    if not actors:
        return
    program = load_scenario("cart_abandonment").program
    cart = Event("cart_add", {"value": 50.0})
    loaded = []
    for i in range(actors):
        actor = Actor(program, Profile(user_id(i), reach=REACH))
        actor.handle(cart, entered_at)
        loaded.append(actor)
    write_snapshot(data / "snapshots", 0, loaded)


def start_service(data: Path, profile: Path | None) -> tuple[subprocess.Popen[str], str]:
    runner = ["-m", "cProfile", "-o", str(profile)] if profile else []
    command = [sys.executable, *runner, "-m", "engine", "serve", "cart_abandonment", "--data", str(data),
               "--port", "0", "--write-key", KEY, "--admin-token", ADMIN, "--fsync", "batch"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    url = announced_url(process.stdout)
    if url is not None:
        return process, url
    process.kill()
    raise RuntimeError(f"the service did not start: {process.communicate()[0]}")


def _cpu_seconds(pid: int) -> float:
    """User and system time a process has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def engine_counters(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", headers={"authorization": f"Bearer {ADMIN}"}, timeout=30).text
    found = dict(re.findall(r"^(touchpoint_messages_total|touchpoint_applied_lsn) (\S+)$", text, re.M))
    return {name: float(value) for name, value in found.items()}


def run_once(actors: int, events: int, batch: int, users: int, connections: int, seconds: float,
             seed: int, profile: Path | None) -> dict[str, Any]:
    """One fresh service, one load; the tallies of both sides."""
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "state"
        cart_snapshot(data, actors, time.time())  # the first timers an hour away: none fires meanwhile
        process, url = start_service(data, profile)
        try:
            before, cpu = engine_counters(url), _cpu_seconds(process.pid)
            host, port = url.removeprefix("http://").split(":")
            with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
                load = pool.submit(drive, host, int(port), events, batch, users, connections, seconds,
                                   seed).result()
            cpu = _cpu_seconds(process.pid) - cpu
            after = engine_counters(url)
        finally:
            process.send_signal(signal.SIGTERM)
            out, _ = process.communicate(timeout=120)
        if process.returncode != 0:
            raise RuntimeError(f"the service stopped with status {process.returncode}: {out}")
    load["server_cpu"] = cpu
    load["logged"] = after["touchpoint_applied_lsn"] - before["touchpoint_applied_lsn"]
    load["handled"] = after["touchpoint_messages_total"] - before["touchpoint_messages_total"]
    return load


def _figures(run: dict[str, Any]) -> dict[str, float]:
    """One run's rate, latency percentiles and CPU per event, from its tallies."""
    cuts = statistics.quantiles(run["latencies"], n=100)
    events = max(run["acknowledged"], 1)
    return {"rate": run["acknowledged"] / run["wall"], "p50": cuts[49] * 1000.0, "p99": cuts[98] * 1000.0,
            "max": max(run["latencies"]) * 1000.0, "server_cpu": run["server_cpu"] / events * 1e6,
            "load_cpu": run["load_cpu"] / events * 1e6}


@app.command()
def main(
    events: Annotated[int, typer.Option(help="Events posted per repeat (at most).")] = 600_000,
    batch: Annotated[int, typer.Option(min=1, max=2_500, help="Calls per /v1/batch request.")] = 500,
    connections: Annotated[int, typer.Option(min=1, help="Keep-alive connections, one request each.")] = 4,
    users: Annotated[int, typer.Option(min=1, help="Distinct userIds in the load.")] = 5_000,
    actors: Annotated[int, typer.Option(min=0, help="Customers in the state before the load.")] = 100_000,
    seconds: Annotated[float, typer.Option(help="Stop posting after this long at the latest.")] = 60.0,
    repeat: Annotated[int, typer.Option(min=1, help="Fresh service and load, this many times.")] = 3,
    profile: Annotated[Path | None, typer.Option(help="Profile the service (cProfile) to this file.")] = None,
    json_out: Annotated[Path | None, typer.Option(help="Also write the results here.")] = None,
) -> None:
    """Measure Segment /v1/batch events acknowledged durably per second over HTTP."""
    runs = [run_once(actors, events, batch, users, connections, seconds, seed, profile)
            for seed in range(1, repeat + 1)]
    figures = [_figures(run) for run in runs]

    def median(name: str) -> float:
        return statistics.median(f[name] for f in figures)

    mismatches = [(r["acknowledged"], r["logged"], r["handled"]) for r in runs
                  if not r["acknowledged"] == r["logged"] == r["handled"]]
    ceiling = measure(3)
    result = {
        "actors_preloaded": actors,
        "batch_size": batch,
        "connections": connections,
        "events_acknowledged_per_run": [run["acknowledged"] for run in runs],
        "answers_per_run": [run["statuses"] for run in runs],
        "events_per_second_median": median("rate"),
        "events_per_second_max": max(f["rate"] for f in figures),
        "events_per_second_runs": [round(f["rate"]) for f in figures],
        "request_p50_ms_median": median("p50"),
        "request_p99_ms_median": median("p99"),
        "request_max_ms": max(f["max"] for f in figures),
        "server_cpu_us_per_event_median": median("server_cpu"),
        "load_cpu_us_per_event_median": median("load_cpu"),
        "logged_and_handled_equal_acknowledged": "no" if mismatches else "yes",
        "ceiling_events_per_second_median": ceiling["median"],
    }
    report(result, json_out)
    if profile is not None:
        pstats.Stats(str(profile)).sort_stats("tottime").print_stats(25)
    if mismatches:
        print(f"MISMATCH: (acknowledged, logged, handled) per run: {mismatches}", file=sys.stderr)
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
