"""Segment payloads to actor messages (engine/segment.py), without HTTP: limits, the field a 400
names, timestamp correction, flattening, receipts, and message id dedupe."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.errors import IngestError
from actors.messages import DeliveryReceipt, Event, Identified
from engine.dedupe import SeenMessageIds
from engine.segment import MAX_BATCH_EVENTS, MAX_CALL_BYTES, parse, to_messages

RECEIVED = 1_700_000_000.0


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
    assert error.field == "batch[1]" and "$.batch[1].userId" in str(error)
    assert failure("batch", batch({"type": "page", "userId": "u"}, 7)).field == "batch[1]"
    assert failure("batch", batch(sentAt=3)).field == "body"


def test_a_call_that_cannot_be_applied_is_named_within_the_batch():
    no_user = failure("batch", batch({"type": "page", "userId": "u"}, {"type": "page"}))
    assert no_user.field == "batch[1].userId" and str(no_user).startswith("batch[1].userId: userId or")
    bad_time = {"type": "track", "userId": "u", "event": "e", "timestamp": "yesterday"}
    assert failure("batch", batch(bad_time, {"type": "page", "userId": "u"})).field == "batch[0].timestamp"
    pages = [{"type": "page", "userId": "u"}] * 2
    assert failure("batch", batch(*pages, sentAt="soon")).field == "sentAt"
    assert failure("batch", batch(pages[0], {**pages[0], "sentAt": "soon"})).field == "batch[1].sentAt"
    assert failure("track", b'{"userId": "u"}').field == "event"
    assert failure("batch", batch({"type": "alias", "userId": "u"})).field == "type"


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
        {"type": "track", "userId": 42, "event": "cart_add", "messageId": "m1",
         "properties": {"value": 80, "product": {"sku": "A", "tags": ["x"], "size": {"eu": 42}}, "n": None}},
        {"type": "identify", "anonymousId": "a7", "traits": {"email": "a@example.com", "plan": "pro"}},
        {"type": "page", "userId": "u", "name": "Home", "properties": {"path": "/"}},
        {"type": "group", "userId": "u", "groupId": 9, "traits": {"name": "Acme"}},
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


_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
_json = st.recursive(
    _scalars | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=12,
)


@given(st.dictionaries(st.text(max_size=3), _json, max_size=6))
def test_properties_are_flattened_as_the_plain_definition_says(properties):
    body = json.dumps({"userId": "u", "event": "e", "properties": properties}).encode()
    [(_, message, _)] = to_messages(parse("track", body)[0], RECEIVED)
    expected = _reference_flatten(properties)
    expected["timestamp"] = RECEIVED
    assert isinstance(message, Event) and list(message.properties.items()) == list(expected.items())
