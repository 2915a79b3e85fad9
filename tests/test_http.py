"""Segment-compatible ingestion at the HTTP edge (engine/edge/http.py).

Each test starts the engine in a trio nursery, talks to its HTTP edge with httpx, and checks
what the engine applied, logged and sent. What is about the app's answers goes to the app
in-process (httpx's ASGI transport); what is about real HTTP (bodies that arrive in pieces and
are read on past a limit, kept-alive connections, bytes in flight) goes to hypercorn on an
ephemeral port of 127.0.0.1 (``serving.run_against_server``).
"""

from __future__ import annotations

import gzip
import json
import zlib

import httpx
import trio
import trio.testing
from harness import T0, journey_path, load_program
from serving import ADMIN, KEY, app_client, run_against_app, run_against_server, start_server
from trio.testing import MockClock

from actors.messages import Event, Identified, TimerFired
from engine.edge import http
from engine.edge.segment import MAX_BATCH_BYTES, MAX_CALL_BYTES
from engine.runtime.channels import MockChannel
from engine.runtime.realtime import RealtimeRuntime
from engine.storage.errors import StorageError
from engine.storage.wal import WriteAheadLog


def test_a_batch_creates_profiles_enters_journeys_and_is_logged_before_the_ack(tmp_path):
    async def script(client, runtime):
        body = {
            "writeKey": KEY,
            "batch": [
                {"type": "identify", "userId": "u1", "traits": {"email": "a@example.com", "plan": "pro"},
                 "messageId": "m1"},
                {"type": "track", "userId": "u1", "event": "cart_add", "properties": {"value": 80},
                 "messageId": "m2"},
                {"type": "page", "anonymousId": "anon-7", "name": "Home", "messageId": "m3"},
            ],
        }
        response = await client.post("/v1/batch", json=body)
        assert response.status_code == 200, response.text
        assert response.json() == {"success": True, "applied": 3, "duplicates": 0}
        logged = [m for _, _, _, m, _ in WriteAheadLog(runtime.log.directory, fsync="none").replay()]
        assert [type(m) for m in logged] == [Identified, Event, Event]  # durable before the 200
        health = await client.get("/healthz")
        assert health.json()["actors"] == 2

    runtime = run_against_app(tmp_path, script)
    profile = runtime.actors["u1"].profile
    assert profile.traits == {"email": "a@example.com", "plan": "pro"} and profile.can_reach("email")
    assert runtime.actors["u1"].runs_by_id()["cart_abandonment"].step == "wait_1h"
    assert "anon-7" in runtime.actors


def test_auth_limits_malformed_input_and_duplicates(tmp_path):
    async def script(client, runtime):
        track = {"userId": "u2", "event": "cart_add", "properties": {"value": 30}, "messageId": "d1"}
        assert (await client.post("/v1/track", json=track)).status_code == 401
        wrong = await client.post("/v1/track", json={**track, "writeKey": "nope"})
        assert wrong.status_code == 401
        basic = await client.post("/v1/track", json=track, auth=(KEY, ""))
        assert basic.status_code == 200 and basic.json()["applied"] == 1
        again = await client.post("/v1/track", json={**track, "writeKey": KEY})
        assert again.json() == {"success": True, "applied": 0, "duplicates": 1}
        big = {**track, "writeKey": KEY, "messageId": "d2", "properties": {"blob": "x" * 40_000}}
        too_big = await client.post("/v1/track", json=big)
        assert too_big.status_code == 400 and too_big.json()["field"] == "body"
        broken = await client.post("/v1/track", content=b'{"userId": "u2", "event": ', auth=(KEY, ""))
        assert broken.status_code == 400 and "malformed" in broken.json()["error"]
        half_bad = {"writeKey": KEY, "batch": [
            {"type": "track", "userId": "u3", "event": "cart_add", "messageId": "d3"},
            {"type": "track", "event": "cart_add", "messageId": "d4"},  # nobody
        ]}
        rejected = await client.post("/v1/batch", json=half_bad)
        assert rejected.status_code == 400 and rejected.json()["field"] == "batch[1].userId"
        wrong_type = {"writeKey": KEY, "batch": [
            {"type": "track", "userId": "u4", "event": "cart_add", "messageId": "d5"},
            {"type": "track", "userId": "u4", "event": "cart_add", "properties": [80]},  # no object
        ]}
        mistyped = await client.post("/v1/batch", json=wrong_type)
        assert mistyped.status_code == 400 and mistyped.json()["field"] == "batch[1].properties"
        no_event = await client.post("/v1/track", json={"userId": "u2", "writeKey": KEY})
        assert no_event.status_code == 400 and no_event.json()["field"] == "event"

    runtime = run_against_app(tmp_path, script)
    logged = list(WriteAheadLog(tmp_path / "wal", fsync="none").replay())
    events = [(cid, m.name) for _, _, cid, m, _ in logged if not isinstance(m, TimerFired)]
    assert events == [("u2", "cart_add")]
    assert "u3" not in runtime.actors and "u4" not in runtime.actors  # nothing of a rejected batch


