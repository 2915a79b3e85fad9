"""``touchpoint serve`` end to end: a real process, real HTTP on 127.0.0.1, signals, restart,
and ``touchpoint export``."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys

import httpx
import pytest

KEY = "wk_service"


def start(data, *extra: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "engine", "serve", "cart_abandonment", "--data", str(data),
         "--port", "0", "--write-key", KEY, *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        found = re.search(r"serving (http://127\.0\.0\.1:\d+)", line)
        if found:
            return process, found.group(1)
    process.kill()
    pytest.fail("the service did not start")


def stop(process: subprocess.Popen[str], how: int) -> str:
    process.send_signal(how)
    out, _ = process.communicate(timeout=30)
    assert process.returncode == 0, out
    return out


@pytest.mark.slow
def test_serve_ingest_stop_restart_and_export(tmp_path):
    data = tmp_path / "state"
    process, url = start(data)
    try:
        batch = {"writeKey": KEY, "batch": [
            {"type": "identify", "userId": "ada", "traits": {"email": "ada@example.com"}, "messageId": "1"},
            {"type": "track", "userId": "ada", "event": "cart_add", "properties": {"value": 99},
             "messageId": "2"},
            {"type": "track", "userId": "bob", "event": "purchase", "properties": {"value": 10},
             "messageId": "3"},
        ]}
        response = httpx.post(f"{url}/v1/batch", json=batch, timeout=10)
        assert response.status_code == 200 and response.json()["applied"] == 3
    except BaseException:
        process.kill()
        raise
    assert "snapshot written" in stop(process, signal.SIGTERM)
    assert list((data / "snapshots").glob("snap-*.msgpack"))

    lines = subprocess.run([sys.executable, "-m", "engine", "export", "--data", str(data)],
                           capture_output=True, text=True, check=True).stdout.splitlines()
    profiles = {p["customer_id"]: p for p in map(json.loads, lines)}
    assert sorted(profiles) == ["ada", "bob"]
    assert profiles["ada"]["journeys"]["cart_abandonment"]["step"] == "wait_1h"
    assert profiles["ada"]["journeys"]["cart_abandonment"]["next_timer_at"] is not None
    assert profiles["bob"]["purchases"]["count"] == 1

    process, url = start(data)  # the state survives the restart
    try:
        health = httpx.get(f"{url}/healthz", timeout=10).json()
        assert health["actors"] == 2
        more = {"writeKey": KEY, "batch": [
            {"type": "track", "userId": "cy", "event": "cart_add", "properties": {"value": 25}},
        ]}
        assert httpx.post(f"{url}/v1/batch", json=more, timeout=10).status_code == 200
    except BaseException:
        process.kill()
        raise
    stop(process, signal.SIGINT)
    lines = subprocess.run([sys.executable, "-m", "engine", "export", "--data", str(data)],
                           capture_output=True, text=True, check=True).stdout.splitlines()
    assert sorted(json.loads(line)["customer_id"] for line in lines) == ["ada", "bob", "cy"]


def test_serve_refuses_to_start_without_a_write_key(tmp_path):
    done = subprocess.run([sys.executable, "-m", "engine", "serve", "--data", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "write key" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_no_acknowledged_event(tmp_path):
    import random
    import socket
    import time
    from collections import Counter
    from pathlib import Path

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data, acked_file = tmp_path / "state", tmp_path / "acked.txt"
    command = [sys.executable, "-m", "engine", "serve", "cart_abandonment", "--data", str(data),
               "--port", str(port), "--write-key", KEY]
    url = f"http://127.0.0.1:{port}"

    def launch() -> subprocess.Popen[str]:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert process.stdout is not None
        for line in process.stdout:
            if "serving" in line:
                return process
        pytest.fail("the service did not start")

    server = launch()
    loader = subprocess.Popen([sys.executable, str(Path(__file__).parent / "loadgen.py"), url, KEY,
                               "300", str(acked_file)])
    rng = random.Random(11)
    try:
        for _ in range(4):  # kill -9 at random moments, restart on the same data
            time.sleep(rng.uniform(0.3, 1.0))
            server.kill()
            server.wait()
            server = launch()
        assert loader.wait(timeout=150) == 0
    finally:
        loader.kill()
    stop(server, signal.SIGTERM)

    acked = Counter(line.split()[1] for line in acked_file.read_text().splitlines())
    assert sum(acked.values()) == 3000  # every batch was acknowledged in the end
    lines = subprocess.run([sys.executable, "-m", "engine", "export", "--data", str(data)],
                           capture_output=True, text=True, check=True).stdout.splitlines()
    purchases = {p["customer_id"]: p["purchases"]["count"] for p in map(json.loads, lines)}
    # every acknowledged purchase is there, and none twice (retries carried the same ids)
    assert purchases == dict(acked)


def test_serve_reads_a_config_file_and_options_win_over_it(tmp_path):
    config = tmp_path / "touchpoint.toml"
    config.write_text(
        f'data = "{(tmp_path / "from-config").as_posix()}"\n'
        'write_keys = ["wk_config"]\nadmin_token = "tok"\nport = 1\nfsync = "none"\n'
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "engine", "serve", "--config", str(config), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert process.stdout is not None
    url = None
    for line in process.stdout:
        found = re.search(r"serving (http://127\.0\.0\.1:\d+)", line)
        if found:
            url = found.group(1)
            break
    try:
        assert url is not None and not url.endswith(":1")  # --port 0 won over the file's port
        track = {"writeKey": "wk_config", "userId": "ada", "event": "signup"}
        assert httpx.post(f"{url}/v1/track", json=track, timeout=10).status_code == 200
        health = httpx.get(f"{url}/v1/journeys", headers={"authorization": "Bearer tok"}, timeout=10)
        assert health.status_code == 200
    finally:
        stop(process, signal.SIGTERM)
    assert (tmp_path / "from-config" / "wal").is_dir()

    bad = tmp_path / "bad.toml"
    bad.write_text('colour = "blue"\n')
    done = subprocess.run([sys.executable, "-m", "engine", "serve", "--config", str(bad)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "unknown keys ['colour']" in done.stderr
