"""``touchpoint load``: the arrival schedule, the traffic, thresholds, and real runs in a process of
their own against servers on 127.0.0.1 (``touchpoint serve``, and a server that stalls)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from harness import ROOT
from serving import ADMIN, KEY, start, stop

from engine.edge.segment import parse
from engine.load.generator import Stage, arrivals, constant
from engine.load.results import Tally, judge, parse_threshold
from engine.load.traffic import Traffic, zone_of
from engine.scenario_files import load_scenario


def test_a_constant_rate_sends_evenly_spaced_requests_of_a_batch():
    times = list(arrivals(constant(1000.0, 2.0), 10))
    assert len(times) == 200  # 2,000 events in batches of 10
    gaps = {round(b - a, 6) for a, b in zip(times, times[1:], strict=False)}
    assert gaps == {0.01}


def test_stages_ramp_linearly_from_the_rate_before():
    # 0 -> 1,000/s over 2 s (1,000 events), 1,000/s for 1 s (1,000), -> 0 over 1 s (500)
    times = list(arrivals([Stage(2.0, 1000.0), Stage(1.0, 1000.0), Stage(1.0, 0.0)], 1))
    assert abs(len(times) - 2500) <= 1
    first_second = sum(1 for t in times if t < 1.0)
    assert abs(first_second - 250) <= 1  # a quarter of the ramp's area lies in its first half
    assert times == sorted(times) and times[-1] < 4.0


def test_thresholds_read_as_k6_writes_them_and_judge_the_summary():
    tally = Tally()
    tally.offered_events = 1000
    for latency in (0.001, 0.002, 0.004, 0.120):
        tally.answered("2xx", 200, latency)
    tally.answered("5xx", 200, 0.003)
    summary = tally.figures(1.0)
    verdicts = judge([parse_threshold(t) for t in ("p50<5ms", "max<100ms", "acked>=80%", "errors<0.25",
                                                    "p99.9 <= 1s", "mean>1000us")], summary)
    assert [v["ok"] for v in verdicts] == [True, False, True, True, True, True]
    assert verdicts[1]["measured"] == pytest.approx(120, rel=0.001)
    for bad in ("p99", "p42<1ms", "acked<5ms", "p99<5%", "latency<1s", "p99<<1ms"):
        with pytest.raises(ValueError, match="threshold"):
            parse_threshold(bad)


def test_the_traffic_is_the_worlds_in_its_proportions_and_the_edge_takes_its_batches():
    scenario = load_scenario("cart_abandonment")
    traffic = Traffic(scenario, 2_000, seed=3)
    calls = traffic.calls(30_000)
    kinds = Counter((c["type"], c.get("event")) for c in calls)
    sessions = kinds[("page", None)]
    carts = kinds[("track", "Product Added")]  # cart_add, as the tracking plan names it
    cart_share = next(s.p for s in scenario.simulation.world.session_events if s.event == "cart_add")
    assert carts / sessions == pytest.approx(cart_share, abs=0.015)
    bought = kinds[("track", "Order Completed")]
    assert bought / carts == pytest.approx(scenario.simulation.world.checkout_after_cart, abs=0.04)
    identifies = [c for c in calls if c["type"] == "identify"]
    assert len({c["userId"] for c in identifies}) == len(identifies) > 1_000  # once per customer
    assert any("device" in c["context"] for c in identifies)
    assert any("email" in c["traits"] for c in identifies)
    body = traffic.batch(100, 1_700_000_000.0, 1_700_000_000.25)
    decoded = json.loads(body)
    assert decoded["sentAt"] == "2023-11-14T22:13:20.250Z"
    assert len({c["messageId"] for c in decoded["batch"]}) == 100
    accepted, _ = parse("batch", body)  # the edge's own parser, as a service would read it
    assert len(accepted) == 100
    assert zone_of(9.0) == "Asia/Tokyo" and zone_of(4.0) == "Etc/GMT-4"


def load(url: str, *options: str, out) -> tuple[int, dict, str]:
    """Run ``touchpoint load`` in a process of its own; its exit status, summary and output."""
    command = [sys.executable, "-m", "engine", "load", url, "--quiet", "--out", str(out), *options]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT)
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else {}
    return done.returncode, summary, done.stdout + done.stderr


@pytest.mark.slow
def test_a_load_on_the_service_is_acknowledged_and_a_threshold_that_cannot_hold_exits_99(tmp_path):
    process, url = start(tmp_path / "data", "--admin-token", ADMIN, "--fsync", "batch")
    try:
        checks = ("--threshold", "acked>=99.9%", "--threshold", "p99<2s")
        status, summary, said = load(url, "--write-key", KEY, "--rate", "4000", "--duration", "3", *checks,
                                     out=tmp_path / "ok")
        assert status == 0, said
        assert summary["events"] == {"offered": 12_000, "acknowledged": 12_000, "acknowledged_share": 1.0}
        assert summary["statuses"]["2xx"] == 120 and summary["passed"]
        lines = (tmp_path / "ok" / "seconds.jsonl").read_text().splitlines()
        assert len(lines) >= 3 and json.loads(lines[0])["second"] == 1
        assert (tmp_path / "ok" / "load.png").stat().st_size > 10_000
        assert "acknowledged 4,000 events/s" in said

        status, summary, said = load(url, "--write-key", KEY, "--rate", "1000", "--duration", "1",
                                     "--threshold", "p99<0.001ms", out=tmp_path / "fails")
        assert status == 99, said
        assert summary["thresholds"][0]["ok"] is False and "FAILED" in said

        status, summary, said = load(url, "--write-key", "wrong", "--rate", "500", "--duration", "1",
                                     out=tmp_path / "refused")
        assert status == 0 and summary["statuses"]["4xx"] == 5  # (401s: counted, no threshold asked)
    finally:
        metrics = __import__("httpx").get(f"{url}/metrics", headers={"authorization": f"Bearer {ADMIN}"})
        stop(process, signal.SIGTERM)
    handled = next(line for line in metrics.text.splitlines() if line.startswith("touchpoint_messages_total"))
    assert float(handled.split()[1]) == 12_000 + 1_000  # every event acknowledged was applied


def test_bad_options_exit_2_with_one_line(tmp_path):
    for options, said in ((["--rate", "5", "--stages", "1s:5"], "not both"),
                          (["--threshold", "p99<fast"], "threshold"),
                          (["--stages", "1s:5,soon:3"], "stage 'soon:3'"),
                          (["--duration", "-3"], "duration")):
        command = [sys.executable, "-m", "engine", "load", "http://127.0.0.1:9", "--write-key", "k", *options]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert done.returncode == 2 and said in done.stderr, (options, done.stderr)


class _Stalling(BaseHTTPRequestHandler):
    """Answers 200 at once, except that every request arriving in the stall waits for its end."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # (the header and the body go in two writes)
    stall: tuple[float, float] = (0.0, 0.0)  # (start, end) in time.monotonic()

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers["content-length"]))
        start, end = self.stall
        now = time.monotonic()
        if start <= now < end:
            time.sleep(end - now)
        body = b'{"success": true}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