def test_a_full_inbox_answers_429_with_retry_after_and_then_accepts(tmp_path):
    runtime = RealtimeRuntime(load_program(), MockChannel(), buffer=2, log=WriteAheadLog(tmp_path / "wal"))
    body = json.dumps(
        {"writeKey": KEY, "userId": "u9", "event": "cart_add", "properties": {"value": 80}, "messageId": "r1"}
    )

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for i in range(2):  # the engine is not running yet: its inbox fills up
                runtime.ingest_nowait(f"x{i}", Event("page_view"))
            async with app_client(runtime) as client:
                refused = await client.post("/v1/track", content=body)
                assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
                nursery.start_soon(runtime.run)  # the engine drains; the client retries
                await trio.testing.wait_all_tasks_blocked()  # (in-process, a retry waits for that)
                accepted = await client.post("/v1/track", content=body)
                assert accepted.status_code == 200 and accepted.json()["applied"] == 1
            runtime.close()

    trio.run(main)
    runtime.log.close()
    assert runtime.actors["u9"].runs_by_id()["cart_abandonment"].step == "wait_1h"


def test_the_admin_api_shows_profiles_journeys_and_metrics_behind_its_token(tmp_path):
    async def script(client, runtime):
        batch = {"writeKey": KEY, "batch": [
            {"type": "identify", "userId": "ada", "traits": {"email": "ada@example.com"}},
            {"type": "track", "userId": "ada", "event": "cart_add", "properties": {"value": 80}},
            {"type": "track", "userId": "bob", "event": "purchase", "properties": {"value": 12}},
        ]}
        assert (await client.post("/v1/batch", json=batch)).status_code == 200
        bearer = {"authorization": f"Bearer {ADMIN}"}
        for path in ("/v1/profiles/ada", "/v1/journeys", "/metrics"):
            assert (await client.get(path)).status_code == 401
            wrong = await client.get(path, headers={"authorization": "Bearer nope"})
            assert wrong.status_code == 401
        assert (await client.get("/v1/profiles/nobody", headers=bearer)).status_code == 404
        ada = (await client.get("/v1/profiles/ada", headers=bearer)).json()
        assert ada["traits"] == {"email": "ada@example.com"} and "email" in ada["reachable"]
        journey = ada["journeys"]["cart_abandonment"]
        assert journey["step"] == "wait_1h" and journey["next_timer_at"] > journey["entered_at"]
        assert [e["detail"] for e in ada["timeline"]] == ["cart_add"]
        stats = (await client.get("/v1/journeys", headers=bearer)).json()
        assert stats["cart_abandonment"]["entrants"] == 1
        text = (await client.get("/metrics", headers=bearer)).text
        assert 'touchpoint_journey_entries_total{group="treated",journey="cart_abandonment"} 1.0' in text
        assert "touchpoint_messages_total 3.0" in text and "touchpoint_actors 2.0" in text
        assert (await client.get("/v1/dead-letters", headers=bearer)).json() == []

    run_against_app(tmp_path, script)


def test_dead_letters_show_in_the_admin_api_and_metrics(tmp_path):
    from actors.errors import ProviderError
    from engine.delivery.outbox import Outbox
    from engine.scenario_files import load_scenario

    class Rejecting:
        async def send(self, send):
            raise ProviderError("HTTP 422", permanent=True)

    program = load_scenario(str(journey_path("webhook_on_signup"))).program
    outbox = Outbox({"webhook": Rejecting()})
    runtime = RealtimeRuntime(program, outbox, log=WriteAheadLog(tmp_path / "wal"))
    bearer = {"authorization": f"Bearer {ADMIN}"}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(runtime.run)
            nursery.start_soon(outbox.run)
            async with app_client(runtime) as client:
                signup = {"writeKey": KEY, "userId": "zoe", "event": "signup"}
                assert (await client.post("/v1/track", json=signup)).status_code == 200
                with trio.fail_after(5):
                    while not outbox.dead_letters:
                        await trio.sleep(0.01)
                dead = (await client.get("/v1/dead-letters", headers=bearer)).json()
                assert [(d["customer"], d["channel"], d["error"]) for d in dead] == [
                    ("zoe", "webhook", "HTTP 422")
                ]
                text = (await client.get("/metrics", headers=bearer)).text
                assert "touchpoint_dead_letters 1.0" in text
            runtime.close()
            outbox.close()

    trio.run(main)
    runtime.log.close()


