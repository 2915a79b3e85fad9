"""The HTTP edge: Segment-compatible ingestion served by Starlette (hypercorn, trio worker).

    POST /v1/identify | track | page | screen | group | alias | batch
                                  write key in the body or as HTTP Basic user; an identify with
                                  userId and anonymousId, or an alias, merges the other id's
                                  history into the userId's profile (engine/edge/segment.py)
    POST /v1/receipts/{channel}   a provider's webhook for delivery receipts, authenticated
                                  the same way: ``{"receipts": [{"key", "status", "messageId"}]}``
                                  or one ``{"key", "status"}``; see below
    GET  /v1/profiles/{userId}    traits, consent, engagement, timeline (sends made and
                                  suppressed, with reasons), journey states and next timers;
                                  an id merged into another answers with that profile, whose
                                  ``customer_id`` says which
    GET  /v1/journeys             per journey: entrants, conversions, lift, sends, suppressions
    GET  /v1/program              the whole program's lift against the global holdout
    GET  /v1/attribution          per journey: the conversion and null paths, every model's credit
    GET  /v1/dead-letters         sends given up on after the last try, with the error
    GET  /v1/desk, /v1/desk/{queue}, /v1/cases/{id}; POST /v1/cases/{id}/claim|reply|resolve
                                  the agent desk (engine/edge/cases.py): the agent or the
                                  admin token
    GET  /metrics                 Prometheus text format, low-cardinality labels
    GET  /healthz                 open; everything else under /v1/profiles, /v1/journeys,
                                  /v1/program and /metrics needs ``Authorization: Bearer <admin
                                  token>``

A request is applied whole or not at all: a missing or wrong write key answers 401; an oversize
body, malformed JSON, a value the engine cannot carry (``engine.edge.segment``) or a call without
userId/anonymousId answers 400 with ``{"success": false, "code", "message", "error", "field"}``
(``code`` and ``message`` as Segment's clients read them) and applies nothing; a body compressed
other than by gzip answers 415; when the engine's inbox is full the answer is 429 with
``Retry-After``, and when it cannot take events at all (its log cannot be written, or it failed
or is stopping) 503 with ``Retry-After``. A 2xx goes out only once the calls are in the
write-ahead log. A body is read in pieces and never held beyond its limit (gzip bodies: their
size once inflated); what a client sends past that is read and dropped, so it still gets its
answer. ``/healthz`` answers 503 while the engine cannot take events.

Calls whose messageId was already applied within 24 hours are acknowledged and skipped (clients
retry with the same ids); the ids are in the log and the snapshots, so this holds across
restarts.

A receipt names the send it reports on by its idempotency key (``customer:journey:entry:step:n``,
the ``Idempotency-Key`` the send went out with) and says what happened: delivered, opened,
clicked, bounced or unsubscribed. It reaches that customer's actor (or whom the customer merged
into) as the send's ``DeliveryReceipt``: it counts in the engagement and may resume the
journey's ``wait_for`` (``message_clicked``, ...). An unknown channel, an unknown
status, or a key that is no send step of the scenario on that channel answers 400 naming it
(``receipts[2].key``) and applies nothing. A receipt is applied once per ``messageId`` when the
provider sends one, else once per key and status, so a provider's retry applies once.
"""

from __future__ import annotations

import base64
import hmac
import zlib
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.convertors import Convertor, register_url_convertor
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from actors.errors import IngestError
from actors.messages import Submission
from engine.edge.archive import Archive
from engine.edge.cases import MAX_ACTION_BYTES, apply_action, case_view, parse_action, queue_view
from engine.edge.monitoring import dead_letters, journey_statistics, registry_for
from engine.edge.receipts import parse_receipts, receipts_to_messages
from engine.edge.segment import (
    KINDS,
    MAX_BATCH_BYTES,
    MAX_CALL_BYTES,
    parse,
    to_messages,
)
from engine.edge.views import profile_view
from engine.runtime.realtime import EngineUnavailable, RealtimeRuntime
from engine.storage.snapshots import SnapshotStatistics

