"""Segment payloads to actor messages (engine/edge/segment.py), without HTTP: limits, the field a 400
names, timestamp correction, flattening, receipts, identity merges, message id dedupe, and a
provider's receipts webhook."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
from harness import load_program
from hypothesis import given
from hypothesis import strategies as st

from actors.errors import IngestError
from actors.messages import DeliveryReceipt, Event, Identified, Merged
from engine.edge.receipts import parse_receipts, receipts_to_messages
from engine.edge.segment import (
    MAX_BATCH_EVENTS,
    MAX_CALL_BYTES,
    MAX_DEPTH,
    MAX_ID_CHARS,
    MAX_NAME_CHARS,
    MAX_NUMBER,
    parse,
    to_messages,
)
from engine.runtime.dedupe import SeenMessageIds

RECEIVED = 1_704_067_300.0  # 2024-01-01T00:01:40Z


def batch(*calls: dict[str, Any], **envelope: Any) -> bytes:
    return json.dumps({"batch": list(calls), **envelope}).encode()


def failure(kind: str, body: bytes) -> IngestError:
    with pytest.raises(IngestError) as caught:
        to_messages(parse(kind, body)[0], RECEIVED)
    return caught.value


def seconds(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_a_batch_gives_its_calls_the_write_key_and_its_sent_at():
    calls, key = parse("batch", batch(
        {"type": "track", "userId": "u1", "event": "cart_add"},
        {"type": "identify", "userId": "u1", "sentAt": "2024-01-01T00:00:09Z"},
        writeKey="wk", sentAt="2024-01-01T00:00:10Z",
    ))
    assert key == "wk"
    assert [(c.type, c.sentAt) for c in calls] == [("track", "2024-01-01T00:00:10Z"),
                                                    ("identify", "2024-01-01T00:00:09Z")]


def test_limits_and_malformed_input_name_the_field():
    big = {"type": "track", "userId": "u", "event": "e", "properties": {"blob": "x" * MAX_CALL_BYTES}}
    assert failure("batch", batch({"type": "track", "userId": "u", "event": "e"}, big)).field == "batch[1]"
    many = [{"type": "page", "userId": "u"}] * (MAX_BATCH_EVENTS + 1)
    assert failure("batch", batch(*many)).field == "batch"
    assert failure("batch", b'{"batch": [{"type": "track",').field == "body"
    assert failure("batch", b'{"calls": []}').field == "body"
    assert failure("track", json.dumps(big).encode()).field == "body"


def test_a_wrong_type_inside_a_batch_names_that_call():
    error = failure("batch", batch({"type": "page", "userId": "u"}, {"type": "page", "userId": ["u"]}))
    assert error.field == "batch[1].userId" and "$.batch[1].userId" in str(error)
    assert failure("batch", batch({"type": "page", "userId": "u"}, 7)).field == "batch[1]"
    assert failure("batch", batch(sentAt=3)).field == "sentAt"
    assert failure("batch", b'[]').field == "body"


def test_a_call_that_cannot_be_applied_is_named_within_the_batch():
    no_user = failure("batch", batch({"type": "page", "userId": "u"}, {"type": "page"}))
    assert no_user.field == "batch[1].userId" and str(no_user).startswith("batch[1].userId: userId or")
    bad_time = {"type": "track", "userId": "u", "event": "e", "timestamp": "yesterday"}
    assert failure("batch", batch(bad_time, {"type": "page", "userId": "u"})).field == "batch[0].timestamp"
    pages = [{"type": "page", "userId": "u"}] * 2
    assert failure("batch", batch(*pages, sentAt="soon")).field == "sentAt"
    assert failure("batch", batch(pages[0], {**pages[0], "sentAt": "soon"})).field == "batch[1].sentAt"
    assert failure("track", b'{"userId": "u"}').field == "event"
    assert failure("batch", batch({"type": "merge", "userId": "u"})).field == "type"


def test_timestamps_are_corrected_for_the_client_clock():
    calls, _ = parse("batch", batch(
        {"type": "track", "userId": "u", "event": "e", "originalTimestamp": "2024-01-01T00:00:00Z"},
        {"type": "track", "userId": "u", "event": "e", "timestamp": "2024-01-01T00:00:05+00:00"},
        {"type": "track", "userId": "u", "event": "e"},
        sentAt="2024-01-01T00:00:30.500Z",
    ))
    stamps = [message.properties["timestamp"] for _, message, _ in to_messages(calls, RECEIVED)]
    assert stamps == [RECEIVED - 30.5, seconds("2024-01-01T00:00:05+00:00"), RECEIVED]


def test_calls_become_messages():
    messages = to_messages(parse("batch", batch(
        {"type": "track", "userId": "42", "event": "cart_add", "messageId": "m1",
         "properties": {"value": 80, "product": {"sku": "A", "tags": ["x"], "size": {"eu": 42}}, "n": None}},
        {"type": "identify", "anonymousId": "a7", "traits": {"email": "a@example.com", "plan": "pro"}},
        {"type": "page", "userId": "u", "name": "Home", "properties": {"path": "/"}},
        {"type": "group", "userId": "u", "groupId": "9", "traits": {"name": "Acme"}},
        {"type": "track", "userId": "u", "event": "Email Opened",
         "properties": {"journey": "cart", "entry": 2, "message": "cart_reminder_email"}},
        {"type": "track", "userId": "u", "event": "Email Opened", "properties": {"subject": "hi"}},
    ))[0], RECEIVED)
    cart = messages[0][1]
    assert messages[0][0] == "42" and messages[0][2] == "m1" and isinstance(cart, Event)
    assert list(cart.properties.items()) == [  # nested objects flattened in place; lists dropped
        ("value", 80), ("product.sku", "A"), ("product.size.eu", 42), ("n", None), ("timestamp", RECEIVED)]
    assert messages[1][1] == Identified({"email": "a@example.com", "plan": "pro"}, {"email": True})
    assert messages[1][0] == "a7"
    assert messages[2][1] == Event("page_view", {"path": "/", "name": "Home", "timestamp": RECEIVED})
    assert messages[3][1] == Identified({"group.name": "Acme", "group_id": "9"})
    assert messages[4][1] == DeliveryReceipt("cart", 2, "email", "cart_reminder_email", "opened")
    assert messages[5][1] == Event("Email Opened", {"subject": "hi", "timestamp": RECEIVED})


def test_an_identify_with_both_ids_merges_the_visitor_before_it_identifies():
    messages = to_messages(parse("batch", batch(
        {"type": "identify", "userId": "ada", "anonymousId": "anon-1", "messageId": "i1",
         "traits": {"name": "Ada"}},
        {"type": "identify", "userId": "7", "anonymousId": "9"},  # no messageId
        {"type": "identify", "userId": "bo", "anonymousId": "bo"},  # the same id: nothing to merge
        {"type": "identify", "anonymousId": "anon-2", "traits": {"plan": "free"}},  # not known yet
        {"type": "track", "userId": "ada", "anonymousId": "anon-3", "event": "cart_add"},
    ))[0], RECEIVED)
    assert [(cid, type(m).__name__, mid) for cid, m, mid in messages] == [
        ("ada", "Merged", "i1:merge"), ("ada", "Identified", "i1"),
        ("7", "Merged", None), ("7", "Identified", None),
        ("bo", "Identified", None),
        ("anon-2", "Identified", None),
        ("ada", "Event", None),  # other calls go by userId; the runtime resolves merged ids
    ]
    assert messages[0][1] == Merged("anon-1") and messages[2][1] == Merged("9")


def test_an_alias_merges_the_previous_id_and_needs_both_ids():
    [entry] = to_messages(parse("alias", b'{"previousId": "old@x", "userId": "ada", "messageId": "a1"}')[0],
                          RECEIVED)
    assert entry == ("ada", Merged("old@x"), "a1")
    [entry] = to_messages(parse("batch", batch({"type": "alias", "previousId": "3", "userId": "4"}))[0],
                          RECEIVED)
    assert entry == ("4", Merged("3"), None)
    assert failure("alias", b'{"userId": "ada"}').field == "previousId"
    assert failure("alias", b'{"previousId": "x", "anonymousId": "y"}').field == "userId"
    in_batch = failure("batch", batch({"type": "page", "userId": "u"}, {"type": "alias", "userId": "u"}))
    assert in_batch.field == "batch[1].previousId"
    after_a_merge = batch(  # the identify yields two entries; the failed call is still named by its index
        {"type": "identify", "userId": "ada", "anonymousId": "anon-1"},
        {"type": "alias", "previousId": "", "userId": "u"},
    )
    assert failure("batch", after_a_merge).field == "batch[1].previousId"


def receipts(channel: str, body: Any) -> list[Any]:
    return receipts_to_messages(channel, parse_receipts(json.dumps(body).encode()), load_program())


def receipt_failure(channel: str, body: Any) -> IngestError:
    with pytest.raises(IngestError) as caught:
        receipts(channel, body)
    return caught.value


def test_a_providers_receipts_become_the_sends_delivery_receipts():
    entries = receipts("push", {"receipts": [
        {"key": "ada:cart_abandonment:2:push:1", "status": "clicked", "messageId": "p-9"},
        {"key": "shop:eu:42:cart_abandonment:1:push:1", "status": "delivered"},  # ':' in the customer id
    ]})
    assert entries == [
        ("ada", DeliveryReceipt("cart_abandonment", 2, "push", "cart_reminder", "clicked"),
         "receipt:push:p-9"),
        ("shop:eu:42", DeliveryReceipt("cart_abandonment", 1, "push", "cart_reminder", "delivered"),
         "receipt:shop:eu:42:cart_abandonment:1:push:1:delivered"),
    ]
    [single] = receipts("email", {"key": "bo:cart_abandonment:1:email:2", "status": "opened"})
    assert single[:2] == ("bo", DeliveryReceipt("cart_abandonment", 1, "email", "cart_reminder_email",
                                                "opened"))
    assert parse_receipts(b'{"key": "k", "status": "opened", "writeKey": "wk"}').writeKey == "wk"


def test_a_receipt_that_names_no_send_of_the_scenario_is_refused_by_its_field():
    good = {"key": "ada:cart_abandonment:1:push:1", "status": "clicked"}

    def field(channel: str, *items: dict[str, Any]) -> str | None:
        return receipt_failure(channel, {"receipts": [good, *items]}).field

    assert field("pigeon") == "channel"
    assert field("push", {**good, "status": "read"}) == "receipts[1].status"
    assert field("push", {"status": "clicked"}) == "receipts[1].key"
    malformed = ("ada", "cart_abandonment:1:push:1", "ada:cart_abandonment:one:push:1",
                 "ada:cart_abandonment:1:push:", "ada:cart_abandonment:1:push:²")
    unknown = ("ada:nope:1:push:1", "ada:cart_abandonment:1:nope:1", "ada:cart_abandonment:1:wait_1h:1")
    for key in (*malformed, *unknown):
        assert field("push", {**good, "key": key}) == "receipts[1].key", key
    assert field("sms", good) == "receipts[0].key"  # the push step sends on push or email only
    assert receipt_failure("push", {"key": "x", "status": "clicked"}).field == "key"
    assert receipt_failure("push", {"receipts": [good, {"key": 7}]}).field == "receipts[1].key"
    huge_entry = f"ada:cart_abandonment:{2**64}:push:1"
    assert receipt_failure("push", {"key": huge_entry, "status": "clicked"}).field == "key"
    assert receipt_failure("push", {"receipts": [good] * (MAX_BATCH_EVENTS + 1)}).field == "receipts"


def test_unseen_keeps_calls_without_an_id_and_those_not_applied_lately():
    seen = SeenMessageIds(window=60.0)
    seen.remember(["m1", "m2"], now=100.0)
    entries = [("u", Event("a"), "m1"), ("u", Event("b"), None), ("u", Event("c"), "m3")]
    assert seen.unseen(entries) == entries[1:]
    seen.remember(["m3"], now=200.0)  # m1 and m2 are past the window now
    assert seen.unseen(entries) == entries[:2]


def _reference_flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_reference_flatten(value, f"{prefix}{key}."))
        elif value is None or isinstance(value, (str, int, float, bool)):
            flat[f"{prefix}{key}"] = value
    return flat


_scalars = (st.none() | st.booleans() | st.integers(-MAX_NUMBER, MAX_NUMBER)
            | st.floats(-MAX_NUMBER, MAX_NUMBER, allow_nan=False))
_json = st.recursive(
    _scalars | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=MAX_DEPTH,  # (so objects nest at most MAX_DEPTH deep)
)


@given(st.dictionaries(st.text(max_size=3), _json, max_size=6))
def test_properties_are_flattened_as_the_plain_definition_says(properties):
    body = json.dumps({"userId": "u", "event": "e", "properties": properties}).encode()
    [(_, message, _)] = to_messages(parse("track", body)[0], RECEIVED)
    expected = _reference_flatten(properties)
    expected["timestamp"] = RECEIVED
    assert isinstance(message, Event) and list(message.properties.items()) == list(expected.items())


def test_what_the_engine_cannot_carry_is_refused_and_named():
    def field(**call: Any) -> str | None:
        return failure("track", json.dumps({"userId": "u", "event": "e", **call}).encode()).field

    assert field(properties={"value": MAX_NUMBER + 1}) == "properties.value"
    assert field(properties={"a": {"b": -(2**127)}}) == "properties.a.b"
    assert field(properties={"value": 1e300}) == "properties.value"
    def digits(count: int) -> bytes:
        return b'{"userId": "u", "event": "e", "properties": {"value": 1' + b"0" * count + b"}}"

    assert failure("track", digits(400)).field == "properties.value"
    assert failure("track", digits(5000)).field == "properties[...]"  # (the decoder's own limit)
    assert failure("identify", b'{"userId": "u", "traits": {"email": 1180591620717411303424}}').field == \
        "traits.email"
    # (beyond a double: the decoder's own check, which names the object, not the key)
    assert failure("track", b'{"userId": "u", "event": "e", "properties": {"v": 1e400}}').field == \
        "properties[...]"
    deep: dict[str, Any] = {"leaf": 1}
    for _ in range(MAX_DEPTH + 1):
        deep = {"d": deep}
    assert field(properties=deep) == "properties" + ".d" * (MAX_DEPTH + 1)
    assert field(properties={"x" * (MAX_NAME_CHARS + 1): 1}).startswith("properties.xxx")
    assert field(event="e" * (MAX_NAME_CHARS + 1)) == "event"
    assert field(userId=42) == "userId" and field(anonymousId=["a"], userId=None) == "anonymousId"
    assert field(userId="u" * (MAX_ID_CHARS + 1)) == "userId"
    assert field(messageId={"id": 1}) == "messageId"
    nested = b'{"batch": [{"type": "track", "userId": "u", "event": "e", "context": ' + b"[" * 5000
    assert failure("batch", nested + b"]" * 5000 + b"}]}").field == "body"
    assert failure("batch", b'{"batch": ' + b"[" * 5000 + b"]" * 5000 + b"}").field == "body"
    bad_offset = b'{"userId": "u", "event": "e", "timestamp": "2024-01-01T00:00+25:00"}'
    assert failure("track", bad_offset).field == "timestamp"


def test_numbers_up_to_the_bound_and_objects_up_to_the_depth_pass():
    deep: dict[str, Any] = {"leaf": -MAX_NUMBER}
    for _ in range(MAX_DEPTH - 1):
        deep = {"d": deep}
    body = json.dumps({"userId": "u", "event": "e", "properties": {"deep": deep, "x": MAX_NUMBER}})
    [(_, message, _)] = to_messages(parse("track", body.encode())[0], RECEIVED)
    assert isinstance(message, Event)
    assert message.properties["deep" + ".d" * (MAX_DEPTH - 1) + ".leaf"] == -MAX_NUMBER


def test_a_broken_client_clock_is_clamped_to_the_arrival_and_a_time_without_offset_is_utc():
    def stamp(**call: Any) -> Any:
        body = json.dumps({"userId": "u", "event": "e", **call}).encode()
        [(_, message, _)] = to_messages(parse("track", body)[0], RECEIVED)
        assert isinstance(message, Event)
        return message.properties["timestamp"]

    assert stamp(timestamp="1970-01-02T00:00:00Z") == RECEIVED
    assert stamp(timestamp="0001-01-01T00:00:00") == RECEIVED
    assert stamp(timestamp="2999-01-01T00:00:00Z") == RECEIVED
    assert stamp(timestamp="2024-01-01T00:00:00") == seconds("2024-01-01T00:00:00+00:00")
    # a device clock a year behind, but consistent: the correction gives the true time
    assert stamp(originalTimestamp="2023-01-01T00:00:00Z", sentAt="2023-01-01T00:00:10Z") == RECEIVED - 10
