"""The outbox: retries with backoff, Retry-After, rate limit, circuit breaker, dead letters,
idempotency keys; and the HTTP provider against a real server on 127.0.0.1."""

from __future__ import annotations

from collections import Counter
from functools import partial

import httpx
import trio
import trio.testing
from hypercorn.config import Config
from hypercorn.trio import serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from actors.errors import ProviderError
from actors.messages import Send
from engine.outbox import Outbox
from engine.providers import HttpProvider, MockProvider


def sends(n: int, channel: str = "email") -> list[Send]:
    return [Send(f"c{i}", "j", 1, "s", channel, "m", f"c{i}:j:1:s:1") for i in range(n)]


def run_outbox(outbox: Outbox, items: list[Send]) -> float:
    """Hand ``items`` over, drain the outbox on a mock clock; return the simulated time taken."""
    took = {}

    async def main() -> None:
        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(outbox.run)
            for item in items:
                outbox.deliver_nowait(0.0, item)
            outbox.close()
        took["t"] = trio.current_time() - start

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return took["t"]


def test_flaky_provider_gets_everything_once_through_retries():
    provider = MockProvider(failure_rate=0.5, seed=3)
    outbox = Outbox({"email": provider}, max_attempts=20, seed=1)
    run_outbox(outbox, sends(200))
    assert outbox.delivered == 200 and not outbox.dead_letters and not outbox.pending
    assert len(provider.delivered) == 200 and provider.calls > 300  # retried, delivered once each


class Refusing:
    def __init__(self, permanent: bool) -> None:
        self.permanent = permanent
        self.calls = 0

    async def send(self, send: Send) -> None:
        self.calls += 1
        raise ProviderError("no", permanent=self.permanent)


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
                        outbox.deliver_nowait(0.0, item)
                    for item in items[:5]:  # re-sent after a restart: same keys
                        outbox.deliver_nowait(0.0, item)
                    outbox.close()
                results["outbox"] = outbox
            stop.set()

    trio.run(main)
    outbox = results["outbox"]
    assert sorted(applied) == sorted(s.key for s in items)  # each key applied exactly once
    assert all(seen[s.key] >= 3 for s in items) and seen["rejected"] == 1  # no retry of a 400
    assert [s.channel for s, _ in outbox.dead_letters] == ["email"]
    assert "HTTP 400" in outbox.dead_letters[0][1]
