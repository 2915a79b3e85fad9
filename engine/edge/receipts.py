"""A provider's receipts webhook: ``POST /v1/receipts/{channel}`` bodies to actor messages.

A provider reports on sends by their idempotency keys (``customer:journey:entry:step:n``, the
``Idempotency-Key`` each send went out with): ``{"receipts": [{"key", "status", "messageId"}]}``
or one such object. Each receipt becomes the ``DeliveryReceipt`` of that send, for the customer
the key names, under the message id ``receipt:<channel>:<messageId>`` (or ``receipt:<key>:<status>``
when the provider gives none), so a provider's retry applies once. The limits and the error
naming are the Segment edge's (``engine.edge.segment``).
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from actors.errors import IngestError
from actors.journey import Program, SendStep
from actors.messages import CHANNELS, RECEIPT_STATUSES, DeliveryReceipt, Submission, parse_send_key
from engine.edge.segment import (
    MAX_BATCH_EVENTS,
    MAX_NUMBER,
    Id,
    Name,
    decode_body,
    within,
)

MAX_KEY_CHARS = 1_024  # a send's idempotency key: customer:journey:entry:step:n
Key = Annotated[str, msgspec.Meta(max_length=MAX_KEY_CHARS)]


class ProviderReceipt(msgspec.Struct, gc=False):
    """What a provider reports about one send: its idempotency key and status (and the
    provider's own id for this report, if it has one)."""

    key: Key | None = None
    status: Name | None = None
    messageId: Id | None = None  # noqa: N815


class ReceiptsBody(msgspec.Struct):
    """A ``/v1/receipts/{channel}`` body: ``{"receipts": [...]}``, or one receipt's fields."""

    receipts: list[ProviderReceipt] | None = None
    key: Key | None = None
    status: Name | None = None
    messageId: Id | None = None  # noqa: N815
    writeKey: Id | None = None  # noqa: N815


_receipts = msgspec.json.Decoder(ReceiptsBody)


def parse_receipts(body: bytes) -> ReceiptsBody:
    """Decode a provider's receipts webhook body: at most ``MAX_BATCH_EVENTS`` receipts (its size
    is bounded where it is read: ``engine.edge.http``, ``MAX_BATCH_BYTES``).

    Raises:
        IngestError: malformed JSON, a wrong field type, or too many receipts.
    """
    decoded: ReceiptsBody = decode_body(_receipts, body, "body")
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
            raise within(exc, f"receipts[{i}]") from None
    return out


def _delivery(channel: str, receipt: ProviderReceipt, program: Program) -> Submission:
    status, key = receipt.status, receipt.key
    if status not in RECEIPT_STATUSES:
        raise IngestError(f"unknown status {status!r}; expected one of {list(RECEIPT_STATUSES)}",
                          field="status")
    send = parse_send_key(key) if key else None
    if send is None:
        raise IngestError(f"{key!r} is not a send's idempotency key (customer:journey:entry:step:n)",
                          field="key")
    customer, journey_id, entry, step_id, n = send
    if max(entry, n) > MAX_NUMBER:
        raise IngestError(f"{key!r}: entry or send number beyond {MAX_NUMBER:,}", field="key")
    journey = program.by_id.get(journey_id)
    step = journey.steps.get(step_id) if journey is not None else None
    if not isinstance(step, SendStep):
        raise IngestError(f"journey {journey_id!r} has no send step {step_id!r}", field="key")
    if channel not in step.channels:
        raise IngestError(f"step {step_id!r} sends on {list(step.channels)}, not {channel!r}", field="key")
    message_id = f"receipt:{channel}:{receipt.messageId}" if receipt.messageId else f"receipt:{key}:{status}"
    return Submission(customer, DeliveryReceipt(journey_id, entry, channel, step.message, status), message_id)
