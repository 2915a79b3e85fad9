"""``touchpoint serve`` end to end: a real process, real HTTP on 127.0.0.1, signals, restart,
and ``touchpoint export``."""

from __future__ import annotations

import bisect
import json
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

import httpx
import pytest
import trio
from aiosmtpd.controller import Controller
from harness import T0, journey_path, load_program, log_records, make_actor, settled_at_restart
from local_providers import CountingProvider, SmtpInbox, free_port
from prometheus_client import generate_latest
from serving import KEY, start, stop

from actors.messages import Event
from engine import service
from engine.cli.serve import announced_url
from engine.delivery.outbox import Outbox
from engine.edge.monitoring import registry_for
from engine.runtime.channels import MockChannel
from engine.runtime.realtime import RealtimeRuntime
from engine.storage.errors import StorageError
from engine.storage.outbox_files import SettledLog
from engine.storage.snapshots import load_latest
from engine.storage.wal import WriteAheadLog

TIMED_SENDS = journey_path("timed_sends")


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


def send_key(customer: str, channel: str) -> str:
    """The idempotency key of a timed_sends.toml send: the email is the entry's 1st, the SMS its 2nd."""
    return f"{customer}:thanks:1:{channel}:{1 if channel == 'email' else 2}"


def crash_config(provider_url: str, run: int, workers: int) -> str:
    """Email and SMS through the counting provider, each request marked with the engine's run."""
    headers = f'{{ Authorization = "Bearer test-key", X-Engine-Run = "{run}" }}'
    return (
        "snapshot_every = 1.0\n"  # snapshots (and settled-log restarts) between the kills too
        f"[outbox]\nworkers = {workers}\n"
        f'[channels.email]\nprovider = "http"\nurl = "{provider_url}"\nheaders = {headers}\n'
        'address_trait = "email"\n'
        f'[channels.sms]\nprovider = "http"\nurl = "{provider_url}"\nheaders = {headers}\n'
        'address_trait = "phone"\n'
    )


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_no_event_forgets_no_send_and_fires_each_timer_once(tmp_path):
    """A second process loads the server while it is killed with SIGKILL at random moments and
    restarted on the same data. Every acknowledged event is in the exported profiles, once; every
    send the journeys' timers made reached the provider, which applied each key once; each timer
    fired once; and the few requests repeated after a kill are explained by the calls in flight."""
    workers, kills = 2, 5
    provider = CountingProvider(latency=0.05).start()
    port = free_port()
    data, acked_file, config = tmp_path / "state", tmp_path / "acked.txt", tmp_path / "serve.toml"
    url = f"http://127.0.0.1:{port}"

    def launch(run: int) -> subprocess.Popen[str]:
        config.write_text(crash_config(provider.url, run, workers))
        process = subprocess.Popen(
            [sys.executable, "-m", "engine", "serve", str(TIMED_SENDS), "--data", str(data),
             "--port", str(port), "--write-key", KEY, "--config", str(config)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        assert process.stdout is not None
        for line in process.stdout:
            if "serving" in line:
                return process
        pytest.fail("the service did not start")

    rng = random.Random(11)
    killed_at: list[float] = []  # wall-clock times, as the engine's timeline uses
    server = launch(0)
    loader = subprocess.Popen([sys.executable, str(Path(__file__).parent / "loadgen.py"), url, KEY,
                               "75", "4", "15", str(acked_file)])
    try:
        for run in range(1, kills + 1):  # kill -9 at random moments, restart on the same data
            time.sleep(rng.uniform(0.3, 1.0))
            killed_at.append(time.time())
            server.kill()
            server.wait()
            server = launch(run)
        assert loader.wait(timeout=150) == 0
        acked = [line.split() for line in acked_file.read_text().splitlines()]
        customers = sorted({who for _, who, _ in acked})
        assert len(customers) == 300  # every batch was acknowledged in the end
        expected = {send_key(c, channel) for c in customers for channel in ("email", "sms")}
        missing = provider.wait_for(expected, timeout=30)  # the last timers come due meanwhile
        assert not missing, f"sends never made: {sorted(missing)[:5]}"
        stop(server, signal.SIGTERM)
    finally:
        loader.kill()
        if server.poll() is None:
            server.kill()
        provider.stop()

    lines = subprocess.run([sys.executable, "-m", "engine", "export", "--data", str(data)],
                           capture_output=True, text=True, check=True).stdout.splitlines()
    profiles = {p["customer_id"]: p for p in map(json.loads, lines)}
    # every acknowledged event is there, and none twice (retries carried the same ids)
    assert sorted(profiles) == customers
    purchases = Counter(who for _, who, kind in acked if kind == "track")
    assert {c: p["purchases"]["count"] for c, p in profiles.items()} == purchases
    assert all(p["traits"]["phone"].startswith("+1555") for p in profiles.values())
    # each timer fired once: each timed send once in the timeline, the journey over
    for profile in profiles.values():
        sent = [(e["channel"], e["detail"]) for e in profile["timeline"] if e["kind"] == "sent"]
        assert sent == [("email", "thank_you"), ("sms", "survey")], profile["customer_id"]
        assert profile["journeys"]["thanks"]["step"] is None
    # the provider applied exactly the expected keys (each once: it honours keys), to the right
    # addresses
    assert provider.applied_keys() == expected
    assert all(body["to"] == (f"{body['customer']}@example.com" if body["channel"] == "email"
                              else profiles[body["customer"]]["traits"]["phone"])
               for _, _, body in provider.requests)
    # repeats: a key goes out again only from a later run, after the run that sent it was killed
    # with the call in flight; at most one per call in flight (workers x 2 channels) per kill
    runs_of: dict[str, list[int]] = {}
    for key, run, _ in provider.requests:
        runs_of.setdefault(key, []).append(int(run or -1))
    assert all(len(set(runs)) == len(runs) for runs in runs_of.values())  # never twice in a run
    in_flight_at_kill = Counter(run for runs in runs_of.values() for run in sorted(runs)[:-1])
    assert max(in_flight_at_kill.values(), default=0) <= workers * 2, in_flight_at_kill
    repeated = sum(in_flight_at_kill.values())
    # the kills did find sends made but not yet settled, which a later run sent: the re-send path
    # at restart was exercised (the timers that came due while the engine was down fire together
    # at restart, and queue up for a provider taking 50 ms a call)
    made_in = {send_key(p["customer_id"], e["channel"]): bisect.bisect(killed_at, e["at"])
               for p in profiles.values() for e in p["timeline"] if e["kind"] == "sent"}
    resent = sum(1 for key, run in made_in.items() if min(runs_of[key]) > run)
    assert resent > 0
    print(f"\n{len(provider.requests)} requests for {len(expected)} sends after {kills} kills: "
          f"{resent} sent by a later run than made them; {repeated} repeated {dict(in_flight_at_kill)}")


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
    url = announced_url(process.stdout)
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


def _kept(lines: Iterable[str], kept: list[str]) -> Iterator[str]:
    """``lines`` as they come, each also kept, stripped, in ``kept``."""
    for line in lines:
        kept.append(line.strip())
        yield line


@pytest.mark.slow
def test_serve_sends_through_the_smtp_and_http_providers_of_its_config(tmp_path):
    inbox = SmtpInbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    provider = CountingProvider().start()
    config = tmp_path / "serve.toml"
    config.write_text(
        f'[channels.email]\nprovider = "smtp"\nhost = "127.0.0.1"\nport = {smtp.port}\n'
        'sender = "shop@example.com"\n'
        f'[channels.sms]\nprovider = "http"\nurl = "{provider.url}"\n'
        'headers = { X-Api-Key = "secret-key" }\naddress_trait = "phone"\nrate = 5\n'
        "[outbox]\nmax_attempts = 3\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "engine", "serve", str(TIMED_SENDS), "--data", str(tmp_path / "state"),
         "--port", "0", "--write-key", KEY, "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert process.stdout is not None
        printed: list[str] = []  # the output up to the URL: its first line says where sends go
        url = announced_url(_kept(process.stdout, printed))
        assert url is not None, printed
        assert printed[0] == (f"sends: email smtp 127.0.0.1:{smtp.port}, sms http {provider.url}, "
                              "others mock")  # and no secret
        batch = {"writeKey": KEY, "batch": [
            {"type": "identify", "userId": "ada",
             "traits": {"email": "ada@example.com", "phone": "+15550001"}},
            {"type": "track", "userId": "ada", "event": "purchase", "properties": {"value": 30}},
        ]}
        assert httpx.post(f"{url}/v1/batch", json=batch, timeout=10).status_code == 200
        assert not provider.wait_for({"ada:thanks:1:sms:2"}, timeout=30)  # 3 s of timers
    finally:
        try:
            stop(process, signal.SIGTERM)
        finally:  # (the providers' threads end even if the service did not stop cleanly)
            smtp.stop()
            provider.stop()
    [(sender, to, email)] = inbox.messages
    assert sender == "shop@example.com" and to == ["ada@example.com"]
    assert "Subject: thank_you" in email and "X-Idempotency-Key: ada:thanks:1:email:1" in email
    [(key, _, body)] = provider.requests
    assert key == "ada:thanks:1:sms:2" and provider.headers[0]["x-api-key"] == "secret-key"
    assert body == {"customer": "ada", "channel": "sms", "message": "survey", "journey": "thanks",
                    "entry": 1, "transactional": False, "to": "+15550001"}


@pytest.mark.parametrize("table, message", [
    ('[channels.sms]\nprovider = "twilio"\n',
     "channels.sms.provider: unknown provider 'twilio'; expected one of ['http', 'mock', 'smtp']"),
    ('[channels.sms]\nprovider = "http"\nheaders = { X-Api-Key = "k" }\n',
     "channels.sms.url: missing (required: ['url'])"),
    ('[channels.email]\nprovider = "smtp"\nhost = "localhost"\nport = "25"\nsender = "a@b"\n',
     "channels.email.port: Expected `int`, got `str`"),
    ('[channels.fax]\nprovider = "mock"\n',
     "channels.fax: unknown channel; expected one of ['email', 'sms', 'push', 'in_app', 'webhook']"),
    ('[outbox]\nretries = 3\n', "outbox.retries: unknown key; expected one of ['workers', "),
])
def test_a_bad_channel_table_exits_2_naming_the_file_and_the_key(tmp_path, table, message):
    config = tmp_path / "serve.toml"
    config.write_text(table)
    done = subprocess.run([sys.executable, "-m", "engine", "serve", "--config", str(config),
                           "--write-key", KEY, "--data", str(tmp_path / "state")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"config {config}: {message}")
    assert not (tmp_path / "state").exists()  # refused before anything started


@pytest.mark.parametrize("fork", ["works", "fails"])
def test_a_background_snapshot_takes_the_settled_keys_with_it_and_without_a_child_is_written_here(
    tmp_path, monkeypatch, fork
):
    program = load_program()
    runtime = RealtimeRuntime(program, MockChannel())
    for i in range(3):
        actor = runtime.actors[f"c{i}"] = make_actor(program, f"c{i}")
        actor.handle(Event("cart_add", {"value": 50}), T0)
    settled = SettledLog(tmp_path / "settled.log")
    settled.record("c9:cart_abandonment:1:reminder:1")  # settled before the snapshot
    outbox = Outbox({}, settled_log=settled)
    if fork == "fails":
        def no_child(*args: object) -> int:
            raise OSError("Cannot allocate memory")
        monkeypatch.setattr(service, "fork_snapshot", no_child)
    statistics = service.SnapshotStatistics()
    trio.run(service._snapshot_in_background, runtime, outbox, tmp_path, statistics)
    settled.close()
    assert statistics.written == 1 and statistics.failed == 0
    assert load_latest(tmp_path / "snapshots", program).actors == runtime.actors
    assert settled_at_restart(tmp_path / "settled.log") == set()  # the snapshot has them
    assert not (tmp_path / "settled.log.prev").exists()


def test_a_snapshot_that_cannot_be_written_keeps_the_older_one_and_the_log_and_says_so(
    tmp_path, monkeypatch, capsys
):
    program = load_program()
    log = WriteAheadLog(tmp_path / "wal", fsync="none", segment_bytes=1)  # a segment a batch
    runtime = RealtimeRuntime(program, MockChannel(), log=log)
    outbox = Outbox({})
    statistics = service.SnapshotStatistics()

    def full_disk(*args: object, **kwargs: object) -> None:
        raise StorageError("snap-x.msgpack: snapshot not written ([Errno 28] No space left on device)")

    async def life() -> list:
        for i in range(3):
            runtime.applied_lsn = log.append(log_records([(T0, f"c{i}", Event("cart_add", {"value": 50}))]))
            runtime.actors[f"c{i}"] = make_actor(program, f"c{i}")
            if i == 0:
                assert service._snapshot(runtime, outbox, tmp_path, statistics)
        segments = log.segments()
        monkeypatch.setattr(service, "write_snapshot", full_disk)
        assert not service._snapshot(runtime, outbox, tmp_path, statistics)
        return segments

    segments = trio.run(life)
    assert statistics.written == 1 and statistics.failed == 1
    assert "snapshot failed, the older snapshot and the log are kept" in capsys.readouterr().err
    assert log.segments() == segments and len(segments) == 3  # nothing of the log dropped
    assert list(load_latest(tmp_path / "snapshots", program).actors) == ["c0"]
    metrics = generate_latest(registry_for(runtime, statistics)).decode()
    assert "touchpoint_snapshot_failures_total 1.0" in metrics
    assert "touchpoint_snapshots_written_total 1.0" in metrics
    log.close()
