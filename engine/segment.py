"""The Segment HTTP Tracking API at the edge: payloads in, actor messages out (REFERENCE.md s6).

Every call is validated whole before anything is applied: a bad call raises ``IngestError``
naming the field and the reason, and the HTTP layer answers 400. Calls become messages for
their ``userId``, else their ``anonymousId`` (the runtime routes a merged id to whom it merged
into):

    track     -> Event(event, properties); Segment's semantic delivery events ("Email Opened",
                 "Push Notification Tapped", ...) with the send's journey and entry in their
                 properties become DeliveryReceipt, and reach the journey that sent
    identify  -> Identified(traits, reachable: email and phone traits make those channels reachable);
                 with both ids, Merged(anonymousId) for the userId first: the visitor's history
                 joins the known profile (its message id is the call's + ":merge", so a retried
                 identify merges once and the identify itself still dedupes by its own id)
    alias     -> Merged(previousId) for the userId (both required)
    page      -> Event("page_view", properties + name);  screen -> Event("screen", ...)
    group     -> Identified(traits={"group_id": ..., "group.<trait>": ...})

A provider's webhook reports on sends by their idempotency keys (``parse_receipts``,
``receipts_to_messages``): each receipt becomes the DeliveryReceipt of that send, for the
customer the key names.

Properties are flattened to scalars (``{"product": {"price": 3}}`` -> ``product.price``).
The timestamp is corrected as the spec says, ``timestamp = receivedAt - (sentAt -
originalTimestamp)``, and kept as the event's ``timestamp`` property (seconds since the epoch).
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import Any

import msgspec

from actors.errors import IngestError
from actors.journey import Program, SendStep
from actors.messages import (
    CHANNELS,
    RECEIPT_STATUSES,
    DeliveryReceipt,
    Event,
    Identified,
    Merged,
    Message,
    Properties,
    Scalar,
    parse_send_key,
)

KINDS = ("identify", "track", "page", "screen", "group", "alias")
MAX_CALL_BYTES = 32 * 1024  # REFERENCE s6: 32 KB per call and per event
MAX_BATCH_BYTES = 500 * 1024  # and 500 KB per batch
MAX_BATCH_EVENTS = 2_500
Submission = tuple[str, Message, str | None]  # (customer_id, message, message_id)

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


class Call(msgspec.Struct, omit_defaults=True, gc=False):
    """One Segment call, as lenient as the spec (unknown fields are ignored).

    Not tracked by the garbage collector (it holds no cycles): a batch decodes hundreds at once.
    """

    type: str | None = None
    userId: str | int | None = None  # noqa: N815 (Segment's names)
    anonymousId: str | int | None = None  # noqa: N815
    messageId: str | None = None  # noqa: N815
    event: str | None = None
    name: str | None = None
    properties: dict[str, Any] | None = None
    traits: dict[str, Any] | None = None
    groupId: str | int | None = None  # noqa: N815
    previousId: str | int | None = None  # noqa: N815
    timestamp: str | None = None
    sentAt: str | None = None  # noqa: N815
    originalTimestamp: str | None = None  # noqa: N815
    writeKey: str | None = None  # noqa: N815


class BatchBody(msgspec.Struct):
    """A ``/v1/batch`` body."""

    batch: list[Call]
    writeKey: str | None = None  # noqa: N815
    sentAt: str | None = None  # noqa: N815


class BatchSizes(msgspec.Struct):
    """A ``/v1/batch`` body's calls left as raw JSON: how many there are and how big each is."""

    batch: list[msgspec.Raw]


class ProviderReceipt(msgspec.Struct, gc=False):
    """What a provider reports about one send: its idempotency key and status (and the
    provider's own id for this report, if it has one)."""

    key: str | None = None
    status: str | None = None
    messageId: str | None = None  # noqa: N815


class ReceiptsBody(msgspec.Struct):
    """A ``/v1/receipts/{channel}`` body: ``{"receipts": [...]}``, or one receipt's fields."""

    receipts: list[ProviderReceipt] | None = None
    key: str | None = None
    status: str | None = None
    messageId: str | None = None  # noqa: N815
    writeKey: str | None = None  # noqa: N815


_call = msgspec.json.Decoder(Call)
_batch = msgspec.json.Decoder(BatchBody)
_sizes = msgspec.json.Decoder(BatchSizes)
_receipts = msgspec.json.Decoder(ReceiptsBody)
_ITEM_AT = re.compile(r"at `\$\.(batch\[\d+\]|receipts\[\d+\])")  # msgspec's path to a bad item
# a send's idempotency key, customer:journey:entry:step:n (actors/actor.py); read from the right,
# since a customer id may hold ':'
_SCALARS = frozenset({str, int, float, bool, type(None)})  # exactly what msgspec decodes JSON to