def test_a_server_that_stalls_for_a_second_shows_it_in_the_tail(tmp_path):
    """100 requests a second over 4 connections for 4 s; the server stalls for 1 s after 1.5 s.
    Every request due in the stall is timed from when it was due: about 100 of 400, so the stall
    reaches p90, not just the 4 requests a closed-loop generator on 4 connections would have had
    in flight."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stalling)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    command = [sys.executable, "-m", "engine", "load", url, "--quiet", "--out", str(tmp_path),
               "--write-key", "k", "--rate", "1000", "--batch", "10", "--connections", "4",
               "--duration", "4", "--customers", "500"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    try:
        time.sleep(1.0)  # (the command's start-up: imports, the population)
        deadline = time.monotonic() + 30
        while not (tmp_path / "seconds.jsonl").exists() or not (tmp_path / "seconds.jsonl").read_text():
            assert time.monotonic() < deadline, "the load never started"
            time.sleep(0.05)
        _Stalling.stall = (time.monotonic() + 0.5, time.monotonic() + 1.5)
        out, _ = process.communicate(timeout=60)
    finally:
        server.shutdown()
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, out
    summary = json.loads((tmp_path / "summary.json").read_text())
    latency = summary["latency_ms"]
    assert latency["max"] >= 900 and latency["p99.9"] >= 900
    assert latency["p90"] >= 300, latency  # about a quarter of the requests were due in the stall
    assert latency["p50"] < 300
    assert summary["requests"]["late"] >= 50 and summary["statuses"]["2xx"] == 400
