"""Identity merges and provider receipts at the HTTP edge (engine/edge/http.py), through httpx's
ASGI transport: what is checked is the app's answers and the engine's state, not the server.

An identify with both ids or an alias folds one customer into another at the edge, and a
provider's webhook reports on sends by their idempotency keys. The receipt tests run the engine
on trio's ``MockClock``, which stands still until the test jumps it: the cart journey's hour of
waiting passes at once, at 10:00 UTC (no quiet hours), with no timed assertion.
"""

from __future__ import annotations

import trio
import trio.testing
from harness import DAY, HOUR
from serving import ADMIN, KEY, run_against_app

from actors.profile import CHANNEL_BIT, Profile
from engine.storage.wal import WriteAheadLog

BEARER = {"authorization": f"Bearer {ADMIN}"}


def reachable_by_push_and_email(customer_id: str) -> Profile:
    """A customer with the app installed and an email address: the cart push goes out on push."""
    return Profile(customer_id, reach=CHANNEL_BIT["push"] | CHANNEL_BIT["email"])


def logged(tmp_path) -> list[tuple[str, str, str | None]]:
    """``(customer, message kind, message id)`` of every logged message, timers left out."""
    entries = WriteAheadLog(tmp_path / "wal", fsync="none").replay()
    return [(cid, type(m).__name__, mid) for _, _, cid, m, mid in entries if type(m).__name__ != "TimerFired"]


async def profile(client, customer_id: str) -> dict:
    response = await client.get(f"/v1/profiles/{customer_id}", headers=BEARER)
    assert response.status_code == 200, response.text
    return response.json()


async def push_sent_after_the_hour(clock, runtime):
    """Let the cart journey's hour pass; return the one push it sent."""
    clock.jump(HOUR)
    await trio.testing.wait_all_tasks_blocked()  # the engine fired the due timer
    [(_, push)] = runtime.channel.delivered
    assert (push.step, push.channel) == ("push", "push")
    return push


def test_an_identify_merges_the_visitors_cart_and_timeline_into_the_known_profile(tmp_path):
    async def script(client, runtime):
        cart = {"writeKey": KEY, "anonymousId": "anon-1", "event": "cart_add", "properties": {"value": 80},
                "messageId": "c1"}
        assert (await client.post("/v1/track", json=cart)).status_code == 200
        identify = {"writeKey": KEY, "userId": "ada", "anonymousId": "anon-1",
                    "traits": {"email": "ada@example.com"}, "messageId": "i1"}
        first = await client.post("/v1/identify", json=identify)
        assert first.json() == {"success": True, "applied": 2, "duplicates": 0}  # the merge, the identify
        retried = await client.post("/v1/identify", json=identify)
        assert retried.json() == {"success": True, "applied": 0, "duplicates": 2}
        later = {"writeKey": KEY, "anonymousId": "anon-1", "event": "wishlist_add", "messageId": "w1"}
        assert (await client.post("/v1/track", json=later)).status_code == 200  # the old id, still in use
        for asked in ("ada", "anon-1"):
            view = await profile(client, asked)
            assert view["customer_id"] == "ada" and view["traits"] == {"email": "ada@example.com"}
            run = view["journeys"]["cart_abandonment"]
            assert (run["entry"], run["step"]) == (1, "wait_1h") and run["next_timer_at"] is not None
            assert [e["detail"] for e in view["timeline"]] == ["cart_add", "wishlist_add"]

    runtime = run_against_app(tmp_path, script)
    assert set(runtime.actors) == {"ada"} and runtime.aliases.resolve("anon-1") == "ada"
    assert logged(tmp_path) == [
        ("anon-1", "Event", "c1"), ("ada", "Merged", "i1:merge"), ("ada", "Identified", "i1"),
        ("anon-1", "Event", "w1"),  # logged as received: the runtime and the replay route it alike
    ]


def test_an_alias_merges_two_known_ids_and_one_without_previous_id_applies_nothing(tmp_path):
    async def script(client, runtime):
        known = {"writeKey": KEY, "batch": [
            {"type": "identify", "userId": "ada", "traits": {"plan": "pro"}},
            {"type": "track", "userId": "ada-work", "event": "cart_add", "properties": {"value": 80}},
        ]}
        assert (await client.post("/v1/batch", json=known)).status_code == 200
        missing = await client.post("/v1/alias", json={"writeKey": KEY, "userId": "ada", "messageId": "a0"})
        assert missing.status_code == 400 and missing.json()["field"] == "previousId"
        half_bad = {"writeKey": KEY, "batch": [
            {"type": "track", "userId": "ada", "event": "wishlist_add"},
            {"type": "alias", "userId": "ada"},
        ]}
        rejected = await client.post("/v1/batch", json=half_bad)
        assert rejected.status_code == 400 and rejected.json()["field"] == "batch[1].previousId"
        alias = {"previousId": "ada-work", "userId": "ada", "messageId": "a1"}
        merged = await client.post("/v1/alias", json=alias, auth=(KEY, ""))
        assert merged.json() == {"success": True, "applied": 1, "duplicates": 0}
        view = await profile(client, "ada-work")
        assert view["customer_id"] == "ada" and view["traits"] == {"plan": "pro"}
        assert view["journeys"]["cart_abandonment"]["step"] == "wait_1h"
        assert [e["detail"] for e in view["timeline"]] == ["cart_add"]  # no wishlist_add: rejected

    runtime = run_against_app(tmp_path, script)
    assert set(runtime.actors) == {"ada"} and runtime.aliases.of == {"ada-work": "ada"}
    assert logged(tmp_path) == [
        ("ada", "Identified", None), ("ada-work", "Event", None), ("ada", "Merged", "a1"),
    ]


