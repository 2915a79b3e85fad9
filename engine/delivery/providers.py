"""Channel providers behind the outbox: the engine's own mock, an HTTP provider, SMTP.

``MockProvider`` takes sends after a configurable latency, fails a configurable share of calls
(seeded), records each delivered send once per idempotency key (the latest ``record_limit``
keys: its memory is bounded), and can report synthetic receipts back to the engine: the
engine's test double, and a dry-run channel for users.

``HttpProvider`` posts each send as JSON with an ``Idempotency-Key`` header (httpx). 2xx is
success; 408, 429 and 5xx are retried (honouring ``Retry-After``); any other status is permanent.

``SmtpProvider`` sends email with smtplib in a worker thread; a 5xx reply is permanent. A
cancelled call stops waiting for its thread (which finishes on its own).

``MockSettings``, ``HttpSettings`` and ``SmtpSettings`` are one channel's table of a service
config file (``provider = "mock" | "http" | "smtp"``), validated by msgspec: what
``touchpoint serve`` builds each channel's provider from.
"""

from __future__ import annotations

import hashlib
import random
import smtplib
from collections import OrderedDict
from collections.abc import Callable
from email.message import EmailMessage
from typing import Annotated

import anyio
import httpx
import msgspec

from actors.errors import ProviderError
from actors.messages import CHANNELS, DeliveryReceipt, Send

# the channels a provider sends on: every channel but the agent desk's (those are escalations)
PROVIDER_CHANNELS = tuple(channel for channel in CHANNELS if channel != "agent")
Receipts = Callable[[str, DeliveryReceipt], None]
AddressOf = Callable[[str], str | None]  # a customer's address on a channel, or None


class MockProvider:
    """A provider double.

    It remembers the latest ``record_limit`` idempotency keys it delivered (``delivered``),
    forgetting the oldest beyond them (counted in ``dropped``), so it honours idempotency keys
    only within what it remembers: a send re-sent after its key was forgotten is delivered (and
    reported) again.

    Args:
        latency: seconds each call takes.
        failure_rate: share of calls that fail (retryably).
        seed: the failures' random seed.
        receipts: when given, called with ``(customer_id, DeliveryReceipt("delivered"))`` per
            delivered send, e.g. ``runtime.ingest_nowait``.
        record_limit: how many delivered keys to remember.

    Raises:
        ValueError: ``record_limit`` is negative.
    """

    def __init__(
        self,
        latency: float = 0.0,
        failure_rate: float = 0.0,
        seed: int | None = None,
        receipts: Receipts | None = None,
        record_limit: int = 100_000,
    ) -> None:
        if record_limit < 0:
            raise ValueError(f"record_limit={record_limit}: give 0 or more keys to remember")
        self.latency = latency
        self.failure_rate = failure_rate
        self.random = random.Random(seed)
        self.receipts = receipts
        self.record_limit = record_limit
        self.calls = 0
        self.delivered: OrderedDict[str, Send] = OrderedDict()  # by idempotency key, oldest first
        self.dropped = 0  # keys forgotten to stay within ``record_limit``

    async def send(self, send: Send) -> None:
        """Take one send, or fail as configured."""
        self.calls += 1
        if self.latency:
            await anyio.sleep(self.latency)
        if self.random.random() < self.failure_rate:
            raise ProviderError("mock provider: simulated failure")
        if send.key in self.delivered:
            return  # honours idempotency keys (those it remembers)
        self.delivered[send.key] = send
        if len(self.delivered) > self.record_limit:
            self.delivered.popitem(last=False)
            self.dropped += 1
        if self.receipts is not None:
            receipt = DeliveryReceipt(send.journey, send.entry, send.channel, send.message, "delivered")
            self.receipts(send.customer, receipt)


