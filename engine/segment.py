"""The Segment HTTP Tracking API at the edge: payloads in, actor messages out (REFERENCE.md s6).

Every call is validated whole before anything is applied: a bad call raises ``IngestError``
naming the field and the reason, and the HTTP layer answers 400. Calls become messages:

    track     -> Event(event, properties); Segment's semantic delivery events ("Email Opened",
                 "Push Notification Tapped", ...) with the send's journey and entry in their
                 properties become DeliveryReceipt, and reach the journey that sent
    identify  -> Identified(traits, reachable: email and phone traits make those channels reachable)
    page      -> Event("page_view", properties + name);  screen -> Event("screen", ...)
    group     -> Identified(traits={"group_id": ..., "group.<trait>": ...})

Properties are flattened to scalars (``{"product": {"price": 3}}`` -> ``product.price``).
The timestamp is corrected as the spec says, ``timestamp = receivedAt - (sentAt -
originalTimestamp)``, and kept as the event's ``timestamp`` property (seconds since the epoch).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from actors.errors import IngestError
from actors.messages import DeliveryReceipt, Event, Identified, Message, Properties, Scalar

KINDS = ("identify", "track", "page", "screen", "group")
MAX_CALL_BYTES = 32 * 1024  # REFERENCE s6: 32 KB per call and per event
MAX_BATCH_BYTES = 500 * 1024  # and 500 KB per batch
MAX_BATCH_EVENTS = 2_500

# Segment's semantic event names for what providers report back about a send
RECEIPTS = {
    "Email Delivered": ("email", "delivered"),
    "Email Opened": ("email", "opened"),
    "Email Link Clicked": ("email", "clicked"),
    "Email Bounced": ("email", "bounced"),
    "Email Marked as Spam": ("email", "unsubscribed"),
    "Unsubscribed": (None, "unsubscribed"),
    "Push Notification Received": ("push", "delivered"),
    "Push Notification Tapped": ("push", "clicked"),
    "Push Notification Bounced": ("push", "bounced"),
    "SMS Delivered": ("sms", "delivered"),
    "SMS Link Clicked": ("sms", "clicked"),
}


class Call(msgspec.Struct, omit_defaults=True):
    """One Segment call, as lenient as the spec (unknown fields are ignored)."""

    type: str | None = None
    userId: str | int | None = None  # noqa: N815 (Segment's names)
    anonymousId: str | int | None = None  # noqa: N815
    messageId: str | None = None  # noqa: N815
    event: str | None = None
    name: str | None = None
    properties: dict[str, Any] | None = None
    traits: dict[str, Any] | None = None
    groupId: str | int | None = None  # noqa: N815
    timestamp: str | None = None
    sentAt: str | None = None  # noqa: N815
    originalTimestamp: str | None = None  # noqa: N815
    writeKey: str | None = None  # noqa: N815


class BatchBody(msgspec.Struct):
    """A ``/v1/batch`` body."""

    batch: list[msgspec.Raw]
    writeKey: str | None = None  # noqa: N815
    sentAt: str | None = None  # noqa: N815


_call = msgspec.json.Decoder(Call)
_batch = msgspec.json.Decoder(BatchBody)


def parse(kind: str, body: bytes) -> tuple[list[Call], str | None]:
    """Decode one request body: its calls and the write key it carries (if any).

    Raises:
        IngestError: malformed JSON, a wrong field type, or a size limit exceeded.
    """
    if kind == "batch":
        if len(body) > MAX_BATCH_BYTES:
            raise IngestError(f"batch of {len(body):,} bytes; the limit is {MAX_BATCH_BYTES:,}", field="body")
        envelope = _decode(_batch, body, "body")
        if len(envelope.batch) > MAX_BATCH_EVENTS:
            count = len(envelope.batch)
            raise IngestError(f"{count:,} events; the limit is {MAX_BATCH_EVENTS:,}", field="batch")
        calls = []
        for i, raw in enumerate(envelope.batch):
            if len(raw) > MAX_CALL_BYTES:
                raise IngestError(f"{len(raw):,} bytes; the limit is {MAX_CALL_BYTES:,}", field=f"batch[{i}]")
            call = _decode(_call, bytes(raw), f"batch[{i}]")
            if call.sentAt is None:
                call.sentAt = envelope.sentAt
            calls.append(call)
        return calls, envelope.writeKey
    if len(body) > MAX_CALL_BYTES:
        raise IngestError(f"call of {len(body):,} bytes; the limit is {MAX_CALL_BYTES:,}", field="body")
    call = _decode(_call, body, "body")
    call.type = call.type or kind
    return [call], call.writeKey


def to_messages(calls: list[Call], received_at: float) -> list[tuple[str, Message, str | None]]:
    """Turn validated calls into ``(customer_id, message, message_id)``.

    Raises:
        IngestError: the first call that cannot be applied; no message is returned then.
    """
    out = []
    for i, call in enumerate(calls):
        where = f"batch[{i}]" if len(calls) > 1 else ""
        out.append((_customer(call, where), _message(call, received_at, where), call.messageId))
    return out


def corrected_timestamp(call: Call, received_at: float) -> float:
    """``receivedAt - (sentAt - originalTimestamp)`` when the client sent both, else its
    ``timestamp``, else ``receivedAt`` (seconds since the epoch)."""
    sent, original = _time(call.sentAt), _time(call.originalTimestamp)
    if sent is not None and original is not None:
        return received_at - (sent - original)
    stamped = _time(call.timestamp)
    return stamped if stamped is not None else received_at


def _message(call: Call, received_at: float, where: str) -> Message:
    kind = call.type
    if kind == "track":
        if not call.event:
            raise IngestError("a track call needs an event name", field=_at(where, "event"))
        props = _flatten(call.properties or {})
        receipt = _receipt(call.event, props)
        if receipt is not None:
            return receipt
        props["timestamp"] = corrected_timestamp(call, received_at)
        return Event(call.event, props)
    if kind == "identify":
        traits = _flatten(call.traits or {})
        reachable = {ch: True for ch, trait in (("email", "email"), ("sms", "phone")) if traits.get(trait)}
        return Identified(traits, reachable)
    if kind in ("page", "screen"):
        props = _flatten(call.properties or {})
        if call.name is not None:
            props["name"] = call.name
        props["timestamp"] = corrected_timestamp(call, received_at)
        return Event("page_view" if kind == "page" else "screen", props)
    if kind == "group":
        if call.groupId is None:
            raise IngestError("a group call needs a groupId", field=_at(where, "groupId"))
        traits = {f"group.{k}": v for k, v in _flatten(call.traits or {}).items()}
        traits["group_id"] = str(call.groupId)
        return Identified(traits)
    raise IngestError(f"unknown type {kind!r}; expected one of {list(KINDS)}", field=_at(where, "type"))


def _receipt(event: str, props: Properties) -> DeliveryReceipt | None:
    known = RECEIPTS.get(event)
    journey, entry = props.get("journey"), props.get("entry")
    if known is None or not isinstance(journey, str) or not isinstance(entry, int):
        return None
    channel = known[0] or props.get("channel")
    if not isinstance(channel, str):
        return None
    message = props.get("message")
    return DeliveryReceipt(journey, entry, channel, message if isinstance(message, str) else "", known[1])


def _customer(call: Call, where: str) -> str:
    identity = call.userId if call.userId not in (None, "") else call.anonymousId
    if identity in (None, ""):
        raise IngestError("userId or anonymousId is required", field=_at(where, "userId"))
    return str(identity)


def _flatten(values: dict[str, Any], prefix: str = "") -> Properties:
    flat: dict[str, Scalar] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        elif value is None or isinstance(value, (str, int, float, bool)):
            flat[name] = value
    return flat


def _time(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise IngestError(f"{text!r} is not an ISO 8601 time", field="timestamp") from None


def _decode(decoder: msgspec.json.Decoder[Any], body: bytes, field: str) -> Any:
    try:
        return decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise IngestError(f"malformed: {exc}", field=field) from None


def _at(where: str, field: str) -> str:
    return f"{where}.{field}" if where else field


class SeenMessageIds:
    """Message ids applied within ``window`` seconds, so a client's retry is applied once."""

    def __init__(self, window: float = 86_400.0) -> None:
        self.window = window
        self._seen: dict[str, float] = {}

    def seen(self, message_id: str | None) -> bool:
        """Whether this id was already applied within the window (None ids never were)."""
        return message_id is not None and message_id in self._seen

    def restore(self, seen: dict[str, float]) -> None:
        """Take over ids recovered from a snapshot and the log (id -> when applied)."""
        self._seen.update(sorted(seen.items(), key=lambda item: item[1]))

    def recent(self, now: float) -> dict[str, float]:
        """The ids applied within the window before ``now`` (what a snapshot keeps)."""
        return {k: t for k, t in self._seen.items() if t >= now - self.window}

    def remember(self, message_ids: list[str], now: float) -> None:
        """Record ids that were just applied (durably), forgetting those older than the window."""
        if self._seen and next(iter(self._seen.values())) < now - self.window:
            self._seen = {k: t for k, t in self._seen.items() if t >= now - self.window}
        for message_id in message_ids:
            self._seen[message_id] = now