def parse(kind: str, body: bytes) -> tuple[list[Call], str | None]:
    """Decode one request body: its calls and the write key it carries (if any).

    Raises:
        IngestError: malformed JSON, a wrong field type, or a size limit exceeded.
    """
    if kind == "batch":
        if len(body) > MAX_BATCH_BYTES:
            raise IngestError(f"batch of {len(body):,} bytes; the limit is {MAX_BATCH_BYTES:,}", field="body")
        # a first pass leaves each call as raw JSON (cheap: no objects), for the limits per call;
        # the second decodes the whole batch in one call instead of one call per event
        raw = _decode(_sizes, body, "body").batch
        if len(raw) > MAX_BATCH_EVENTS:
            raise IngestError(f"{len(raw):,} events; the limit is {MAX_BATCH_EVENTS:,}", field="batch")
        if raw and max(map(len, raw)) > MAX_CALL_BYTES:
            i = next(i for i, call in enumerate(raw) if len(call) > MAX_CALL_BYTES)
            raise IngestError(f"{len(raw[i]):,} bytes; the limit is {MAX_CALL_BYTES:,}", field=f"batch[{i}]")
        envelope = _decode(_batch, body, "body")
        if envelope.sentAt:
            _sent_time(envelope.sentAt)  # checked here, so a bad one is named as the envelope's
            for call in envelope.batch:
                if call.sentAt is None:
                    call.sentAt = envelope.sentAt
        return envelope.batch, envelope.writeKey
    if len(body) > MAX_CALL_BYTES:
        raise IngestError(f"call of {len(body):,} bytes; the limit is {MAX_CALL_BYTES:,}", field="body")
    call = _decode(_call, body, "body")
    call.type = call.type or kind
    return [call], call.writeKey


def to_messages(calls: list[Call], received_at: float) -> list[Submission]:
    """Turn validated calls into ``(customer_id, message, message_id)``.

    Raises:
        IngestError: the first call that cannot be applied; no message is returned then.
    """
    out: list[Submission] = []
    for i, call in enumerate(calls):
        try:  # (free in Python 3.11 until something raises)
            kind = call.type
            if kind == "alias":
                out.append(_alias(call))
                continue
            customer = _customer(call)
            if kind == "identify" and call.userId is not None and call.anonymousId is not None:
                _merge_visitor(call, customer, out)
            out.append((customer, _message(call, received_at), call.messageId))
        except IngestError as exc:
            if len(calls) == 1:
                raise
            raise _within(exc, f"batch[{i}]") from None
    return out


def parse_receipts(body: bytes) -> ReceiptsBody:
    """Decode a provider's receipts webhook body (the batch limits apply).

    Raises:
        IngestError: malformed JSON, a wrong field type, or a size limit exceeded.
    """
    if len(body) > MAX_BATCH_BYTES:
        raise IngestError(f"{len(body):,} bytes; the limit is {MAX_BATCH_BYTES:,}", field="body")
    decoded: ReceiptsBody = _decode(_receipts, body, "body")
    if decoded.receipts is not None and len(decoded.receipts) > MAX_BATCH_EVENTS:
        count = len(decoded.receipts)
        raise IngestError(f"{count:,} receipts; the limit is {MAX_BATCH_EVENTS:,}", field="receipts")
    return decoded


def receipts_to_messages(channel: str, body: ReceiptsBody, program: Program) -> list[Submission]:
    """Turn a provider's receipts for ``channel`` into ``(customer_id, DeliveryReceipt, id)``.

    The id is ``receipt:<channel>:<messageId>`` when the provider gave one, else
    ``receipt:<key>:<status>``: a provider's retry of the same report applies once.

    Raises:
        IngestError: an unknown channel, or the first receipt with an unknown status or a key
            that is no send step of ``program`` (``receipts[i].key``); nothing is returned then.
    """
    if channel not in CHANNELS:
        raise IngestError(f"unknown channel {channel!r}; expected one of {list(CHANNELS)}", field="channel")
    if body.receipts is None:  # one receipt, its fields at the top
        return [_delivery(channel, ProviderReceipt(body.key, body.status, body.messageId), program)]
    out: list[Submission] = []
    for i, receipt in enumerate(body.receipts):
        try:
            out.append(_delivery(channel, receipt, program))
        except IngestError as exc:
            raise _within(exc, f"receipts[{i}]") from None
    return out


def corrected_timestamp(call: Call, received_at: float) -> float:
    """``receivedAt - (sentAt - originalTimestamp)`` when the client sent both, else its
    ``timestamp``, else ``receivedAt`` (seconds since the epoch).

    Raises:
        IngestError: one of them is not an ISO 8601 time.
    """
    sent = _sent_time(call.sentAt) if call.sentAt else None
    if call.originalTimestamp:
        original = _time(call.originalTimestamp, "originalTimestamp")
        if sent is not None:
            return received_at - (sent - original)
    return _time(call.timestamp, "timestamp") if call.timestamp else received_at


