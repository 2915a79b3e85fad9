"""Event time: an event is applied at its corrected timestamp when that lies within the last six
hours (``engine.runtime.ingest``); an older one is counted in the profile and acted on by no
journey; no event is applied before its customer's latest interaction.

Over the HTTP edge, on trio's mock clock: the engine's time starts at T0 (10:00 UTC).
"""

from __future__ import annotations

from datetime import UTC, datetime

import trio
import trio.testing
from harness import DAY, HOUR, T0
from serving import ADMIN, KEY, run_against_app

from actors.messages import Recorded
from engine.runtime.ingest import EVENT_TIME_BOUND
from engine.storage.wal import WriteAheadLog

BEARER = {"authorization": f"Bearer {ADMIN}"}


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")


def test_an_offline_queue_is_timed_as_it_happened(tmp_path):
    """A mobile client flushes a cart add made two hours ago: the customer entered the cart
    journey then, its one-hour wait is long over, so the reminder goes out at once (for ada, who
    is treated; gus is too: the holdout draw of both ids is over 0.1). Another
    flushes a cart add and the purchase that followed 90 minutes later: that one converts after
    90 minutes, and no reminder goes out (the purchase ended the run before its wait was over)."""
    clock = trio.testing.MockClock()
    assert EVENT_TIME_BOUND == 6 * HOUR  # (as the README states it)

    def cart(who: str, hours_ago: float) -> dict:
        return {"type": "track", "userId": who, "event": "cart_add", "properties": {"value": 80},
                "timestamp": iso(T0 - hours_ago * HOUR)}

    async def script(client, runtime):
        bought = {"type": "track", "userId": "gus", "event": "Order Completed",
                  "properties": {"revenue": 80}, "timestamp": iso(T0 - HOUR / 2)}
        ada = {"type": "identify", "userId": "ada", "traits": {"email": "ada@example.com"}}
        batch = [ada, cart("ada", 2), cart("gus", 2), bought]
        assert (await client.post("/v1/batch", json={"writeKey": KEY, "batch": batch})).status_code == 200
        await trio.testing.wait_all_tasks_blocked()
        clock.jump(0.001)  # (the next round: the overdue wait fires)
        await trio.testing.wait_all_tasks_blocked()
        [(sent_at, reminder)] = runtime.channel.delivered
        assert (reminder.customer, reminder.step, reminder.channel) == ("ada", "push", "email")
        assert sent_at == T0 - HOUR  # (caused by the wait's timer, due an hour ago)
        ada = (await client.get("/v1/profiles/ada", headers=BEARER)).json()
        run = ada["journeys"]["cart_abandonment"]
        assert run["entered_at"] == T0 - 2 * HOUR and run["step"] == "did_engage"
        assert [e["at"] for e in ada["timeline"] if e["detail"] == "cart_add"] == [T0 - 2 * HOUR]
        gus = (await client.get("/v1/profiles/gus", headers=BEARER)).json()
        assert gus["purchases"]["last_at"] == T0 - HOUR / 2
        stats = (await client.get("/v1/journeys", headers=BEARER)).json()["cart_abandonment"]
        assert stats["treated"]["conversions"] == 1 and stats["exits"] == {"purchase": 1}
        assert stats["treated"]["time_to_convert_h"]["median"] == 1.5

    run_against_app(tmp_path, script, clock=clock)


def test_an_event_older_than_the_bound_is_counted_and_acted_on_by_no_journey(tmp_path):
    clock = trio.testing.MockClock()

    async def script(client, runtime):
        cart = {"writeKey": KEY, "userId": "bo", "event": "cart_add", "properties": {"value": 60}}
        assert (await client.post("/v1/track", json=cart)).status_code == 200
        old = {"writeKey": KEY, "userId": "bo", "event": "Order Completed", "messageId": "o1",
               "properties": {"revenue": 45.0}, "timestamp": iso(T0 - 2 * DAY)}
        assert (await client.post("/v1/track", json=old)).status_code == 200
        bo = (await client.get("/v1/profiles/bo", headers=BEARER)).json()
        assert bo["purchases"] == {"count": 1, "revenue": 45.0, "first_at": T0 - 2 * DAY,
                                   "last_at": T0 - 2 * DAY}
        assert bo["journeys"]["cart_abandonment"]["step"] == "wait_1h", "the cart run goes on"
        assert "purchase" not in [e["detail"] for e in bo["timeline"]]
        stats = (await client.get("/v1/journeys", headers=BEARER)).json()["cart_abandonment"]
        assert stats["exits"] == {} and stats["treated"]["conversions"] == 0
        cy = {"writeKey": KEY, "userId": "cy", "event": "cart_add", "properties": {"value": 60},
              "timestamp": iso(T0 - 7 * HOUR)}
        assert (await client.post("/v1/track", json=cy)).status_code == 200
        cy_view = (await client.get("/v1/profiles/cy", headers=BEARER)).json()
        assert "cart_abandonment" not in cy_view["journeys"] and cy_view["purchases"]["count"] == 0

    runtime = run_against_app(tmp_path, script, clock=clock)
    logged = [m for _, _, _, m, _ in WriteAheadLog(runtime.log.directory, fsync="none").replay()]
    assert [type(m) for m in logged].count(Recorded) == 2  # (replayed as it was applied)


def test_an_event_stamped_before_the_customers_latest_interaction_keeps_their_history_in_order(tmp_path):
    clock = trio.testing.MockClock()

    async def script(client, runtime):
        calls = [{"type": "track", "userId": "di", "event": name, "properties": {"value": 30},
                  "timestamp": iso(T0 - minutes * 60)}
                 for name, minutes in (("cart_add", 10), ("wishlist_add", 40), ("purchase", 20))]
        assert (await client.post("/v1/batch", json={"writeKey": KEY, "batch": calls})).status_code == 200
        di = (await client.get("/v1/profiles/di", headers=BEARER)).json()
        times = [(e["detail"], e["at"]) for e in di["timeline"]]
        assert times == [("cart_add", T0 - 600), ("wishlist_add", T0 - 600), ("purchase", T0 - 600)]

    run_against_app(tmp_path, script, clock=clock)
