"""Real providers on 127.0.0.1 for the integration tests, in the test process (so they outlive
the engine processes a test kills).

``CountingProvider`` is an HTTP provider's API: a threaded ``http.server``. It honours
idempotency keys as a provider should: the first request with a key is applied (after
``latency`` seconds, as a real API takes its time), a later one is answered 200 "already applied"
and applied nothing. It records every complete request: its key, the value of ``mark_header``
(which engine process sent it) and the JSON body. Given a ``receipts`` URL it reports each send
it applied there as "delivered", as a provider's webhook does: from a thread of its own, retried
until the engine answers 2xx (an engine that is down or stopping is tried again later), or the
provider stops: ``stop()`` ends its threads, so a test leaves none behind.

``SmtpInbox`` is the handler of an aiosmtpd server: it keeps every message it receives.
"""

from __future__ import annotations

import base64
import json
import queue
import socket
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def free_port() -> int:
    """A TCP port free on 127.0.0.1 at the time of asking."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class SmtpInbox:
    """An aiosmtpd handler: ``messages`` holds ``(mail_from, rcpt_tos, content)`` per message."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's hook)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content.decode()))
        return "250 OK"


class CountingProvider:
    """Start with ``start()``, stop with ``stop()``; ``url`` is where to POST.

    Args:
        latency: seconds between reading a request and applying it (then answering).
        mark_header: a request header recorded with each request.
    """

    def __init__(self, latency: float = 0.0, mark_header: str = "X-Engine-Run",
                 receipts: str | None = None, write_key: str = "") -> None:
        self.latency = latency
        self.mark_header = mark_header
        self.receipts = receipts
        self.write_key = write_key
        self.reported: set[str] = set()  # keys whose receipt the engine accepted
        self.refused: list[tuple[str, int]] = []  # (key, status) of receipts it refused for good
        self._to_report: queue.Queue[str | None] = queue.Queue()  # None: stop reporting
        self._stopping = threading.Event()
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str | None, dict[str, Any]]] = []  # (key, mark, body)
        self.applied: set[str] = set()  # keys applied: each once, as the provider honours keys
        self.headers: list[dict[str, str]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._reporter = threading.Thread(target=self._report, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/send"

    def start(self) -> CountingProvider:
        self._thread.start()
        if self.receipts is not None:
            self._reporter.start()
        return self

    def _report(self) -> None:
        """Post a "delivered" receipt for each applied key until the engine answers it, until
        the provider stops."""
        while (key := self._to_report.get()) is not None:
            status = self._post_receipt(key)
            if status is None:
                return
            with self.lock:
                if status < 300:
                    self.reported.add(key)
                else:
                    self.refused.append((key, status))

    def _post_receipt(self, key: str) -> int | None:
        """The status the engine answered the receipt of ``key`` with, once it is not 429, 5xx
        or a refused connection (an engine that is busy, stopping or down: tried again later);
        None if the provider stopped first."""
        auth = "Basic " + base64.b64encode(f"{self.write_key}:".encode()).decode()
        body = json.dumps({"key": key, "status": "delivered", "messageId": f"r-{key}"}).encode()
        while not self._stopping.is_set():
            request = urllib.request.Request(self.receipts or "", data=body, method="POST", headers={
                "Content-Type": "application/json", "Authorization": auth})
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    return int(answer.status)
            except urllib.error.HTTPError as exc:
                if exc.code < 500 and exc.code != 429:
                    return exc.code
            except OSError:
                pass
            self._stopping.wait(0.1)
        return None

    def stop(self) -> None:
        """Stop serving and reporting; return once the provider's threads have ended."""
        self._stopping.set()
        self._to_report.put(None)
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        if self._reporter.is_alive():
            self._reporter.join(timeout=15)  # (a receipt being posted: 10 s at most)

    def applied_keys(self) -> set[str]:
        with self.lock:
            return set(self.applied)

    def wait_for(self, keys: set[str], timeout: float) -> set[str]:
        """Wait until every key of ``keys`` is applied, at most ``timeout`` seconds; return the
        keys still missing."""
        deadline = time.monotonic() + timeout
        while True:
            missing = keys - self.applied_keys()
            if not missing or time.monotonic() > deadline:
                return missing
            time.sleep(0.05)

    def _take(self, key: str, mark: str | None, body: dict[str, Any], headers: dict[str, str]) -> bool:
        """Record a request; return whether it was applied now (False: already applied)."""
        with self.lock:
            self.requests.append((key, mark, body))
            self.headers.append(headers)
            if key in self.applied:
                return False
            self.applied.add(key)
        if self.receipts is not None:
            self._to_report.put(key)
        return True

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real APIs and httpx's pool do
            disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms stall

            def handle(self) -> None:
                try:
                    super().handle()
                except ConnectionError:
                    pass  # the engine was killed with the connection open

            def do_POST(self) -> None:  # noqa: N802 (http.server's hook name)
                length = int(self.headers.get("content-length", 0))
                raw = self.rfile.read(length)
                if len(raw) < length:
                    return  # the sender died mid-request: nothing arrived
                key = self.headers.get("idempotency-key")
                if key is None:
                    self._answer(400, {"error": "no Idempotency-Key"})
                    return
                if provider.latency:
                    time.sleep(provider.latency)
                headers = {name.lower(): value for name, value in self.headers.items()}
                fresh = provider._take(key, self.headers.get(provider.mark_header), json.loads(raw), headers)
                self._answer(200, {"applied": True} if fresh else {"status": "already applied"})

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the sender died before the answer: it was applied all the same

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
                pass

        return Handler
