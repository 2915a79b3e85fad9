"""The service under faults, end to end: a real ``touchpoint serve`` process on 127.0.0.1.

- the engine task raises (a fault injected by ``faulty_serve.py``): the process stops accepting,
  prints the error once, exits non-zero within seconds, and a restart has every acknowledged event;
- SIGTERM while a restarted engine fires thousands of overdue timers into a provider that reports
  receipts: exit 0 with the last snapshot written, and after the next start no send is lost or
  made twice;
- the disk fills up (a file size limit on the process: its writes fail in the kernel): events
  acknowledged before survive, requests meanwhile get 503, and once there is room again
  ingestion works.
"""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import threading
import time
from functools import partial
from pathlib import Path

import httpx
import pytest
from harness import ROOT
from local_providers import CountingProvider, free_port
from serving import KEY, run_engine, start, stop

from actors.journey import stable_fraction

FAULTY = Path(__file__).parent / "faulty_serve.py"


def fast_cart(tmp_path: Path, wait: str) -> Path:
    """The built-in cart scenario with its first wait shortened to ``wait`` and no quiet hours
    (so the test's sends go out whatever the hour)."""
    text = (ROOT / "scenarios" / "cart_abandonment.toml").read_text()
    text = text.replace('wait = "1h"', f'wait = "{wait}"', 1)
    text = "\n".join(line for line in text.splitlines() if not line.startswith("quiet_hours"))
    path = tmp_path / "fast_cart.toml"
    path.write_text(text)
    return path


def carts(first: int, count: int, prefix: str = "c") -> dict:
    """A batch: ``count`` customers, each identified with an email address and adding a cart."""
    calls = []
    for i in range(first, first + count):
        calls.append({"type": "identify", "userId": f"{prefix}{i}", "messageId": f"i-{prefix}{i}",
                      "traits": {"email": f"{prefix}{i}@example.com"}})
        calls.append({"type": "track", "userId": f"{prefix}{i}", "event": "cart_add",
                      "messageId": f"t-{prefix}{i}", "properties": {"value": 50}})
    return {"writeKey": KEY, "batch": calls}


def exported(data: Path) -> dict[str, dict]:
    lines = run_engine("export", "--data", str(data)).stdout.splitlines()
    return {profile["customer_id"]: profile for profile in map(json.loads, lines)}


@pytest.mark.slow
def test_an_engine_that_fails_exits_non_zero_within_seconds_and_a_restart_has_every_acknowledged_event(
    tmp_path,
):
    data = tmp_path / "state"
    process, url = start(data, entry=(str(FAULTY),))
    acknowledged: list[str] = []
    answers: list[int | str] = []

    def load() -> None:  # a client at full speed, through the failure
        with httpx.Client(base_url=url, timeout=10) as client:
            for k in range(10_000):
                try:
                    answer = client.post("/v1/batch", json=carts(k * 20, 20))
                except httpx.HTTPError as exc:
                    answers.append(type(exc).__name__)
                    return  # the process is gone
                answers.append(answer.status_code)
                if answer.status_code == 200:
                    acknowledged.extend(f"c{i}" for i in range(k * 20, k * 20 + 20))

    client = threading.Thread(target=load)
    client.start()
    time.sleep(1.0)
    boom = httpx.post(f"{url}/v1/track", json={"writeKey": KEY, "userId": "boomer", "event": "boom"},
                      timeout=10)
    failed_at = time.monotonic()
    assert boom.status_code == 200  # logged, and so acknowledged, before the engine met it
    try:
        out, _ = process.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("the failed service did not exit")
    exited_after = time.monotonic() - failed_at
    client.join(timeout=30)
    assert process.returncode not in (0, None), out
    assert exited_after < 10, exited_after
    # told once, with its traceback (hypercorn may add its own for a client cut off meanwhile)
    assert out.count("the engine failed; stopping") == 1, out
    assert out.count("RuntimeError: injected fault") == 1, out
    assert 200 in answers and answers[-1] != 200  # refused (503) or refused to connect, then
    assert set(answers) <= {200, 503, "ConnectError", "RemoteProtocolError", "ReadError"}, set(answers)

    process, url = start(data)  # the same data, the engine without the fault
    stop(process, signal.SIGTERM)
    profiles = exported(data)
    assert "boomer" in profiles
    lost = [customer for customer in acknowledged if customer not in profiles]
    assert not lost and len(acknowledged) >= 200, (len(lost), len(acknowledged))


