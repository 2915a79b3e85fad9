"""The outbox: retries with backoff, Retry-After, rate limit, circuit breaker, dead letters,
idempotency keys; and the HTTP provider against a real server on 127.0.0.1."""

from __future__ import annotations

import json
from collections import Counter
from functools import partial

import httpx
import pytest
import trio
import trio.testing
from harness import Refusing, run_outbox, sends, settled_at_restart
from hypercorn.config import Config
from hypercorn.trio import serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from actors.errors import ProviderError
from actors.messages import Send
from engine.delivery.outbox import Outbox
from engine.delivery.providers import HttpProvider, MockProvider
from engine.storage.outbox_files import DeadLetterFile, SettledLog


def test_flaky_provider_gets_everything_once_through_retries():
    provider = MockProvider(failure_rate=0.5, seed=3)
    outbox = Outbox({"email": provider}, max_attempts=20, seed=1)
    run_outbox(outbox, sends(200))
    assert outbox.delivered == 200 and not outbox.dead_letters and not outbox.pending
    assert len(provider.delivered) == 200 and provider.calls > 300  # retried, delivered once each


def test_nothing_is_dropped_silently_permanent_errors_are_not_retried():
    permanent, flaky = Refusing(True), Refusing(False)
    outbox = Outbox({"email": permanent, "sms": flaky}, max_attempts=4, breaker_failures=100, seed=1)
    items = sends(3) + sends(2, "sms") + sends(1, "push")  # push has no provider
    run_outbox(outbox, items)
    assert permanent.calls == 3 and flaky.calls == 2 * 4
    assert sorted(s.channel for s, _ in outbox.dead_letters) == ["email"] * 3 + ["push"] + ["sms"] * 2
    assert outbox.delivered == 0 and not outbox.pending


def test_the_breaker_opens_after_failures_in_a_row_and_waits_before_trying_again():
    failing = Refusing(False)
    outbox = Outbox({"email": failing}, workers=1, max_attempts=4, base_delay=0.01,
                    breaker_failures=3, breaker_reset=30.0, seed=1)
    took = run_outbox(outbox, sends(1))
    assert failing.calls == 4 and took >= 30.0  # the 4th try waited for the breaker


def test_the_rate_limit_spreads_sends_out():
    provider = MockProvider()
    outbox = Outbox({"push": provider}, rates={"push": 10.0}, seed=1)
    took = run_outbox(outbox, sends(30, "push"))
    assert len(provider.delivered) == 30 and 1.8 <= took <= 3.0


def test_retry_after_is_honoured():
    class Busy:
        calls = 0

        async def send(self, send: Send) -> None:
            Busy.calls += 1
            if Busy.calls == 1:
                raise ProviderError("busy", retry_after=12.0)

    outbox = Outbox({"email": Busy()}, base_delay=0.01, seed=1)
    took = run_outbox(outbox, sends(1))
    assert outbox.delivered == 1 and 12.0 <= took < 13.0


def test_http_provider_against_a_real_server_retries_and_never_delivers_a_key_twice():
    seen: Counter[str] = Counter()
    applied: list[str] = []

    async def endpoint(request: Request) -> JSONResponse:
        key = request.headers["idempotency-key"]
        seen[key] += 1
        if seen[key] <= 2:  # the provider is overloaded at first
            return JSONResponse({"error": "busy"}, status_code=503, headers={"Retry-After": "0"})
        if key not in applied:  # honours idempotency keys
            applied.append(key)
        return JSONResponse({"ok": True})

    async def reject(request: Request) -> JSONResponse:
        seen["rejected"] += 1
        return JSONResponse({"error": "bad number"}, status_code=400)

    app = Starlette(routes=[Route("/send", endpoint, methods=["POST"]),
                            Route("/reject", reject, methods=["POST"])])
    items = sends(20, "sms")
    results = {}

    async def main() -> None:
        config = Config()
        config.bind = ["127.0.0.1:0"]
        config.accesslog = None
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(partial(serve, app, config, shutdown_trigger=stop.wait))
            async with httpx.AsyncClient(timeout=10) as client:
                outbox = Outbox({"sms": HttpProvider(f"{binds[0]}/send", client),
                                 "email": HttpProvider(f"{binds[0]}/reject", client)},
                                breaker_failures=1000, seed=1)  # the breaker is tested apart
                async with trio.open_nursery() as inner:
                    inner.start_soon(outbox.run)
                    for item in items + sends(1, "email"):
                        outbox.deliver_nowait(item.customer, item, 0.0)
                    outbox.close()
                results["outbox"] = outbox
                again = Outbox({"sms": HttpProvider(f"{binds[0]}/send", client)}, seed=1)
                async with trio.open_nursery() as inner:  # re-sent after a restart: same keys
                    inner.start_soon(again.run)
                    for item in items[:5]:
                        again.deliver_nowait(item.customer, item, 0.0)
                    again.close()
            stop.set()

    trio.run(main)
    outbox = results["outbox"]
    assert sorted(applied) == sorted(s.key for s in items)  # each key applied exactly once
    assert all(seen[s.key] >= 3 for s in items) and seen["rejected"] == 1  # no retry of a 400
    assert all(seen[s.key] == 4 for s in items[:5])  # the re-sends arrived, and applied nothing
    assert [s.channel for s, _ in outbox.dead_letters] == ["email"]
    assert "HTTP 400" in outbox.dead_letters[0][1]