def test_a_gzipped_body_is_read_and_another_encoding_is_refused(tmp_path):
    track = {"type": "track", "userId": "gz", "event": "cart_add", "properties": {"value": 30}}
    zipped = {"content-encoding": "gzip", "content-type": "application/json"}

    async def script(client, runtime):
        body = gzip.compress(json.dumps({"batch": [track], "writeKey": KEY}).encode())
        accepted = await client.post("/v1/batch", content=body, headers=zipped)
        assert accepted.status_code == 200 and accepted.json()["applied"] == 1
        deflated = await client.post("/v1/batch", content=zlib.compress(b"{}"),
                                     headers={"content-encoding": "deflate"})
        assert deflated.status_code == 415 and deflated.json()["field"] == "content-encoding"
        bomb = gzip.compress(b" " * (10 * MAX_BATCH_BYTES))  # 5 MB of spaces: a few KB zipped
        assert len(bomb) < MAX_BATCH_BYTES
        inflated = await client.post("/v1/batch", content=bomb, headers=zipped)
        assert inflated.status_code == 400 and inflated.json()["field"] == "body"
        cut = await client.post("/v1/batch", content=body[: len(body) // 2], headers=zipped)
        assert cut.status_code == 400
        garbage = await client.post("/v1/batch", content=b"not gzip at all", headers=zipped)
        assert garbage.status_code == 400 and "gzip" in garbage.json()["error"]
        huge = await client.post("/v1/batch", content=b"[" * (3 * MAX_BATCH_BYTES))  # read, dropped
        assert huge.status_code == 400 and huge.json()["field"] == "body"

    runtime = run_against_server(tmp_path, script)
    assert list(runtime.actors) == ["gz"]


class FillingLog(WriteAheadLog):
    """A log on a disk that fills up while ``full`` is set: every append fails, as on ENOSPC."""

    full = False

    def append(self, entries):
        if self.full and entries:
            raise StorageError("write-ahead log: [Errno 28] No space left on device; not logged")
        return super().append(entries)


def test_events_the_log_cannot_take_are_refused_with_503_and_accepted_once_it_can(tmp_path):
    log = FillingLog(tmp_path / "wal", fsync="none")
    runtime = RealtimeRuntime(load_program(), MockChannel(), epoch=T0, log=log)
    runtime.timers.push(T0 + 5, "timed", TimerFired("cart_abandonment", 1))

    def batch(user: str) -> dict:
        return {"writeKey": KEY, "batch": [
            {"type": "track", "userId": user, "event": "cart_add", "properties": {"value": 30}}]}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(runtime.run)
            async with app_client(runtime) as client:
                assert (await client.post("/v1/batch", json=batch("before"))).status_code == 200
                log.full = True
                refused = await client.post("/v1/batch", json=batch("during"))
                assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
                health = await client.get("/healthz")
                assert health.status_code == 503 and health.json()["status"] == "storage"
                await trio.sleep(6)  # the timer comes due while the disk is full: it waits
                assert "timed" not in runtime.actors and runtime.storage_failures >= 2
                log.full = False
                assert (await client.post("/v1/batch", json=batch("after"))).status_code == 200
                assert (await client.get("/healthz")).json()["status"] == "ok"
                await trio.sleep(2)  # the timer put back fires once the log takes it
            runtime.close()

    trio.run(main, clock=MockClock(autojump_threshold=0))
    log.close()
    logged = [(cid, type(m).__name__) for _, _, cid, m, _ in WriteAheadLog(tmp_path / "wal").replay()]
    # nothing of the refused round; the timer put back fires once, when the log takes it again
    assert sorted(logged) == [("after", "Event"), ("before", "Event"), ("timed", "TimerFired")]
    assert sorted(runtime.actors) == ["after", "before", "timed"]


def test_an_engine_that_fails_refuses_every_batch_waiting_and_every_later_one(tmp_path):
    class Failing(RealtimeRuntime):
        def _apply(self, work, now, triggers):
            if any(getattr(message, "name", "") == "boom" for _, message, _ in work):
                raise RuntimeError("a bug in the engine")
            super()._apply(work, now, triggers)

    runtime = Failing(load_program(), MockChannel(), log=WriteAheadLog(tmp_path / "wal"))
    failures = []

    async def engine() -> None:
        try:
            await runtime.run()
        except RuntimeError as exc:
            failures.append(exc)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(engine)
            async with app_client(runtime) as client:
                boom = {"userId": "u", "event": "boom", "writeKey": KEY}
                # logged before it is applied: acknowledged, then the engine fails on it
                assert (await client.post("/v1/track", json=boom)).status_code == 200
                later = await client.post("/v1/track", json={**boom, "event": "cart_add"})
                assert later.status_code == 503
                health = await client.get("/healthz")
                assert health.status_code == 503 and health.json()["status"] == "failed"

    trio.run(main)
    runtime.log.close()
    assert [str(exc) for exc in failures] == ["a bug in the engine"]
    assert isinstance(runtime.failure, RuntimeError) and not runtime.accepting


def test_ids_with_a_slash_are_found_no_path_redirects_and_an_early_answer_keeps_the_connection(tmp_path):
    admin = {"Authorization": f"Bearer {ADMIN}"}

    async def script(client, runtime):
        track = {"writeKey": KEY, "userId": "shop/ada", "event": "cart_add", "properties": {"value": 30}}
        assert (await client.post("/v1/track", json=track)).status_code == 200
        found = await client.get("/v1/profiles/shop%2Fada", headers=admin)
        assert found.status_code == 200 and found.json()["customer_id"] == "shop/ada"
        slash = await client.get("/v1/profiles/shop%2F", headers=admin)  # not a redirect to "shop"
        assert slash.status_code == 404
        channel = await client.post("/v1/receipts/email%2F", json={"key": "k", "status": "opened"},
                                    auth=(KEY, ""))
        assert channel.status_code == 400 and channel.json()["field"] == "channel"
        # answers given before the body is read: the same kept-alive connection goes on
        big = b"x" * (MAX_BATCH_BYTES + 100_000)
        gzip_header = b"\x1f\x8b\x08\x00"
        early = [  # (path, body, headers, the answer)
            ("/v1/track", big, {"content-encoding": "br"}, 415),
            ("/v1/batch", big, {}, 400),  # over the limit
            ("/v1/track", gzip_header + big, {"content-encoding": "gzip"}, 400),  # broken at once
            ("/v1/nothing", big, {}, 404),
            ("/metrics", big, {}, 405),
        ]
        for path, body, headers, status in early * 3:  # (a race, when it was one: several tries)
            assert (await client.post(path, content=body, headers=headers)).status_code == status
            assert (await client.get("/healthz")).status_code == 200

    run_against_server(tmp_path, script)


def test_requests_past_the_bytes_in_flight_answer_429_whatever_the_connections(tmp_path, monkeypatch):
    monkeypatch.setattr(http, "MAX_IN_FLIGHT", 2 * MAX_CALL_BYTES)  # two calls held at a time
    runtime = RealtimeRuntime(load_program(), MockChannel(), log=WriteAheadLog(tmp_path / "wal"))
    answers: list[int] = []

    async def post(client, user: str) -> None:
        track = {"writeKey": KEY, "userId": user, "event": "cart_add", "properties": {"value": 30}}
        answers.append((await client.post("/v1/track", json=track)).status_code)

    async def main() -> None:
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            [url] = await start_server(nursery, runtime, stop)
            async with httpx.AsyncClient(base_url=url, timeout=10) as client:
                async with trio.open_nursery() as posts:
                    posts.start_soon(post, client, "a")  # held: the engine is not running yet
                    posts.start_soon(post, client, "b")
                    await trio.sleep(0.5)
                    third = {"writeKey": KEY, "userId": "c", "event": "e"}
                    refused = await client.post("/v1/track", json=third)
                    assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
                    nursery.start_soon(runtime.run)  # the two held ones go through
                assert sorted(answers) == [200, 200]
                await post(client, "d")  # room again
                assert answers[-1] == 200
            stop.set()
            runtime.close()

    trio.run(main)
    runtime.log.close()
    assert sorted(runtime.actors) == ["a", "b", "d"]
