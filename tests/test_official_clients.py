"""Official Segment client libraries, installed from the package registry, against the real
service on 127.0.0.1: what they send, with their documented options, is accepted whole.

segment-analytics-python (PyPI): default options (batched on a background thread, no gzip),
gzip with one call per request in sync mode, gzip batches of three on two threads.
@segment/analytics-node (npm, installed into tests/node by the test set-up or .ci/run): default
options, and one event per batch.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import segment.analytics.client as analytics
import trio
from segment.analytics.request import APIError
from serving import ADMIN, KEY, run_against_server

OPTIONS = [
    pytest.param({}, id="defaults"),
    pytest.param({"gzip": True, "sync_mode": True, "upload_size": 1}, id="gzip-sync-one-per-request"),
    pytest.param({"gzip": True, "upload_size": 3, "thread": 2}, id="gzip-batches-of-three-two-threads"),
]


@pytest.mark.parametrize("options", OPTIONS)
def test_segment_analytics_python_is_accepted_with_its_options(tmp_path, options):
    errors: list[BaseException] = []

    def send(host: str) -> None:
        client = analytics.Client(KEY, host=host, on_error=lambda exc, batch: errors.append(exc),
                                  max_retries=1, **options)
        client.identify("ada", {"email": "ada@example.com", "sms_consent": False},
                        context={"timezone": "Europe/Paris", "device": {"token": "tok-1"}})
        client.track("ada", "Product Added", {"product_id": "p1", "price": 35.0, "quantity": 1})
        client.page("ada", "Shop", "Cart", {"url": "https://shop.example/cart"})
        client.screen("ada", "App", "Home")
        client.group("ada", "g1", {"name": "Acme"})
        client.alias("ada", "ada-previous")
        client.track(anonymous_id="visitor-1", event="cart_add", properties={"value": 25})
        client.track("ada", "Order Completed", {"order_id": "o1", "revenue": 35.0})
        client.flush()
        if not options.get("sync_mode"):  # (in sync mode each call was sent as it was made)
            client.join()

    async def script(client, runtime):
        await trio.to_thread.run_sync(send, str(client.base_url).rstrip("/"))
        bearer = {"authorization": f"Bearer {ADMIN}"}
        ada = (await client.get("/v1/profiles/ada", headers=bearer)).json()
        assert {"email", "push"} <= set(ada["reachable"]) and ada["timezone"] == "Europe/Paris"
        assert ada["traits"]["group_id"] == "g1" and ada["purchases"]["count"] == 1
        details = [entry["detail"] for entry in ada["timeline"]]
        assert "cart_add" in details and "purchase" in details
        stats = (await client.get("/v1/journeys", headers=bearer)).json()["cart_abandonment"]
        assert stats["entrants"] >= 1 and stats["exits"].get("purchase") == 1
        visitor = await client.get("/v1/profiles/visitor-1", headers=bearer)
        assert visitor.status_code == 200

    run_against_server(tmp_path, script)
    assert errors == []


def test_a_refused_call_reaches_the_python_client_as_its_api_error_with_our_reason(tmp_path):
    """A user id over the engine's 256 characters: the library (in sync mode) raises its
    ``APIError`` with the code and message the edge answered, not an "unknown" error with a body
    it could not read; the next call goes through."""
    errors: list[BaseException] = []

    def send(host: str) -> None:
        client = analytics.Client(KEY, host=host, max_retries=1, sync_mode=True)
        try:
            client.track("u" * 300, "cart_add", {"value": 25})
        except APIError as exc:
            errors.append(exc)
        client.track("ada", "cart_add", {"value": 25})

    async def script(client, runtime):
        await trio.to_thread.run_sync(send, str(client.base_url).rstrip("/"))
        ada = await client.get("/v1/profiles/ada", headers={"authorization": f"Bearer {ADMIN}"})
        assert ada.status_code == 200

    run_against_server(tmp_path, script)
    [error] = errors
    assert isinstance(error, APIError) and error.status == 400 and error.code == "invalid_request"
    assert "userId" in error.message and "256" in error.message


# -- @segment/analytics-node (npm) ----------------------------------------------------------------

NODE = Path(__file__).resolve().parent / "node"
NODE_OPTIONS = [
    pytest.param({}, id="defaults"),
    pytest.param({"maxEventsInBatch": 1, "flushInterval": 50}, id="one-event-per-batch"),
]


@pytest.fixture(scope="module")
def node_client() -> Path:
    """The npm package installed beside its script (skipped, saying why, only when it cannot be)."""
    if not (NODE / "node_modules" / "@segment" / "analytics-node").is_dir():
        npm = shutil.which("npm")
        if npm is None or shutil.which("node") is None:
            pytest.skip("no Node.js: @segment/analytics-node cannot run here")
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=NODE, capture_output=True,
                              text=True, timeout=300)
        if done.returncode != 0:
            pytest.skip(f"npm could not install @segment/analytics-node: {done.stderr.strip()[-300:]}")
    return NODE / "send.mjs"


@pytest.mark.parametrize("options", NODE_OPTIONS)
def test_segment_analytics_node_is_accepted_with_its_options(tmp_path, node_client, options):
    async def script(client, runtime):
        command = ["node", str(node_client), str(client.base_url).rstrip("/"), KEY, json.dumps(options)]
        done = await trio.to_thread.run_sync(
            lambda: subprocess.run(command, capture_output=True, text=True, timeout=60))
        assert done.returncode == 0, done.stderr
        bearer = {"authorization": f"Bearer {ADMIN}"}
        noa = (await client.get("/v1/profiles/noa", headers=bearer)).json()
        assert {"email", "push"} <= set(noa["reachable"]) and noa["timezone"] == "America/New_York"
        assert noa["traits"]["group_id"] == "g9" and noa["purchases"]["count"] == 1
        assert noa["purchases"]["revenue"] == 60
        stats = (await client.get("/v1/journeys", headers=bearer)).json()["cart_abandonment"]
        assert stats["entrants"] == 2 and stats["exits"].get("purchase") == 1  # (noa and the visitor)
        assert (await client.get("/v1/profiles/visitor-9", headers=bearer)).status_code == 200

    run_against_server(tmp_path, script)
