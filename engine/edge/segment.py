"""The Segment HTTP Tracking API at the edge: payloads in, actor messages out (REFERENCE.md s6).

Every call is validated whole before anything is applied: a bad call raises ``IngestError``
naming the field and the reason, and the HTTP layer answers 400. Calls become messages for
their ``userId``, else their ``anonymousId`` (the runtime routes a merged id to whom it merged
into):

    track     -> Event(event, properties); Segment's semantic delivery events ("Email Opened",
                 "Push Notification Tapped", ...) with the send's journey and entry in their
                 properties become DeliveryReceipt, and reach the journey that sent
    identify  -> Identified(traits, reachable: email and phone traits, and a push token
                 (context.device.token or a push_token trait) make those channels reachable;
                 consent: <channel>_consent traits, true or false; context.timezone kept as the
                 timezone trait);
                 with both ids, Merged(anonymousId) for the userId first: the visitor's history
                 joins the known profile (its message id is the call's + ":merge", so a retried
                 identify merges once and the identify itself still dedupes by its own id)
    alias     -> Merged(previousId) for the userId (both required)
    page      -> Event("page_view", properties + name);  screen -> Event("screen", ...)
    group     -> Identified(traits={"group_id": ..., "group.<trait>": ...})

A provider's webhook reports on sends by their idempotency keys: ``engine.edge.receipts``, with
the limits and error naming of this module.

Properties are flattened to scalars (``{"product": {"price": 3}}`` -> ``product.price``).
The timestamp is corrected as the spec says, ``timestamp = receivedAt - (sentAt -
originalTimestamp)``, and kept as the event's ``timestamp`` property (seconds since the epoch).

Validation is total: whatever the engine will later encode in its log and snapshots, compare in
a condition or add up (revenue) is checked here, so that nothing a client sends can fail inside
the engine, where one failure would stop every journey of every customer. The rule is one
domain, stated once (``MAX_*`` below) and enforced where the value is read:

    ids (userId, anonymousId, previousId, groupId, messageId, writeKey)
                            strings of at most MAX_ID_CHARS characters (no numbers, no objects)
    event, page and property names
                            at most MAX_NAME_CHARS characters
    numbers                 within +-MAX_NUMBER (2**53 - 1: the integers a double, and so the
                            core's arithmetic and every JSON client, carry exactly; MessagePack's
                            64 bits would overflow on the first sum beyond them)
    objects in properties and traits
                            nested at most MAX_DEPTH deep; arrays are dropped unread
    JSON nesting            anywhere in the body: the decoder's recursion guard, answered 400
    timestamps              ISO 8601 (UTC when no offset is given); a corrected timestamp
                            before 2000 or more than a day ahead of its arrival is clamped to
                            the arrival time (a client's clock, not the event, is wrong)
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any

import msgspec

from actors.errors import IngestError
from actors.messages import (
    CHANNELS,
    DeliveryReceipt,
    Event,
    Identified,
    Merged,
    Message,
    Properties,
    Scalar,
    Submission,
)
from actors.validation import error_path

KINDS = ("identify", "track", "page", "screen", "group", "alias")
MAX_CALL_BYTES = 32 * 1024  # REFERENCE s6: 32 KB per call and per event
MAX_BATCH_BYTES = 500 * 1024  # and 500 KB per batch
MAX_BATCH_EVENTS = 2_500
MAX_ID_CHARS = 256  # an id becomes a key of the engine's tables and of every idempotency key
MAX_NAME_CHARS = 256
MAX_DEPTH = 8  # levels of objects within properties and traits
MAX_NUMBER = 2**53 - 1
EARLIEST = 946_684_800.0  # 2000-01-01T00:00:00Z: a timestamp before it is a broken clock
AHEAD = 86_400.0  # a corrected timestamp further ahead of its arrival is a broken clock too

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


Id = Annotated[str, msgspec.Meta(max_length=MAX_ID_CHARS)]
Name = Annotated[str, msgspec.Meta(max_length=MAX_NAME_CHARS)]
Stamp = Annotated[str, msgspec.Meta(max_length=64)]


class Device(msgspec.Struct, omit_defaults=True, gc=False):
    """``context.device``: only what the engine reads (the rest is ignored)."""

    token: Id | None = None  # a mobile library's push token


class Context(msgspec.Struct, omit_defaults=True, gc=False):
    """``context``: only what the engine reads (the rest is ignored)."""

    device: Device | None = None
    timezone: Name | None = None  # an IANA name, as mobile libraries send it


class Call(msgspec.Struct, omit_defaults=True, gc=False):
    """One Segment call, as lenient as the spec (unknown fields are ignored), and as strict as
    the engine needs (the module's docstring).

    Not tracked by the garbage collector (it holds no cycles): a batch decodes hundreds at once.
    """

    type: Name | None = None
    userId: Id | None = None  # noqa: N815 (Segment's names)
    anonymousId: Id | None = None  # noqa: N815
    messageId: Id | None = None  # noqa: N815
    event: Name | None = None
    name: Name | None = None
    properties: dict[str, Any] | None = None
    traits: dict[str, Any] | None = None
    groupId: Id | None = None  # noqa: N815
    previousId: Id | None = None  # noqa: N815
    timestamp: Stamp | None = None
    sentAt: Stamp | None = None  # noqa: N815
    originalTimestamp: Stamp | None = None  # noqa: N815
    writeKey: Id | None = None  # noqa: N815
    context: Context | None = None


class BatchBody(msgspec.Struct):
    """A ``/v1/batch`` body."""

    batch: list[Call]
    writeKey: Id | None = None  # noqa: N815
    sentAt: Stamp | None = None  # noqa: N815


class BatchSizes(msgspec.Struct):
    """A ``/v1/batch`` body's calls left as raw JSON: how many there are and how big each is."""

    batch: list[msgspec.Raw]


_call = msgspec.json.Decoder(Call)
_batch = msgspec.json.Decoder(BatchBody)
_sizes = msgspec.json.Decoder(BatchSizes)
_KEPT = frozenset({str, bool, type(None)})  # scalars carried as they are; numbers are checked
_ADDRESSES = (("email", "email"), ("sms", "phone"), ("push", "push_token"))  # channel, trait


def parse(kind: str, body: bytes) -> tuple[list[Call], str | None]:
    """Decode one request body: its calls and the write key it carries (if any).

    A batch's size is bounded where the body is read (``engine.edge.http``, ``MAX_BATCH_BYTES``);
    the limits of its calls are checked here: how many, and each one's size (``MAX_CALL_BYTES``,
    a call sent alone too).

    Raises:
        IngestError: malformed JSON, a wrong field type, or a limit of the calls exceeded.
    """
    if kind == "batch":
        # a first pass leaves each call as raw JSON (cheap: no objects), for the limits per call;
        # the second decodes the whole batch in one call instead of one call per event
        raw = decode_body(_sizes, body, "body").batch
        if len(raw) > MAX_BATCH_EVENTS:
            raise IngestError(f"{len(raw):,} events; the limit is {MAX_BATCH_EVENTS:,}", field="batch")
        if raw and max(map(len, raw)) > MAX_CALL_BYTES:
            i = next(i for i, call in enumerate(raw) if len(call) > MAX_CALL_BYTES)
            raise IngestError(f"{len(raw[i]):,} bytes; the limit is {MAX_CALL_BYTES:,}", field=f"batch[{i}]")
        envelope = decode_body(_batch, body, "body")
        if envelope.sentAt:
            _sent_time(envelope.sentAt)  # checked here, so a bad one is named as the envelope's
            for call in envelope.batch:
                if call.sentAt is None:
                    call.sentAt = envelope.sentAt
        return envelope.batch, envelope.writeKey
    if len(body) > MAX_CALL_BYTES:
        raise IngestError(f"call of {len(body):,} bytes; the limit is {MAX_CALL_BYTES:,}", field="body")
    call = decode_body(_call, body, "body")
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
            out.append(Submission(customer, _message(call, received_at), call.messageId))
        except IngestError as exc:
            if len(calls) == 1:
                raise
            raise within(exc, f"batch[{i}]") from None
    return out


def corrected_timestamp(call: Call, received_at: float) -> float:
    """``receivedAt - (sentAt - originalTimestamp)`` when the client sent both, else its
    ``timestamp``, else ``receivedAt`` (seconds since the epoch); ``receivedAt`` too when the
    result is before 2000 or more than a day ahead of ``received_at`` (a broken client clock).

    Raises:
        IngestError: one of them is not an ISO 8601 time.
    """
    sent = _sent_time(call.sentAt) if call.sentAt else None
    original = iso_time(call.originalTimestamp, "originalTimestamp") if call.originalTimestamp else None
    if sent is not None and original is not None:
        stamp = received_at - (sent - original)
    elif call.timestamp:
        stamp = iso_time(call.timestamp, "timestamp")
    else:
        stamp = received_at
    return stamp if EARLIEST <= stamp <= received_at + AHEAD else received_at


def _message(call: Call, received_at: float) -> Message:
    kind = call.type
    if kind == "track":  # the common case first
        event = call.event
        if not event:
            raise IngestError("a track call needs an event name", field="event")
        props = _flatten(call.properties, "properties") if call.properties else {}
        if event in RECEIPTS:
            receipt = _receipt(event, props)
            if receipt is not None:
                return receipt
        props["timestamp"] = corrected_timestamp(call, received_at)
        return Event(event, props)
    if kind == "identify":
        return _identified(call)
    if kind in ("page", "screen"):
        props = _flatten(call.properties, "properties") if call.properties else {}
        if call.name is not None:
            props["name"] = call.name
        props["timestamp"] = corrected_timestamp(call, received_at)
        return Event("page_view" if kind == "page" else "screen", props)
    if kind == "group":
        if call.groupId is None:
            raise IngestError("a group call needs a groupId", field="groupId")
        traits = {f"group.{k}": v for k, v in _flatten(call.traits or {}, "traits").items()}
        traits["group_id"] = call.groupId
        return Identified(traits)
    raise IngestError(f"unknown type {kind!r}; expected one of {list(KINDS)}", field="type")


def _identified(call: Call) -> Identified:
    """An identify's facts: traits; reachability from an address (``email``, ``phone``) or a push
    token (``context.device.token``, kept as the ``push_token`` trait, or that trait itself);
    consent from ``<channel>_consent`` traits that are true or false; the time zone from
    ``context.timezone``, kept as the ``timezone`` trait."""
    traits = dict(_flatten(call.traits, "traits")) if call.traits else {}
    context = call.context
    if context is not None:
        if context.device is not None and context.device.token:
            traits["push_token"] = context.device.token
        if context.timezone:
            traits["timezone"] = context.timezone
    reachable = {ch: True for ch, trait in _ADDRESSES if traits.get(trait)}
    consent = {ch: granted for ch in CHANNELS if type(granted := traits.get(f"{ch}_consent")) is bool}
    return Identified(traits, reachable, consent)


def _alias(call: Call) -> Submission:
    target = _identity(call.userId, "userId", "an alias call needs the userId to merge into")
    source = _identity(call.previousId, "previousId", "an alias call needs the previousId to merge")
    return Submission(target, Merged(source), call.messageId)


def _merge_visitor(call: Call, customer: str, out: list[Submission]) -> None:
    """An identify with both ids: the anonymous visitor's history joins the known customer."""
    visitor = call.anonymousId
    if visitor and visitor != customer:
        merge_id = None if call.messageId is None else call.messageId + ":merge"
        out.append(Submission(customer, Merged(visitor), merge_id))


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
    identity = call.userId or call.anonymousId
    if not identity:
        raise IngestError("userId or anonymousId is required", field="userId")
    return identity


def _identity(value: str | None, field: str, missing: str) -> str:
    if not value:
        raise IngestError(missing, field=field)
    return value


def within(exc: IngestError, item: str) -> IngestError:
    """The same error, its field named within the batch item that failed."""
    return IngestError(str(exc).removeprefix(f"{exc.field}: "), field=f"{item}.{exc.field}")


def _flatten(values: dict[str, Any], field: str) -> Properties:
    """A call's ``properties`` or ``traits`` (``field``) as the engine keeps them: nested objects
    as dotted names, arrays dropped.

    Raises:
        IngestError: the first name or value the engine cannot carry (module docstring), named
            as ``properties.product.price``.
    """
    for key, value in values.items():  # the common case: flat, and checked in this one pass
        kind = type(value)
        if len(key) > MAX_NAME_CHARS:
            break
        if kind in _KEPT or ((kind is int or kind is float) and -MAX_NUMBER <= value <= MAX_NUMBER):
            continue
        break
    else:
        return values  # already flat (most are): the decoded dict itself, no copy
    return _flatten_into({}, values, "", field, 1)


def _flatten_into(flat: dict[str, Scalar], values: dict[str, Any], prefix: str, field: str,
                  depth: int) -> Properties:
    for key, value in values.items():
        kind = type(value)
        if len(key) > MAX_NAME_CHARS:
            raise IngestError(f"a name longer than {MAX_NAME_CHARS} characters",
                              field=f"{field}.{prefix}{key[:40]}...")
        if kind in _KEPT or ((kind is int or kind is float) and -MAX_NUMBER <= value <= MAX_NUMBER):
            flat[prefix + key] = value
        elif kind is dict and depth <= MAX_DEPTH:
            _flatten_into(flat, value, f"{prefix}{key}.", field, depth + 1)
        elif kind is not list:  # (arrays are dropped)
            raise _unfit(value, f"{field}.{prefix}{key}")
    return flat


def _unfit(value: Any, field: str) -> IngestError:
    """The error for a value the engine cannot carry: a number out of range, or an object too deep."""
    if type(value) is dict:
        return IngestError(f"objects nested deeper than {MAX_DEPTH} levels", field=field)
    shown = f"{value:.6g}" if type(value) is float else f"an integer of {value.bit_length()} bits"
    return IngestError(f"{shown} is beyond +-{MAX_NUMBER:,}, the numbers the engine carries exactly",
                       field=field)


@lru_cache(maxsize=256)  # the calls of a batch share its sentAt: parsed once
def _sent_time(text: str) -> float:
    return iso_time(text, "sentAt")


def iso_time(text: str, field: str) -> float:
    try:
        moment = datetime.fromisoformat(text)  # Python 3.11 reads "Z" too
        if moment.tzinfo is None:  # Segment's times are UTC: never the server's local time
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    except (ValueError, OverflowError):
        raise IngestError(f"{text!r} is not an ISO 8601 time", field=field) from None


def decode_body(decoder: msgspec.json.Decoder[Any], body: bytes, field: str) -> Any:
    try:
        return decoder.decode(body)
    except msgspec.DecodeError as exc:
        at = error_path(exc).removeprefix(".")  # a bad value names its field: ``batch[3].userId``
        raise IngestError(f"malformed: {exc}", field=at or field) from None
    except RecursionError:  # (the decoder's guard: nesting about a thousand deep)
        raise IngestError("JSON nested too deep", field=field) from None