DRAINED = 8 * MAX_BATCH_BYTES  # a body past its limit is read and dropped up to here, then cut off
MAX_IN_FLIGHT = 64 * MAX_BATCH_BYTES  # bodies held at a time: 64 batches, or 1,024 single calls
Decode = Callable[[bytes], list[Submission]]  # a request body to the messages it carries


class _Anything(Convertor[str]):
    """A path parameter of any characters, '/' and control characters included: a customer id
    may hold them (the server has decoded them from %2F, %0A), and a receipts path names its
    channel, good or bad, for a 400 that says which (``path`` stops at a line break, ``str`` at
    a slash: either would leave the request to a 404)."""

    regex = "(?s:.*)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("anything", _Anything())


def create_app(
    runtime: RealtimeRuntime,
    write_keys: set[str],
    admin_token: str | None = None,
    retry_after: int = 1,
    snapshots: SnapshotStatistics | None = None,
    agent_token: str | None = None,
    archive: Archive | None = None,
) -> Starlette:
    """The ASGI app in front of ``runtime``, accepting any of ``write_keys`` for ingestion,
    ``admin_token`` (a bearer token; None: the admin API is closed) for the rest, and
    ``agent_token`` too for the agent API (``engine.edge.cases``); ``snapshots`` (what the
    service's snapshots did) is shown in ``/metrics`` too; ``archive`` is handed the calls of each
    request applied, with when they were received (``engine.edge.archive.Archive``)."""
    registry = registry_for(runtime, snapshots)

    def bearer(request: Request, *tokens: str | None) -> bool:
        given = request.headers.get("authorization", "")
        return any(token is not None and hmac.compare_digest(given, f"Bearer {token}") for token in tokens)

    def admin(request: Request) -> JSONResponse | None:
        """None when the request carries the admin token, else the 401 to answer."""
        if not bearer(request, admin_token):
            return _error(401, "admin token required (Authorization: Bearer ...)")
        return None

    def agent(request: Request) -> JSONResponse | None:
        """None when the request carries the agent or the admin token, else the 401 to answer."""
        if not bearer(request, agent_token, admin_token):
            return _error(401, "agent or admin token required (Authorization: Bearer ...)")
        return None

    async def desk(request: Request) -> Response:
        return agent(request) or JSONResponse(runtime.desk.statistics())

    async def queue(request: Request) -> Response:
        view = queue_view(runtime, request.path_params["queue"])
        return agent(request) or (JSONResponse(view) if view is not None else _error(404, "no such queue"))

    async def case(request: Request) -> Response:
        found = runtime.desk.case(request.path_params["case"])
        return agent(request) or (JSONResponse(case_view(runtime, found)) if found is not None
                                  else _error(404, "no such case"))

    async def act(request: Request) -> Response:
        refused = agent(request)
        if refused is not None:
            return refused
        try:
            action = parse_action(request.path_params["case"], request.path_params["action"],
                                  await _body(request, MAX_ACTION_BYTES))
            status, answer = await apply_action(runtime, action)
        except IngestError as exc:
            return _bad_request(exc)
        except _Unsupported as exc:
            return _error(415, str(exc), "content-encoding")
        except EngineUnavailable as exc:
            return _retry_later(str(exc), 503, retry_after)
        return JSONResponse(answer) if status == 200 else _error(status, str(answer))

    async def profile(request: Request) -> Response:
        refused = admin(request)
        if refused is not None:
            return refused
        actor = runtime.actor(request.path_params["user_id"])
        if actor is None:
            return _error(404, "no such profile")
        return JSONResponse(profile_view(actor))

    async def journeys(request: Request) -> Response:
        return admin(request) or JSONResponse(journey_statistics(runtime))

    async def program(request: Request) -> Response:
        lift = runtime.metrics.program.to_dict()
        return admin(request) or JSONResponse(lift if lift is not None else {
            "global_holdout": 0.0, "lift": None, "note": "no global_holdout in the scenario's [policy]"})

    async def attribution(request: Request) -> Response:
        return admin(request) or JSONResponse(runtime.metrics.paths.to_dict())

    async def dead(request: Request) -> Response:
        return admin(request) or JSONResponse(dead_letters(runtime))

    async def metrics(request: Request) -> Response:
        return admin(request) or Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    def authorize(body_key: str | None, request: Request) -> None:
        if (body_key or _basic_user(request)) not in write_keys:
            raise _Unauthorized

    async def ingest(request: Request) -> JSONResponse:
        kind = request.path_params["kind"]
        if kind not in (*KINDS, "batch"):
            return _error(404, f"unknown endpoint /v1/{kind}")

        taken: list[bytes] = []  # (the archive's lines of the calls, as they came)

        def decode(body: bytes) -> list[Submission]:
            calls, body_key = parse(kind, body)
            authorize(body_key, request)
            now = runtime.now()  # (the engine's clock: simulated under a test clock)
            if archive is not None:
                taken.append(archive.lines(calls, now))
            return to_messages(calls, now)

        answer = await accept(request, MAX_BATCH_BYTES if kind == "batch" else MAX_CALL_BYTES, decode)
        if archive is not None and taken and answer.status_code == 200:
            archive.write(taken[0])
        return answer

    async def receipts(request: Request) -> JSONResponse:
        def decode(body: bytes) -> list[Submission]:
            decoded = parse_receipts(body)
            authorize(decoded.writeKey, request)
            return receipts_to_messages(request.path_params["channel"], decoded, runtime.program)

        return await accept(request, MAX_BATCH_BYTES, decode)

    in_flight = [0]  # bytes of body the requests being handled may hold (their limits)

    async def accept(request: Request, limit: int, decode: Decode) -> JSONResponse:
        """Read a body of at most ``limit`` bytes, ``decode`` it, apply it: the 4xx or 2xx of it.
        While ``MAX_IN_FLIGHT`` bytes of limits are taken, answer 429 at once: however many
        connections a client opens, the bodies held at a time stay bounded."""
        if in_flight[0] + limit > MAX_IN_FLIGHT:
            return _retry_later("too many requests in flight", 429, retry_after)
        in_flight[0] += limit
        try:
            messages = decode(await _body(request, limit))
            return await apply(messages)
        except IngestError as exc:
            return _bad_request(exc)
        except _Unauthorized:
            return _error(401, "missing or unknown write key")
        except _Unsupported as exc:
            return _error(415, str(exc), "content-encoding")
        finally:
            in_flight[0] -= limit

    async def apply(messages: list[Submission]) -> JSONResponse:
        """Hand validated messages to the engine; answer once they are in the log."""
        fresh = runtime.seen.unseen(messages)
        if runtime.saturated:
            return _retry_later("the engine is saturated; retry later", 429, retry_after)
        try:
            await runtime.submit(fresh)  # the engine skips ids applied meanwhile (and remembers these)
        except EngineUnavailable as exc:
            return _retry_later(str(exc), 503, retry_after)
        duplicates = len(messages) - len(fresh)
        return JSONResponse({"success": True, "applied": len(fresh), "duplicates": duplicates})

    async def health(request: Request) -> JSONResponse:
        counts = {"actors": runtime.actor_count, "handled": runtime.handled}
        if runtime.failure is not None:
            return JSONResponse({"status": "failed", **counts}, status_code=503)
        if runtime.storage_error is not None:
            return JSONResponse({"status": "storage", "error": str(runtime.storage_error), **counts},
                                status_code=503)
        if not runtime.accepting:
            return JSONResponse({"status": "stopping", **counts}, status_code=503)
        return JSONResponse({"status": "ok", **counts})

    app = Starlette(
        routes=[
            Route("/v1/profiles/{user_id:anything}", profile, methods=["GET"]),
            Route("/v1/journeys", journeys, methods=["GET"]),
            Route("/v1/program", program, methods=["GET"]),
            Route("/v1/attribution", attribution, methods=["GET"]),
            Route("/v1/dead-letters", dead, methods=["GET"]),
            Route("/v1/desk", desk, methods=["GET"]),
            Route("/v1/desk/{queue}", queue, methods=["GET"]),
            Route("/v1/cases/{case:int}", case, methods=["GET"]),
            Route("/v1/cases/{case:int}/{action}", act, methods=["POST"]),
            Route("/v1/receipts/{channel:anything}", receipts, methods=["POST"]),
            Route("/v1/{kind}", ingest, methods=["POST"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/healthz", health, methods=["GET"]),
        ],
        middleware=[Middleware(_BodyDrained)],
    )
    app.router.redirect_slashes = False  # ("/v1/profiles/ada/" is not "ada": no redirect to it)
    return app


class _BodyDrained:
    """ASGI middleware: a request body the app answers without reading to its end (a 401, 404,
    415, or a 400 over the limit) is read on and dropped, up to ``DRAINED`` bytes, before the
    answer starts. A server that answers while the client is still sending closes the connection,
    and the client, still writing, may lose the answer with it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ended = False

        async def tracked() -> Message:
            nonlocal ended
            message = await receive()
            ended = ended or message["type"] != "http.request" or not message.get("more_body", False)
            return message

        async def drained_first(message: Message) -> None:
            if message["type"] == "http.response.start":
                read = 0
                while not ended and read <= DRAINED:
                    read += len((await tracked()).get("body", b""))
            await send(message)

        await self.app(scope, tracked, drained_first)


class _Unsupported(Exception):
    """A body in an encoding the edge does not read (answered 415)."""


async def _body(request: Request, limit: int) -> bytes:
    """The request's body (inflated when gzipped), read in pieces and never kept past ``limit``.

    Raises:
        IngestError: the body, or its inflated form, is over ``limit`` (answered 400, as Segment
            does), or its gzip data is broken.
        _Unsupported: a ``Content-Encoding`` other than gzip or identity.
    """
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip", ""):
        raise _Unsupported(f"content-encoding {encoding[:40]!r}: expected gzip or none")
    inflate = zlib.decompressobj(wbits=31) if encoding == "gzip" else None
    pieces, size, read = [], 0, 0
    async for piece in request.stream():
        read += len(piece)
        if read > DRAINED:
            break  # (the connection is cut off: no client of ours sends that much)
        if size > limit:
            continue  # over the limit: read on (so the client gets its answer), keep nothing
        if inflate is not None:
            try:
                piece = inflate.decompress(piece, limit + 1 - size)  # (never more than the limit)
            except zlib.error as exc:
                raise IngestError(f"broken gzip data: {exc}", field="body") from None
        pieces.append(piece)
        size += len(piece)
    if size > limit:
        raise IngestError(f"body over {limit:,} bytes", field="body")
    if inflate is not None and not inflate.eof:
        raise IngestError("gzip data cut short", field="body")
    return b"".join(pieces)


class _Unauthorized(Exception):
    """A request without a known write key (answered 401)."""


# what an error's ``code`` is, by status (Segment's clients read ``code`` and ``message``)
_CODES = {400: "invalid_request", 401: "unauthorized", 404: "not_found", 409: "conflict",
          415: "unsupported_encoding",
          429: "rate_limited", 503: "unavailable"}


def _error(status: int, message: str, field: str | None = None,
           headers: dict[str, str] | None = None) -> JSONResponse:
    """An error answer in the shape Segment's clients read (``code``, ``message``; the official
    Python library raises them as its ``APIError``), with ``error`` (the same message) and, for
    a request the edge refuses, the ``field`` at fault."""
    body: dict[str, object] = {"success": False, "code": _CODES.get(status, "error"), "message": message,
                               "error": message}
    if field is not None:
        body["field"] = field
    return JSONResponse(body, status_code=status, headers=headers)


def _retry_later(error: str, status: int, seconds: int) -> JSONResponse:
    return _error(status, error, headers={"Retry-After": str(seconds)})


def _bad_request(exc: IngestError) -> JSONResponse:
    return _error(400, str(exc), exc.field)


def _basic_user(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        user, _, _ = base64.b64decode(header[6:]).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return user
