"""Trigger latency over HTTP: a ``touchpoint load`` process into a real ``touchpoint serve`` (fsync on),
whose webhook sends go to a loopback HTTP provider that stamps each arrival.

    python -m bench.latency_http --actors 1000000 --rate 20000 --seconds 10

The service runs the ``ping`` journey (a webhook at once, on each ``ping``) over a world whose
sessions each send one ``ping``, with ``--actors`` customers already in its snapshot. ``touchpoint
load`` sends that world's traffic (identifies, page views, pings) open-loop at ``--rate`` events a
second from a process of its own. The provider is an HTTP server in this process (a thread per
connection, 127.0.0.1); it records each send's arrival time and idempotency key.

A send is matched with the ping that caused it without asking either side: the traffic is a
fixed function of its seed, and ``touchpoint load`` says when it started, so request ``k`` was
due when the arrival schedule says (``engine.load.generator.arrivals``), with every call in it
stamped so (to the millisecond). Replaying the calls in order with the journey's re-entry rule gives, for each
customer, the intended time of their ``n``-th entry; the send's key names the entry. Latency runs
from that intended time to the provider's receipt: the load's HTTP request, the edge, the log's
fsync, the actor, the outbox and the provider's HTTP request.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Annotated, Any

import typer

from actors.actor import Actor
from actors.messages import Event, parse_send_key
from actors.profile import CHANNEL_BIT, Profile
from bench.ceiling import measure
from bench.latency import PING
from bench.report import report
from engine.cli.serve import announced_url
from engine.load.generator import arrivals, constant
from engine.load.results import histogram, latencies_ms
from engine.load.traffic import Traffic
from engine.scenario_files import Scenario, scenario_from_document
from engine.storage.snapshots import write_snapshot

app = typer.Typer(add_completion=False)
KEY, SEED, BATCH = "wk_latency", 5, 100
REENTRY = 1.0
SCENARIO = """
name = "ping"
description = "Each session pings; each ping sends a webhook at once."
""" + PING + """
[world]
session_events = [{ event = "ping", p = 1.0 }]
"""


class _Provider(BaseHTTPRequestHandler):
    """Takes each send (200 at once) and stamps its arrival."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    arrivals: list[tuple[float, str]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers["content-length"]))
        self.arrivals.append((time.time(), self.headers.get("idempotency-key", "")))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # (the default 5 drops the connections a burst of outbox workers opens
    daemon_threads = True     # at once: their SYNs come again a second later)


def intended_entries(traffic: Traffic, due: list[float], started_at: float) -> dict[tuple[str, int], float]:
    """(customer, entry number) -> the intended time of the ping that made that entry, the
    requests being due at ``due`` (seconds after ``started_at``), as ``touchpoint load`` sent them."""
    entries: dict[tuple[str, int], float] = {}
    last: dict[str, tuple[int, float]] = {}  # customer -> (entries so far, last entry's time)
    for offset in due:
        stamp = round(started_at + offset, 3)  # (calls are stamped to the millisecond)
        for call in traffic.calls(BATCH):
            if call.get("event") != "ping":
                continue
            customer = call["userId"]
            count, at = last.get(customer, (0, -1e18))
            if stamp - at < REENTRY:
                continue  # (the journey's re-entry rule: this ping enters nothing)
            last[customer] = (count + 1, stamp)
            entries[(customer, count + 1)] = started_at + offset
    return entries


def measure_http(actors: int, rate: float, seconds: float, customers: int) -> dict[str, Any]:
    """One service, one load, one provider; the figures."""
    _Provider.arrivals = []
    provider = _Server(("127.0.0.1", 0), _Provider)
    threading.Thread(target=provider.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        scenario = root / "ping.toml"
        scenario.write_text(SCENARIO)
        config = root / "serve.toml"
        config.write_text(f'[channels.webhook]\nprovider = "http"\nurl = "http://127.0.0.1:'
                          f'{provider.server_address[1]}/send"\n')
        _snapshot(root / "state", actors)
        serve = subprocess.Popen([sys.executable, "-m", "engine", "serve", str(scenario), "--data",
                                  str(root / "state"), "--port", "0", "--write-key", KEY, "--fsync", "batch",
                                  "--config", str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True)
        assert serve.stdout is not None
        url = announced_url(serve.stdout)
        try:
            assert url is not None, "the service did not start"
            command = [sys.executable, "-m", "engine", "load", url, "--write-key", KEY, "--scenario",
                       str(scenario), "--customers", str(customers), "--seed", str(SEED), "--rate", str(rate),
                       "--duration", str(seconds), "--batch", str(BATCH), "--quiet",
                       "--out", str(root / "load")]
            load = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120, check=False)
            summary = json.loads((root / "load" / "summary.json").read_text())
            time.sleep(2.0)  # (the last sends on their way)
        finally:
            serve.send_signal(signal.SIGTERM)
            serve.communicate(timeout=120)
            provider.shutdown()
    if load.returncode != 0:
        raise RuntimeError(f"touchpoint load failed: {load.stdout}{load.stderr}")
    traffic = Traffic(_scenario(), customers, SEED)
    due = list(arrivals(constant(rate, seconds), BATCH))[: summary["requests"]["sent"]]
    entries = intended_entries(traffic, due, summary["started_at"])
    latency = histogram()
    matched = 0
    for arrived, key in _Provider.arrivals:
        parsed = parse_send_key(key)
        intended = entries.get((parsed[0], parsed[2])) if parsed is not None else None
        if intended is not None:
            matched += 1
            latency.record_value(max(1, round((arrived - intended) * 1e6)))
    figures = latencies_ms(latency)
    return {
        "rate": rate, "seconds": seconds, "actors": actors,
        "events_offered": summary["events"]["offered"],
        "events_acknowledged": summary["events"]["acknowledged"],
        "sends_received": len(_Provider.arrivals), "sends_matched": matched,
        "load_request_p99_ms": summary["latency_ms"]["p99"],
        "load_request_max_ms": summary["latency_ms"]["max"],
        **{f"latency_{k}_ms": v for k, v in figures.items() if k != "mean"},
    }


def _scenario() -> Scenario:
    return scenario_from_document(tomllib.loads(SCENARIO), "ping.toml")


def _snapshot(data: Path, actors: int) -> None:
    """``actors`` customers in the service's state, none of them in the journey yet."""
    if not actors:
        return
    program = _scenario().program
    seen = Event("page_view")
    loaded = []
    for i in range(actors):
        actor = Actor(program, Profile(f"c{i:07d}", reach=CHANNEL_BIT["webhook"]))
        actor.handle(seen, time.time() - 3600)
        loaded.append(actor)
    write_snapshot(data / "snapshots", 0, loaded)


@app.command()
def main(
    actors: Annotated[int, typer.Option(help="Customers in the service's state at start.")] = 1_000_000,
    rate: Annotated[float, typer.Option(help="Events a second the load offers.")] = 20_000,
    seconds: Annotated[float, typer.Option(help="How long the load lasts.")] = 10.0,
    customers: Annotated[int, typer.Option(help="Customers the load's traffic comes from.")] = 1_000_000,
    json_out: Annotated[Path | None, typer.Option(help="Also write the results here.")] = None,
) -> None:
    """Trigger latency from the load's intended time to the loopback provider, over HTTP."""
    result = measure_http(actors, rate, seconds, customers)
    result["ceiling_events_per_second_median"] = measure(3)["median"]
    report(result, json_out)


if __name__ == "__main__":
    app()
