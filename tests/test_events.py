"""Incoming event names in the journey vocabulary: Segment's e-commerce names by default, a
scenario's [events] table over them, the same in every runtime; and over real HTTP, a shop's
`Order Completed` ends the cart journey."""

from __future__ import annotations

import tomllib
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import trio.testing
from harness import CART_SCENARIO, HOUR
from serving import ADMIN, KEY, run_against_app, run_against_server

from actors import Actor, ScenarioError, compile_scenario
from actors.compiler import CORE_TABLES
from actors.durations import local_time_of_day, next_local_time
from actors.events import SEGMENT_ECOMMERCE, translate
from actors.messages import Entered, Event, Exited
from actors.profile import Profile

T = 1_000_000.0


def cart_program(events: dict[str, str] | None = None):
    document = tomllib.loads(CART_SCENARIO.read_text())
    if events is not None:
        document["events"] = events
    return compile_scenario({k: v for k, v in document.items() if k in CORE_TABLES})


def test_segment_ecommerce_names_enter_and_end_the_cart_journey_with_their_values():
    actor = Actor(cart_program(), Profile("ada"))
    added = actor.handle(Event("Product Added", {"price": 15.0, "quantity": 2}), T)
    assert [type(e) for e in added][:1] == [Entered]  # 15 x 2 = 30 > 20: the cart journey's entry
    done = actor.handle(Event("Order Completed", {"order_id": "o1", "revenue": 55.5}), T + 60)
    assert any(isinstance(e, Exited) and e.journey == "cart_abandonment" for e in done)
    assert actor.profile.purchases == 1 and actor.profile.revenue == 55.5


def test_a_scenarios_events_table_adds_names_and_can_turn_a_default_off():
    own = Actor(cart_program({"Bought": "purchase", "Order Completed": "Order Completed"}), Profile("bo"))
    own.handle(Event("cart_add", {"value": 40}), T)
    assert not any(isinstance(e, Exited) for e in own.handle(Event("Order Completed"), T + 1))
    assert any(isinstance(e, Exited) for e in own.handle(Event("Bought", {"total": 9}), T + 2))
    assert own.profile.revenue == 9.0


@pytest.mark.parametrize(
    ("props", "value"),
    [({"revenue": 12, "total": 15}, 12.0), ({"total": 15}, 15.0), ({"price": 2.5, "quantity": 3}, 7.5),
     ({"price": 4}, 4.0), ({"value": 1, "revenue": 9}, 1), ({"price": "x"}, None), ({}, None)],
)
def test_a_translated_event_gets_a_value_from_the_specs_fields(props, value):
    translated = translate(Event("Order Completed", props), "purchase")
    assert translated.name == "purchase" and translated.properties.get("value") == value


@pytest.mark.parametrize(("events", "field"), [({"Order Completed": 3}, "events.Order Completed"),
                                               ({"": "purchase"}, "events"), ("purchase", "events")])
def test_a_bad_events_table_is_refused_naming_it(events, field):
    with pytest.raises(ScenarioError) as caught:
        cart_program(events)
    assert caught.value.field is not None and caught.value.field.startswith(field)


def test_every_default_maps_to_a_name_of_the_vocabulary():
    assert all(name != target and target.islower() for name, target in SEGMENT_ECOMMERCE.items())


def test_order_completed_over_http_ends_the_cart_journey(tmp_path):
    async def script(client, runtime):
        batch = {"writeKey": KEY, "batch": [
            {"type": "track", "userId": "ada", "event": "Product Added", "messageId": "e1",
             "properties": {"product_id": "p1", "price": 42.0, "quantity": 1}},
        ]}
        assert (await client.post("/v1/batch", json=batch)).status_code == 200
        bearer = {"authorization": f"Bearer {ADMIN}"}
        ada = (await client.get("/v1/profiles/ada", headers=bearer)).json()
        assert ada["journeys"]["cart_abandonment"]["step"] == "wait_1h"
        order = {"writeKey": KEY, "userId": "ada", "event": "Order Completed", "messageId": "e2",
                 "properties": {"order_id": "o1", "revenue": 42.0, "currency": "USD"}}
        assert (await client.post("/v1/track", json=order)).status_code == 200
        ada = (await client.get("/v1/profiles/ada", headers=bearer)).json()
        run = ada["journeys"].get("cart_abandonment")
        assert run is None or run["step"] is None
        stats = (await client.get("/v1/journeys", headers=bearer)).json()["cart_abandonment"]
        assert stats["exits"] == {"purchase": 1} and stats["entrants"] == 1

    run_against_server(tmp_path, script)