class HttpProvider:
    """Posts sends to an HTTP API.

    Args:
        url: the endpoint.
        client: the httpx client to use (its timeouts and limits apply).
        headers: extra headers (an API key, say).
        address_of: when given, the customer's address (a phone number, a device token) goes in
            the body as ``to``; a customer without one is a permanent failure.
    """

    def __init__(
        self,
        url: str,
        client: httpx.AsyncClient,
        headers: dict[str, str] | None = None,
        address_of: AddressOf | None = None,
    ) -> None:
        self.url = url
        self.client = client
        self.headers = headers or {}
        self.address_of = address_of

    async def send(self, send: Send) -> None:
        """POST the send; raise ``ProviderError`` (retryable or permanent) on failure."""
        body: dict[str, object] = {
            "customer": send.customer,
            "channel": send.channel,
            "message": send.message,
            "journey": send.journey,
            "entry": send.entry,
            "transactional": send.transactional,
        }
        if self.address_of is not None:
            to = self.address_of(send.customer)
            if not to:
                raise ProviderError(f"no {send.channel} address for {send.customer!r}", permanent=True)
            body["to"] = to
        headers = {**self.headers, "Idempotency-Key": send.key}
        try:
            response = await self.client.post(self.url, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise ProviderError(f"{self.url}: {type(exc).__name__}: {exc}") from None
        if response.is_success:
            return
        status = response.status_code
        retryable = status in (408, 429) or status >= 500
        raise ProviderError(
            f"{self.url}: HTTP {status}",
            retry_after=_seconds(response.headers.get("retry-after")),
            permanent=not retryable,
        )


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to the backoff


class SmtpProvider:
    """Sends email through an SMTP server with smtplib, in a worker thread.

    Args:
        host, port: the SMTP server.
        sender: the From address.
        address_of: the customer's email address (e.g. the profile's ``email`` trait), or None.
        render: the subject and body of a message (default: the message name, and a line saying
            which journey sent it).
    """

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        address_of: AddressOf,
        render: Callable[[Send], tuple[str, str]] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.address_of = address_of
        self.render = render or (lambda send: (send.message, f"{send.message} ({send.journey})\n"))

    async def send(self, send: Send) -> None:
        """Deliver one email; the idempotency key travels in ``X-Idempotency-Key`` and, hashed
        (a Message-ID allows no ':'), as the Message-ID."""
        to = self.address_of(send.customer)
        if not to:
            raise ProviderError(f"no email address for {send.customer!r}", permanent=True)
        message = EmailMessage()
        subject, body = self.render(send)
        message["From"], message["To"], message["Subject"] = self.sender, to, subject
        message["Message-ID"] = f"<{hashlib.sha256(send.key.encode()).hexdigest()[:32]}@touchpoint>"
        message["X-Idempotency-Key"] = send.key
        message.set_content(body)
        # cancellable (an outbox's stop): the thread is left to finish on its own, its outcome
        # unheard, so the email may still go out, and again after a restart, same Message-ID
        await anyio.to_thread.run_sync(self._deliver, message, abandon_on_cancel=True)

    def _deliver(self, message: EmailMessage) -> None:
        try:
            with smtplib.SMTP(self.host, self.port, timeout=10) as client:
                client.send_message(message)
        except smtplib.SMTPResponseException as exc:
            raise ProviderError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}",
                                permanent=500 <= exc.smtp_code < 600) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise ProviderError(f"SMTP: {type(exc).__name__}: {exc}") from None


# -- a channel's table in a service config file ------------------------------------------------

Rate = Annotated[float, msgspec.Meta(gt=0)]


class MockSettings(msgspec.Struct, tag="mock", tag_field="provider", forbid_unknown_fields=True):
    """``provider = "mock"``: records sends and reports them delivered (the default)."""

    latency: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    failure_rate: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.0
    seed: int | None = None
    rate: Rate | None = None  # sends per second on this channel (None: unlimited)
    record_limit: Annotated[int, msgspec.Meta(ge=0)] = 100_000  # delivered keys remembered


class HttpSettings(msgspec.Struct, tag="http", tag_field="provider", forbid_unknown_fields=True):
    """``provider = "http"``: ``HttpProvider`` posting to ``url``."""

    url: Annotated[str, msgspec.Meta(pattern="^https?://")]
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    timeout: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    address_trait: str | None = None  # the profile trait sent as ``to`` (e.g. "phone")
    rate: Rate | None = None


class SmtpSettings(msgspec.Struct, tag="smtp", tag_field="provider", forbid_unknown_fields=True):
    """``provider = "smtp"``: ``SmtpProvider`` through the server at ``host:port``."""

    host: str
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)]
    sender: str
    address_trait: str = "email"  # the profile trait holding the recipient's address
    rate: Rate | None = None


ProviderSettings = MockSettings | HttpSettings | SmtpSettings


def describe(settings: ProviderSettings) -> str:
    """One line for people, without secrets: ``smtp mail.example.com:587``, ``http https://...``."""
    if isinstance(settings, SmtpSettings):
        return f"smtp {settings.host}:{settings.port}"
    if isinstance(settings, HttpSettings):
        return f"http {settings.url}"
    return "mock"