@pytest.mark.slow
def test_sigterm_while_a_restarted_engine_fires_overdue_timers_loses_no_send_and_doubles_none(tmp_path):
    data, port = tmp_path / "state", free_port()
    scenario = fast_cart(tmp_path, "3s")
    provider = CountingProvider(latency=0.01, receipts=f"http://127.0.0.1:{port}/v1/receipts/email",
                                write_key=KEY).start()
    config = tmp_path / "touchpoint.toml"
    config.write_text(f'[outbox]\nworkers = 4\n[channels.email]\nprovider = "http"\nurl = "{provider.url}"\n'
                      'address_trait = "email"\n')
    customers = 3_000
    treated = {f"c{i}" for i in range(customers) if stable_fraction("cart_abandonment", f"c{i}") >= 0.10}
    try:
        process, url = start(data, "--config", str(config), scenario=str(scenario), port=port)
        with httpx.Client(base_url=url, timeout=30) as client:
            for first in range(0, customers, 500):
                assert client.post("/v1/batch", json=carts(first, 500)).status_code == 200
        stop(process, signal.SIGTERM)  # before the first timers come due
        assert not provider.applied_keys()
        time.sleep(3.5)  # every timer overdue now

        process, url = start(data, "--config", str(config), scenario=str(scenario), port=port)
        time.sleep(1.5)  # the overdue timers fire at once; the provider takes ~300 sends a second
        in_flight = len(provider.applied_keys())
        out = stop(process, signal.SIGTERM)
        assert "snapshot written" in out
        sent_before_restart = provider.applied_keys()
        assert 0 < in_flight and len(sent_before_restart) < 0.9 * customers  # stopped mid-way

        process, url = start(data, "--config", str(config), scenario=str(scenario), port=port)
        missing = provider.wait_for({f"{c}:cart_abandonment:1:push:1" for c in treated}, timeout=60)
        deadline = time.monotonic() + 30
        while len(provider.reported) + len(provider.refused) < len(treated) and time.monotonic() < deadline:
            time.sleep(0.1)
        stop(process, signal.SIGTERM)
    finally:
        provider.stop()
    assert not missing, f"{len(missing)} sends lost, e.g. {sorted(missing)[:3]}"
    keys = [key for key, _, _ in provider.requests]
    assert len(keys) == len(set(keys)) == len(treated)  # each send made once, none twice
    assert not provider.refused and len(provider.reported) == len(treated)
    profiles = exported(data)
    assert {c for c, p in profiles.items() if not p["journeys"]["cart_abandonment"]["holdout"]} == treated
    delivered = {c for c, p in profiles.items() if p["engagement"].get("email", {}).get("delivered") == 1}
    assert delivered == treated  # every receipt reached its customer, once



def limit_file_size(limit: int) -> None:
    """In the child before it runs: its writes past ``limit`` bytes of a file fail (EFBIG), as on
    a full disk, until the limit is raised; the hard limit stays open for that."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))


@pytest.mark.slow
def test_a_full_disk_answers_503_keeps_what_was_acknowledged_and_ingests_again_once_there_is_room(tmp_path):
    data = tmp_path / "state"
    process, url = start(data, "--admin-token", "adm", preexec_fn=partial(limit_file_size, 256 * 1024))
    acknowledged: list[str] = []
    refused: list[int] = []  # first customer of each refused batch
    try:
        with httpx.Client(base_url=url, timeout=10) as client:
            first = 0
            while len(refused) < 3 and first < 40_000:
                answer = client.post("/v1/batch", json=carts(first, 50))
                if answer.status_code == 200:
                    assert not refused  # never a 2xx once writes fail: nothing was stored
                    acknowledged.extend(f"c{i}" for i in range(first, first + 50))
                else:
                    assert answer.status_code == 503 and answer.headers["retry-after"] == "1", answer.text
                    refused.append(first)
                first += 50
            assert len(refused) == 3 and len(acknowledged) >= 500
            health = client.get("/healthz")
            assert health.status_code == 503 and health.json()["status"] == "storage"
            metrics = client.get("/metrics", headers={"Authorization": "Bearer adm"}).text
            assert "touchpoint_accepting 0.0" in metrics
            assert "touchpoint_log_append_failures_total 3.0" in metrics

            resource.prlimit(process.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)  # room again
            retried = client.post("/v1/batch", json=carts(refused[-1], 50))  # a client's retry
            assert retried.status_code == 200
            acknowledged.extend(f"c{i}" for i in range(refused[-1], refused[-1] + 50))
            assert client.get("/healthz").json()["status"] == "ok"
            assert client.post("/v1/batch", json=carts(first, 50)).status_code == 200
            acknowledged.extend(f"c{i}" for i in range(first, first + 50))
    except BaseException:
        process.kill()
        raise
    stop(process, signal.SIGTERM)
    profiles = exported(data)
    assert [c for c in acknowledged if c not in profiles] == []
    never_retried = {f"c{i}" for start_ in refused[:-1] for i in range(start_, start_ + 50)}
    assert not never_retried & set(profiles)  # nothing of a refused batch was applied