def test_a_providers_click_receipt_resumes_the_journey_and_a_repeated_webhook_applies_once(tmp_path):
    clock = trio.testing.MockClock()

    async def script(client, runtime):
        cart = {"writeKey": KEY, "userId": "lin", "event": "cart_add", "properties": {"value": 80}}
        assert (await client.post("/v1/track", json=cart)).status_code == 200
        push = await push_sent_after_the_hour(clock, runtime)
        webhook = {"receipts": [
            {"key": push.key, "status": "delivered"},  # no messageId: applied once per key and status
            {"key": push.key, "status": "clicked", "messageId": "evt-7"},
        ]}
        assert (await client.post("/v1/receipts/push", json=webhook)).status_code == 401
        bad = {"receipts": [webhook["receipts"][0], {"key": "lin:cart_abandonment:1:did_engage:1",
                                                     "status": "clicked"}]}
        refused = await client.post("/v1/receipts/push", json=bad, auth=(KEY, ""))
        assert refused.status_code == 400 and refused.json()["field"] == "receipts[1].key"
        wrong_channel = await client.post("/v1/receipts/pigeon", json=webhook, auth=(KEY, ""))
        assert wrong_channel.status_code == 400 and wrong_channel.json()["field"] == "channel"
        before = await profile(client, "lin")
        assert before["engagement"]["push"]["delivered"] == 0  # nothing of the refused requests
        assert before["journeys"]["cart_abandonment"]["step"] == "did_engage"

        applied = await client.post("/v1/receipts/push", json=webhook, auth=(KEY, ""))
        assert applied.json() == {"success": True, "applied": 2, "duplicates": 0}
        again = await client.post("/v1/receipts/push", json={**webhook, "writeKey": KEY})
        assert again.json() == {"success": True, "applied": 0, "duplicates": 2}

        after = await profile(client, "lin")
        push_stats = after["engagement"]["push"]
        assert (push_stats["sends"], push_stats["delivered"], push_stats["clicked"]) == (1, 1, 1)
        run = after["journeys"]["cart_abandonment"]
        assert run["step"] is None and run["next_timer_at"] is None  # a click ends the journey
        assert [e["kind"] for e in after["timeline"]] == ["event", "sent", "clicked"]
        clock.jump(3 * DAY)  # past both waits for a click: no email, no SMS
        await trio.testing.wait_all_tasks_blocked()
        assert len(runtime.channel.delivered) == 1

    run_against_app(tmp_path, script, profiles=reachable_by_push_and_email, clock=clock)
    assert [kind for _, kind, _ in logged(tmp_path)] == ["Event", "DeliveryReceipt", "DeliveryReceipt"]


def test_a_receipt_for_a_send_to_the_visitor_reaches_the_profile_it_merged_into(tmp_path):
    clock = trio.testing.MockClock()

    async def script(client, runtime):
        cart = {"writeKey": KEY, "anonymousId": "anon-5", "event": "cart_add", "properties": {"value": 80}}
        assert (await client.post("/v1/track", json=cart)).status_code == 200
        push = await push_sent_after_the_hour(clock, runtime)
        assert push.key.startswith("anon-5:")
        identify = {"writeKey": KEY, "userId": "lin", "anonymousId": "anon-5", "messageId": "i5"}
        assert (await client.post("/v1/identify", json=identify)).status_code == 200
        clicked = {"writeKey": KEY, "key": push.key, "status": "clicked"}  # one receipt, no list
        assert (await client.post("/v1/receipts/push", json=clicked)).json()["applied"] == 1
        view = await profile(client, "lin")
        assert view["engagement"]["push"]["clicked"] == 1
        assert view["journeys"]["cart_abandonment"]["step"] is None

    runtime = run_against_app(tmp_path, script, profiles=reachable_by_push_and_email, clock=clock)
    assert set(runtime.actors) == {"lin"}
    key = runtime.channel.delivered[0][1].key
    assert logged(tmp_path) == [
        ("anon-5", "Event", None), ("lin", "Merged", "i5:merge"), ("lin", "Identified", "i5"),
        ("anon-5", "DeliveryReceipt", f"receipt:{key}:clicked"),  # logged as received, routed on apply
    ]