def _message(call: Call, received_at: float) -> Message:
    kind = call.type
    if kind == "track":  # the common case first
        event = call.event
        if not event:
            raise IngestError("a track call needs an event name", field="event")
        props = _flatten(call.properties) if call.properties else {}
        if event in RECEIPTS:
            receipt = _receipt(event, props)
            if receipt is not None:
                return receipt
        props["timestamp"] = corrected_timestamp(call, received_at)
        return Event(event, props)
    if kind == "identify":
        traits = _flatten(call.traits) if call.traits else {}
        reachable = {ch: True for ch, trait in (("email", "email"), ("sms", "phone")) if traits.get(trait)}
        return Identified(traits, reachable)
    if kind in ("page", "screen"):
        props = _flatten(call.properties) if call.properties else {}
        if call.name is not None:
            props["name"] = call.name
        props["timestamp"] = corrected_timestamp(call, received_at)
        return Event("page_view" if kind == "page" else "screen", props)
    if kind == "group":
        if call.groupId is None:
            raise IngestError("a group call needs a groupId", field="groupId")
        traits = {f"group.{k}": v for k, v in _flatten(call.traits or {}).items()}
        traits["group_id"] = str(call.groupId)
        return Identified(traits)
    raise IngestError(f"unknown type {kind!r}; expected one of {list(KINDS)}", field="type")


def _alias(call: Call) -> Submission:
    target = _identity(call.userId, "userId", "an alias call needs the userId to merge into")
    source = _identity(call.previousId, "previousId", "an alias call needs the previousId to merge")
    return target, Merged(source), call.messageId


def _merge_visitor(call: Call, customer: str, out: list[Submission]) -> None:
    """An identify with both ids: the anonymous visitor's history joins the known customer."""
    visitor = call.anonymousId if type(call.anonymousId) is str else str(call.anonymousId)
    if visitor and visitor != customer:
        merge_id = None if call.messageId is None else call.messageId + ":merge"
        out.append((customer, Merged(visitor), merge_id))


def _delivery(channel: str, receipt: ProviderReceipt, program: Program) -> Submission:
    status, key = receipt.status, receipt.key
    if status not in RECEIPT_STATUSES:
        raise IngestError(f"unknown status {status!r}; expected one of {list(RECEIPT_STATUSES)}",
                          field="status")
    send = parse_send_key(key) if key else None
    if send is None:
        raise IngestError(f"{key!r} is not a send's idempotency key (customer:journey:entry:step:n)",
                          field="key")
    customer, journey_id, entry, step_id, _ = send
    journey = program.by_id.get(journey_id)
    step = journey.steps.get(step_id) if journey is not None else None
    if not isinstance(step, SendStep):
        raise IngestError(f"journey {journey_id!r} has no send step {step_id!r}", field="key")
    if channel not in step.channels:
        raise IngestError(f"step {step_id!r} sends on {list(step.channels)}, not {channel!r}", field="key")
    message_id = f"receipt:{channel}:{receipt.messageId}" if receipt.messageId else f"receipt:{key}:{status}"
    return customer, DeliveryReceipt(journey_id, entry, channel, step.message, status), message_id


def _receipt(event: str, props: Properties) -> DeliveryReceipt | None:
    known = RECEIPTS[event]
    journey, entry = props.get("journey"), props.get("entry")
    if not isinstance(journey, str) or not isinstance(entry, int):
        return None
    channel = known[0] or props.get("channel")
    if not isinstance(channel, str):
        return None
    message = props.get("message")
    return DeliveryReceipt(journey, entry, channel, message if isinstance(message, str) else "", known[1])


def _customer(call: Call) -> str:
    identity = call.userId
    if identity is None or identity == "":
        identity = call.anonymousId
        if identity is None or identity == "":
            raise IngestError("userId or anonymousId is required", field="userId")
    return identity if type(identity) is str else str(identity)


def _identity(value: str | int | None, field: str, missing: str) -> str:
    if value is None or value == "":
        raise IngestError(missing, field=field)
    return value if type(value) is str else str(value)


def _within(exc: IngestError, item: str) -> IngestError:
    """The same error, its field named within the batch item that failed."""
    return IngestError(str(exc).removeprefix(f"{exc.field}: "), field=f"{item}.{exc.field}")


def _flatten(values: dict[str, Any]) -> Properties:
    """Nested objects as dotted names; values other than scalars and objects are dropped."""
    for value in values.values():
        if type(value) not in _SCALARS:
            return _flatten_into({}, values, "")
    return values  # already flat (most are): the decoded dict itself, no copy


def _flatten_into(flat: dict[str, Scalar], values: dict[str, Any], prefix: str) -> Properties:
    for key, value in values.items():
        kind = type(value)
        if kind in _SCALARS:
            flat[prefix + key] = value
        elif kind is dict:
            _flatten_into(flat, value, f"{prefix}{key}.")
    return flat


@lru_cache(maxsize=256)  # the calls of a batch share its sentAt: parsed once
def _sent_time(text: str) -> float:
    return _time(text, "sentAt")


def _time(text: str, field: str) -> float:
    try:
        return datetime.fromisoformat(text).timestamp()  # Python 3.11 reads "Z" too
    except ValueError:
        raise IngestError(f"{text!r} is not an ISO 8601 time", field=field) from None


def _decode(decoder: msgspec.json.Decoder[Any], body: bytes, field: str) -> Any:
    try:
        return decoder.decode(body)
    except msgspec.DecodeError as exc:
        in_batch = _ITEM_AT.search(str(exc))  # a bad value inside one item names that item
        raise IngestError(f"malformed: {exc}", field=in_batch.group(1) if in_batch else field) from None