def test_the_settled_log_remembers_delivered_and_dead_sends_until_a_snapshot(tmp_path):
    path = tmp_path / "settled.log"
    log = SettledLog(path)
    outbox = Outbox({"email": MockProvider(), "sms": Refusing(True)}, settled_log=log, seed=1)
    items = sends(3) + sends(1, "sms") + sends(1, "push")  # delivered, refused, no provider
    run_outbox(outbox, items)
    log.close()
    with open(path, "a") as file:
        file.write('"c9:j:1:em')  # a write torn by a crash
    reopened = SettledLog(path)  # the next start: these need not go out again
    assert reopened.settled_before == {s.key for s in items}
    reopened.restart()  # a snapshot holds the state now
    reopened.record("c0:j:2:email:1")
    reopened.close()
    assert settled_at_restart(path) == {"c0:j:2:email:1"}


def test_keys_set_aside_for_a_background_snapshot_count_until_it_is_in_place(tmp_path):
    path = tmp_path / "settled.log"
    log = SettledLog(path)
    log.record("before:1")
    log.rotate()  # a background snapshot starts: its pending sends exclude "before:1"
    log.record("during:1")
    log.close()
    assert settled_at_restart(path) == {"before:1", "during:1"}  # a crash meanwhile

    log = SettledLog(path)  # (the crash's restart merged the set-aside keys back)
    log.rotate()  # the next background snapshot fails...
    log.record("after:1")
    log.rotate()  # ...and another starts: the keys of both stay set aside
    assert log.settled_before == {"before:1", "during:1"}
    log.close()
    assert settled_at_restart(path) == {"before:1", "during:1", "after:1"}

    log = SettledLog(path)
    log.rotate()
    log.record("later:1")
    log.drop_rotated()  # the snapshot is in place: only the keys settled since it started count
    log.close()
    assert settled_at_restart(path) == {"later:1"}


def test_a_send_handed_over_again_while_still_queued_goes_out_once():
    provider = MockProvider()
    outbox = Outbox({"email": provider}, seed=1)
    run_outbox(outbox, sends(2) + sends(2))
    assert provider.calls == 2 and outbox.delivered == 2


def test_the_http_provider_sends_the_address_and_refuses_a_customer_without_one():
    bodies: list[dict[str, object]] = []

    def api(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200)

    phones = {"c0": "+15550000"}

    async def main() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(api)) as client:
            provider = HttpProvider("https://sms.example/send", client, address_of=phones.get)
            first, second = sends(2, "sms")
            await provider.send(first)
            with pytest.raises(ProviderError) as refused:
                await provider.send(second)
            assert refused.value.permanent and "no sms address for 'c1'" in str(refused.value)

    trio.run(main)
    assert [body["to"] for body in bodies] == ["+15550000"]  # c1 was never posted


def test_dead_letters_are_kept_across_a_restart(tmp_path):
    path = tmp_path / "dead-letters.jsonl"
    letters = DeadLetterFile(path)
    outbox = Outbox({"email": MockProvider(), "sms": Refusing(True)}, dead_letter_file=letters, seed=1)
    run_outbox(outbox, sends(2) + sends(1, "sms") + sends(1, "push"))  # delivered, refused, no provider
    letters.close()
    with open(path, "a") as file:
        file.write('{"send": ["c9", "j"')  # a write torn by a crash
    letters = DeadLetterFile(path)  # the next start
    again = Outbox({"email": MockProvider()}, dead_letter_file=letters)
    letters.close()  # (read as the outbox starts)
    assert again.dead_letters == outbox.dead_letters
    assert sorted(send.channel for send, _ in again.dead_letters) == ["push", "sms"]
    assert "no provider" in dict((s.channel, why) for s, why in again.dead_letters)["push"]
