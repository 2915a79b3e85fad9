"""The HTTP edge: Segment-compatible ingestion served by Starlette (hypercorn, trio worker).

    POST /v1/identify | track | page | screen | group | batch    write key in the body or as
                                                                 HTTP Basic user
    GET  /healthz

A request is applied whole or not at all: a missing or wrong write key answers 401; an oversize
body, malformed JSON or a call without userId/anonymousId answers 400 with ``{"error", "field"}``
and applies nothing; when the engine's inbox is full the answer is 429 with ``Retry-After``. A 2xx
goes out only once the calls are in the write-ahead log. Calls whose messageId was already applied
within 24 hours are acknowledged and skipped (clients retry with the same ids); the ids are in
the log and the snapshots, so this holds across restarts.
"""

from __future__ import annotations

import base64
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from actors.errors import IngestError
from engine.realtime import RealtimeRuntime
from engine.segment import KINDS, parse, to_messages


def create_app(runtime: RealtimeRuntime, write_keys: set[str], retry_after: int = 1) -> Starlette:
    """The ASGI app in front of ``runtime``, accepting any of ``write_keys``."""
    async def ingest(request: Request) -> JSONResponse:
        kind = request.path_params["kind"]
        if kind not in (*KINDS, "batch"):
            return JSONResponse({"error": f"unknown endpoint /v1/{kind}"}, status_code=404)
        body = await request.body()
        try:
            calls, body_key = parse(kind, body)
            if (body_key or _basic_user(request)) not in write_keys:
                return JSONResponse({"error": "missing or unknown write key"}, status_code=401)
            messages = to_messages(calls, time.time())
        except IngestError as exc:
            return JSONResponse({"error": str(exc), "field": exc.field}, status_code=400)
        fresh = [(cid, msg, mid) for cid, msg, mid in messages if not runtime.seen.seen(mid)]
        if runtime.saturated:
            return JSONResponse(
                {"error": "the engine is saturated; retry later"},
                status_code=429,
                headers={"Retry-After": str(retry_after)},
            )
        await runtime.submit(fresh)  # the engine skips ids applied meanwhile (and remembers these)
        duplicates = len(messages) - len(fresh)
        return JSONResponse({"success": True, "applied": len(fresh), "duplicates": duplicates})

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "actors": len(runtime.actors), "handled": runtime.handled})

    return Starlette(
        routes=[
            Route("/v1/{kind}", ingest, methods=["POST"]),
            Route("/healthz", health, methods=["GET"]),
        ]
    )


def _basic_user(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        user, _, _ = base64.b64decode(header[6:]).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return user