def test_an_identify_from_a_mobile_library_makes_push_reachable_and_sets_consent_over_http(tmp_path):
    async def script(client, runtime):
        identify = {"writeKey": KEY, "type": "identify", "userId": "kai", "messageId": "m1",
                    "traits": {"email": "kai@example.com", "sms_consent": False, "email_consent": True},
                    "context": {"device": {"token": "fcm-abc", "type": "android", "model": "Pixel"},
                                "timezone": "Asia/Tokyo", "library": {"name": "analytics-android"}}}
        assert (await client.post("/v1/identify", json=identify)).status_code == 200
        bearer = {"authorization": f"Bearer {ADMIN}"}
        kai = (await client.get("/v1/profiles/kai", headers=bearer)).json()
        assert set(kai["reachable"]) >= {"push", "email"} and "sms" not in kai["reachable"]
        assert "email" in kai["consented"] and "sms" not in kai["consented"]
        assert kai["traits"]["push_token"] == "fcm-abc" and kai["traits"]["timezone"] == "Asia/Tokyo"
        bad = {**identify, "messageId": "m2", "context": {"device": {"token": 42}}}
        refused = await client.post("/v1/identify", json=bad)
        assert refused.status_code == 400 and "context.device.token" in refused.json()["field"]

    run_against_server(tmp_path, script)


def test_a_push_token_lets_the_best_channel_choose_push(tmp_path):
    clock = trio.testing.MockClock()

    async def script(client, runtime):
        identify = {"writeKey": KEY, "userId": "kai", "context": {"device": {"token": "apns-1"}}}
        assert (await client.post("/v1/identify", json=identify)).status_code == 200
        cart = {"writeKey": KEY, "userId": "kai", "event": "Product Added", "properties": {"price": 80}}
        assert (await client.post("/v1/track", json=cart)).status_code == 200
        clock.jump(HOUR)
        await trio.testing.wait_all_tasks_blocked()
        [(_, push)] = runtime.channel.delivered
        assert (push.step, push.channel) == ("push", "push")

    run_against_app(tmp_path, script, clock=clock)


def test_a_local_time_in_new_york_is_right_across_the_daylight_saving_change():
    new_york = "America/New_York"  # clocks go forward at 02:00 on 8 March 2026
    saturday_noon = datetime(2026, 3, 7, 12, 0, tzinfo=ZoneInfo(new_york)).timestamp()
    sunday_nine = next_local_time(saturday_noon, new_york, 9 * 3600.0)
    assert datetime.fromtimestamp(sunday_nine, ZoneInfo(new_york)).strftime("%d %H:%M %Z") == "08 09:00 EDT"
    assert sunday_nine - saturday_noon == 20 * 3600.0  # 21 hours of clock time, 20 of real time
    assert local_time_of_day(sunday_nine, new_york) == 9 * 3600.0
    assert next_local_time(saturday_noon, -5 * 3600.0, 9 * 3600.0) == sunday_nine + 3600.0  # fixed


def test_quiet_hours_run_on_the_customers_own_zone_from_context_timezone(tmp_path):
    clock = trio.testing.MockClock()  # the engine starts at T0, 10:00 UTC (19:00 in Tokyo)

    async def script(client, runtime):
        for user, zone in (("aki", "Asia/Tokyo"), ("una", None)):
            context = {"device": {"token": f"t-{user}"}} | ({"timezone": zone} if zone else {})
            identify = {"writeKey": KEY, "userId": user, "context": context}
            assert (await client.post("/v1/identify", json=identify)).status_code == 200
        clock.jump(3 * HOUR)  # 13:00 UTC, 22:00 in Tokyo
        for user in ("aki", "una"):
            cart = {"writeKey": KEY, "userId": user, "event": "cart_add", "properties": {"value": 50}}
            assert (await client.post("/v1/track", json=cart)).status_code == 200
        clock.jump(HOUR)  # the push is due at 14:00 UTC: 23:00 in Tokyo, inside 21:00-08:00
        await trio.testing.wait_all_tasks_blocked()
        assert [send.key.split(":")[0] for _, send in runtime.channel.delivered] == ["una"]
        clock.jump(9 * HOUR)  # 23:00 UTC: 08:00 in Tokyo
        await trio.testing.wait_all_tasks_blocked()
        (una_at, _), (aki_at, aki_push) = runtime.channel.delivered
        assert aki_push.key.startswith("aki:") and aki_at - una_at == 9 * HOUR
        view = (await client.get("/v1/profiles/aki", headers={"authorization": f"Bearer {ADMIN}"})).json()
        assert view["timezone"] == "Asia/Tokyo"

    run_against_app(tmp_path, script, clock=clock)
