"""Fuzz ``touchpoint serve`` over real HTTP on 127.0.0.1: whatever a client sends, the service
answers with a status it documents and stays up (README, "HTTP edge"; STYLE.md practice 15).

One server, started as ``tests/serving.py`` starts it, serves the whole module; hypothesis draws
one request per example for every endpoint: random bytes, Segment calls with hostile values
(wrong types, numbers beyond 64 bits or beyond a double, deep nesting, huge strings, invalid
UTF-8, lone surrogates, repeated keys, absurd timestamps), oversize batches, truncated bodies,
and wrong ``Content-Type``, ``Content-Encoding`` and credentials. A dropped connection fails the
example, as does a status outside the endpoint's documented ones (a 5xx among them); the message
carries the end of the server's output, where its traceback is.

Each request goes on a connection of its own, so an example replays alone, and a server that
died is started again on a fresh data folder, so hypothesis shrinks a crashing input against a
live server. The inputs differ from run to run: a failure prints the ``@reproduce_failure``
decorator that replays it, and the inputs found so far (``FOUND_*``) are tried first in every
run. Each status is counted; the counts are printed when the module ends and written as JSON to
the file ``TOUCHPOINT_FUZZ_REPORT`` names, if it names one. With ``TOUCHPOINT_FUZZ_RECORD=1``
statuses are counted and not checked, to survey code that fails.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import signal
import subprocess
import threading
import time
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy
from serving import KEY, run_engine, start

ADMIN = "fuzz-admin"
AGENT = "fuzz-agent"
KINDS = ("identify", "track", "page", "screen", "group", "alias")
RECEIPT_CHANNELS = ("email", "sms", "push", "in_app", "webhook", "agent", "junk")
ADMIN_PATHS = ("/v1/journeys", "/v1/dead-letters", "/metrics", "/healthz", "/v1/attribution")
INGESTION_STATUSES = frozenset({400, 401, 413, 415, 429})  # besides 2xx
ADMIN_STATUSES = frozenset({401, 404})
AGENT_STATUSES = frozenset({400, 401, 404, 409, 415})
STRAY_STATUSES = frozenset({404, 405})
SUMMARY_ORDER = ("2xx", "400", "401", "404", "413", "415", "429", "5xx", "errors")
RECORD_ONLY = os.environ.get("TOUCHPOINT_FUZZ_RECORD") == "1"
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
                print_blob=True)  # (a failure prints the @reproduce_failure that replays it)


class Fuzzed(NamedTuple):
    """One request as hypothesis drew it (printed in full when it fails)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    chunked: bool = False  # sent with Transfer-Encoding: chunked


class ServerUnderFuzz:
    """The module's ``touchpoint serve`` and its client; ``exchange`` sends, counts and checks.

    A thread reads the server's output as it comes (so the pipe never fills) and keeps its end.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        # a connection per request: an answer cannot depend on what an earlier example left on
        # a kept-alive connection, so each example replays alone (hypothesis needs that to shrink)
        self.client = httpx.Client(timeout=10, limits=httpx.Limits(max_keepalive_connections=0))
        self.statuses: Counter[str] = Counter()
        self.deaths: list[str] = []  # the end of each dead server's output
        self.started_at = time.monotonic()
        self._start()

    def _start(self) -> None:
        self.data = self.root / f"state-{len(self.deaths)}"
        self.process, self.url = start(self.data, "--admin-token", ADMIN, "--agent-token", AGENT, "--archive")
        self.output: deque[str] = deque(maxlen=300)
        self.lines_read = 0
        self._reader = threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stdout: Iterator[str]) -> None:
        for line in stdout:
            self.output.append(line)
            self.lines_read += 1

    def tail(self, since: int = 0, lines: int = 40) -> str:
        """The last ``lines`` lines the server printed after it had printed ``since`` lines."""
        time.sleep(0.2)  # (the reader thread catches up with a traceback being written)
        new = min(lines, self.lines_read - since, len(self.output))
        return "".join(list(self.output)[len(self.output) - new:])

    def exchange(self, fuzzed: Fuzzed, allowed: frozenset[int]) -> None:
        """Send ``fuzzed``; fail unless the answer is a 2xx or in ``allowed`` (only count it
        under ``TOUCHPOINT_FUZZ_RECORD=1``)."""
        content: bytes | Iterator[bytes] = fuzzed.body
        if fuzzed.chunked:
            content = iter([fuzzed.body[i:i + 4096] for i in range(0, len(fuzzed.body), 4096)])
        printed = self.lines_read
        try:
            response = self.client.request(fuzzed.method, self.url + fuzzed.path, headers=fuzzed.headers,
                                           content=content)
        except httpx.LocalProtocolError:
            raise  # (the client refused to send it: a bug of this test, not of the server)
        except httpx.TransportError as exc:
            self.statuses["errors"] += 1
            down = self._revive(printed)
            assert RECORD_ONLY, f"{type(exc).__name__}: {exc}; {down}"
            return
        status = response.status_code
        self.statuses["2xx" if 200 <= status < 300 else "5xx" if status >= 500 else str(status)] += 1
        assert RECORD_ONLY or 200 <= status < 300 or status in allowed, (
            f"{status} {response.text[:500]!r} (Location: {response.headers.get('location')}); "
            f"the server printed:\n{self.tail(since=printed)}")

    def _revive(self, printed: int) -> str:
        """After a transport error: start the server again if it is dead or does not answer;
        say which, with what it printed (since it had printed ``printed`` lines, if it is up)."""
        try:
            self.process.wait(timeout=2)  # (a dying server may answer a moment longer)
        except subprocess.TimeoutExpired:
            try:
                self.client.get(f"{self.url}/healthz", timeout=5)
                return f"the server is up and printed:\n{self.tail(since=printed)}"
            except httpx.TransportError:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=5)
        said = f"the server exited with {self.process.returncode}; its output ends:\n{self.tail(lines=60)}"
        self.deaths.append(said)
        self._start()
        return said

    def stop(self) -> tuple[int, str]:
        """SIGTERM; the exit status (within 30 s) and the end of the output."""
        self.process.send_signal(signal.SIGTERM)
        status = self.process.wait(timeout=30)
        self._reader.join(timeout=5)
        return status, self.tail(lines=60)

    def close(self) -> list[str]:
        """Kill the server if it still runs; the counts as lines to print (written as JSON too,
        if asked)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.client.close()
        counts = {name: self.statuses[name] for name in SUMMARY_ORDER}
        counts.update(sorted((name, n) for name, n in self.statuses.items() if name not in counts))
        seconds = time.monotonic() - self.started_at
        if os.environ.get("TOUCHPOINT_FUZZ_REPORT"):
            report = {"requests": sum(counts.values()), "seconds": round(seconds, 1), "statuses": counts,
                      "server_deaths": len(self.deaths), "record_only": RECORD_ONLY}
            Path(os.environ["TOUCHPOINT_FUZZ_REPORT"]).write_text(json.dumps(report, indent=2) + "\n")
        causes = Counter(map(last_exception, self.deaths)).most_common()
        return [f"fuzz: {sum(counts.values()):,} requests in {seconds:.0f} s; "
                + ", ".join(f"{name} {n:,}" for name, n in counts.items())
                + f"; the server died {len(self.deaths)} times",
                *(f"  {times} times of {cause}" for cause, times in causes)]


def last_exception(output: str) -> str:
    """The last exception a process's output names (rich draws a traceback in a box)."""
    named = re.findall(r"\b(\w+(?:Error|Exception|Group): [^│\n]*)", output)
    return named[-1].strip() if named else output.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config,
           ) -> Iterator[ServerUnderFuzz]:
    fuzzed = ServerUnderFuzz(tmp_path_factory.mktemp("fuzz"))
    yield fuzzed
    summary = "\n".join(["", *fuzzed.close()])
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    if capture is None:
        print(summary)
        return
    with capture.global_and_fixture_disabled():  # (as capsys.disabled(): shown without -s too)
        print(summary)


# --- JSON text that json.dumps cannot write -------------------------------------------------

class Raw(str):
    """JSON text written as it is: 1e400, nesting 100,000 deep, invalid UTF-8, a lone surrogate."""


class Pairs(tuple):
    """A JSON object written as its (key, value) pairs in order, a key repeated if it is."""


def to_json(value: Any) -> str:
    """JSON text of ``value``, its ``Raw`` parts as they are and its ``Pairs`` as objects."""
    if isinstance(value, Raw):
        return value
    if isinstance(value, dict):
        value = Pairs(value.items())
    if isinstance(value, Pairs):
        return "{" + ",".join(f"{to_json(key)}:{to_json(item)}" for key, item in value) + "}"
    if isinstance(value, list):
        return "[" + ",".join(map(to_json, value)) + "]"
    return json.dumps(value, ensure_ascii=False)


def to_body(value: Any) -> bytes:
    return to_json(value).encode("utf-8", "surrogateescape")  # (invalid bytes ride as U+DC80-U+DCFF)


def nested(depth: int, shape: str) -> Raw:
    """Arrays, objects or both in turn, ``depth`` deep."""
    if shape == "array":
        return Raw("[" * depth + "]" * depth)
    if shape == "object":
        return Raw('{"a":' * depth + "1" + "}" * depth)
    return Raw('[{"k":' * depth + "0" + "}]" * depth)


def bad_string(before: str, bad: bytes, after: str) -> Raw:
    """A JSON string with ``bad`` bytes (not UTF-8) between two pieces of text."""
    return Raw(json.dumps(before)[:-1] + bad.decode("utf-8", "surrogateescape") + json.dumps(after)[1:])


def mostly(valid: SearchStrategy[Any], hostile: SearchStrategy[Any], odds: int = 3) -> SearchStrategy[Any]:
    """``valid`` ``odds`` times in ``odds + 1`` (three in four), else ``hostile``: most calls get as
    far as being applied."""
    return st.integers(0, odds).flatmap(lambda drawn: hostile if drawn == odds else valid)


# --- values --------------------------------------------------------------------------------

# integers msgpack cannot encode; 10**400 is beyond a double too
BEYOND_64_BITS = (2**64, 2**64 + 1, -(2**63) - 1, -(2**64), -(2**127), 10**100, 10**400, -(10**400))
EXTREME_NUMBERS = (2**63, 2**63 - 1, -(2**63), 2**53 + 1, -(2**53) - 1, 1e308, -1e308, 1.7976931348623157e308,
                   5e-324, -0.0, 2.2250738585072014e-308)
NUMBER_TEXTS = ("1e400", "-1e400", "1E-400", "0e99999999", "1.5e+308",
                "123456789012345678901234567890.5", "NaN", "Infinity", "-Infinity", "01", "1.", ".5", "+1",
                "0x10", "1e", "-")
BAD_BYTES = (b"\xff", b"\xfe\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xf4\x90\x80\x80",
             b"\x80", b"\xe2\x82", b"\x00", b"\x1f")
SURROGATE_TEXTS = ('"\\ud800"', '"\\udfff"', '"a\\ud800b"', '"\\ud800\\ud800"', '"\\udc00\\ud800"',
                   '"\\u0000"', '"\\u"', '"\\x41"')
POOL = ("ada", "bob", "cy", "visitor-1", "42", "ä", "a:b:c")  # ids shared with the profile requests
EVENTS = ("cart_add", "purchase", "message_clicked", "Email Opened", "Email Link Clicked", "Unsubscribed",
          "Push Notification Tapped", "SMS Delivered", "Email Marked as Spam")
KEYS = ("email", "phone", "value", "journey", "entry", "channel", "message", "timestamp", "name", "", "a.b",
        "group_id", "__proto__")
TIMES = ("2024-05-01T12:00:00Z", "2024-05-01T12:00:00.123Z", "2024-05-01T12:00:00.123456789Z",
         "2024-05-01T12:00:00+25:00", "2024-05-01T12:00:00-24:00", "2024-05-01T12:00:00+23:59",
         "0001-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00", "0001-01-01T00:00:00-23:59",
         "9999-12-31T23:59:59Z", "9999-12-31T23:59:59-23:59", "9999-12-31T23:59:59.999999+00:00",
         "1970-01-01T00:00:00Z", "2024-02-30T00:00:00Z", "2024-13-01", "2024-05-01T24:00:00Z", "yesterday",
         "", "2024-05-01", "20240501T120000Z", "2024-W18-3", "2024-05-01T12:00:00,5Z",
         "+002024-05-01T00:00:00Z", "2024-05-01T12:00:00.Z", "2024-05-01 12:00:00", "T",
         "2024-05-01T12:00:00+00:00:00.000001")

PRINTABLE = st.characters(min_codepoint=33, max_codepoint=126)
many_digits = st.sampled_from([20, 400, 5000]).map(lambda digits: "9" * digits)  # (beyond int(): 4,300)
numbers = st.one_of(
    st.sampled_from(BEYOND_64_BITS),
    st.sampled_from(EXTREME_NUMBERS),
    st.sampled_from(NUMBER_TEXTS).map(Raw),
    st.builds(lambda sign, digits: Raw(sign + digits), st.sampled_from(["", "-"]), many_digits),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
)
huge_strings = st.builds(lambda char, n: char * n, st.sampled_from(["x", "é", "😀", '"', "\\", "\n"]),
                         st.sampled_from([1_000, 16_000, 32 * 1024 - 100, 32 * 1024, 100_000, 200_000]))
hostile_strings = st.one_of(
    huge_strings,
    st.builds(bad_string, st.text(max_size=4), st.sampled_from(BAD_BYTES), st.text(max_size=4)),
    st.sampled_from(SURROGATE_TEXTS).map(Raw),
)
plain_strings = st.one_of(st.text(max_size=20), st.sampled_from(POOL + EVENTS + KEYS))
strings = mostly(plain_strings, hostile_strings)
scalars = st.one_of(st.none(), st.booleans(), numbers, strings)
plain_keys = st.sampled_from(KEYS) | st.text(max_size=8)
keys = plain_keys | st.builds(bad_string, st.just("k"), st.sampled_from(BAD_BYTES), st.just(""))
depths = st.one_of(st.sampled_from([10, 100, 999, 1000, 5000, 100_000]), st.integers(10, 3000))
deep = st.builds(nested, depths, st.sampled_from(["array", "object", "mixed"]))
json_values = st.recursive(
    scalars, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(keys, kids, max_size=4), max_leaves=12)
wrong_types = st.one_of(st.none(), st.booleans(), numbers, st.lists(scalars, max_size=3),
                        st.dictionaries(keys, scalars, max_size=3), deep)
hostile_times = st.one_of(st.sampled_from(TIMES), st.builds(
    lambda at, offset: at.isoformat() + offset, st.datetimes(),
    st.sampled_from(["", "Z", "+00:00", "+14:00", "-12:00", "+23:59", "+25:00", "-99:99"])))
hostile_values = st.one_of(numbers, wrong_types, hostile_strings, hostile_times, json_values)

# valid calls, which mutations then make hostile
valid_ids = st.one_of(st.sampled_from(POOL), st.text(min_size=1, max_size=12))
valid_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(10**6), 10**6),
                          st.floats(-1e6, 1e6, allow_nan=False), plain_strings)


def receipt_properties(entries: SearchStrategy[Any]) -> SearchStrategy[dict[str, Any]]:
    """What a track of Segment's delivery events ("Email Opened", ...) reads from its properties."""
    return st.fixed_dictionaries(
        {"journey": st.sampled_from(["cart_abandonment", "nope"]), "entry": entries},
        optional={"channel": st.sampled_from(RECEIPT_CHANNELS), "message": st.text(max_size=12)})


valid_values = st.recursive(
    valid_scalars, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=4), kids),
    max_leaves=6)
hostile_leaves = st.one_of(numbers, hostile_strings, deep, json_values)
objects = mostly(  # properties, traits, context, integrations: one in eight with hostile values inside
    receipt_properties(st.integers(0, 5)) | st.dictionaries(plain_keys, valid_values, max_size=5),
    receipt_properties(numbers) | st.dictionaries(plain_keys, hostile_leaves, min_size=1, max_size=2),
    odds=7,
)
valid_times = st.builds(lambda at, offset: at.isoformat() + offset,
                        st.datetimes(datetime(2020, 1, 1), datetime(2030, 1, 1)),
                        st.sampled_from(["Z", "+00:00", "+02:00", "-05:00", ""]))
message_ids = st.one_of(st.uuids().map(str), st.sampled_from(["dup-1", "dup-2"]))
WRONG_KEYS = ("wrong", "", KEY + " ", KEY.upper())
write_keys = mostly(st.just(KEY), st.one_of(st.sampled_from(WRONG_KEYS), wrong_types))
VALID_FIELDS = {
    "anonymousId": valid_ids, "messageId": message_ids, "timestamp": valid_times, "sentAt": valid_times,
    "originalTimestamp": valid_times, "properties": objects, "traits": objects,
    "context": objects, "integrations": objects, "name": st.text(max_size=12),
    "event": st.sampled_from(EVENTS) | st.text(max_size=12), "groupId": valid_ids, "previousId": valid_ids,
    "writeKey": write_keys,
}
MUTABLE = ("userId", "type", *VALID_FIELDS)
mutations = st.lists(st.tuples(st.sampled_from(MUTABLE), st.none() | keys, hostile_values), max_size=3)


def mutated(call: dict[str, Any], changes: list[tuple[str, str | None, Any]]) -> dict[str, Any]:
    """``call`` with each change made: a field set to a value (key None) or a value put at a key
    inside the field's object."""
    call = dict(call)
    for field, key, value in changes:
        inner = call.get(field)
        call[field] = value if key is None else {**(inner if isinstance(inner, dict) else {}), key: value}
    return call


calls = st.builds(mutated, st.fixed_dictionaries(
    {"userId": valid_ids}, optional={**VALID_FIELDS, "type": st.sampled_from(KINDS)}), mutations)
batch_calls = st.builds(mutated, st.fixed_dictionaries({"type": st.sampled_from(KINDS), "userId": valid_ids},
                                                      optional=VALID_FIELDS), mostly(st.just([]), mutations))


def repeat_a_key(call: dict[str, Any], key: str, value: Any) -> Pairs:
    return Pairs([*call.items(), (key, value)])


def with_repeated_keys(shaped: SearchStrategy[dict[str, Any]]) -> SearchStrategy[Pairs]:
    fields = st.sampled_from(["userId", "type", "writeKey", "event", "traits", "batch", "receipts", "key"])
    return st.builds(repeat_a_key, shaped, fields, st.one_of(wrong_types, strings))


# --- bodies --------------------------------------------------------------------------------

def oversize_batch(events: int, padding: int) -> bytes:
    call = {"type": "track", "userId": "ada", "event": "cart_add", "properties": {"pad": "x" * padding}}
    return to_body({"writeKey": KEY, "batch": [call] * events})


oversize = st.one_of(
    st.builds(oversize_batch, st.sampled_from([2_500, 2_501, 5_000]), st.just(0)),  # more than 2,500 events
    st.builds(oversize_batch, st.sampled_from([16, 20]), st.just(30_000)),  # more than 500 KB
    # one call of about 32 KB, over it, and over 500 KB
    st.builds(oversize_batch, st.just(1), st.sampled_from([32 * 1024 - 100, 33_000, 600_000])),
    st.builds(lambda depth: b"[" * depth + b"]" * depth, st.sampled_from([100_000, 250_000])),
    st.builds(lambda call, padding: to_body({**call, "properties": {"pad": "x" * padding}}), calls,
              st.sampled_from([33_000, 200_000])),
)


def documents(shaped: SearchStrategy[Any], too_big: SearchStrategy[bytes]) -> SearchStrategy[bytes]:
    """Bodies for one endpoint: mostly ``shaped`` JSON, also any JSON value, nesting at the top,
    repeated keys, ``too_big`` ones and random bytes; JSON sometimes cut at a random byte."""
    json_text = mostly(shaped, st.one_of(json_values, deep, with_repeated_keys(shaped))).map(to_body)
    truncated = st.builds(lambda body, cut: body[: cut % max(len(body), 1)], json_text, st.integers(0, 2**20))
    return mostly(json_text, st.one_of(truncated, too_big, st.binary(max_size=1024)))


def basic(user_and_password: bytes) -> str:
    return f"Basic {base64.b64encode(user_and_password).decode()}"


AUTHORIZATIONS = (
    None, basic(f"{KEY}:".encode()), basic(KEY.encode()), "basic " + basic(f"{KEY}:x".encode())[6:],
    basic(b"wrong:"), basic(b"\xff\xfe:"), "Basic !!!not-base64", "Basic", "", f"Bearer {ADMIN}",
    "Bearer wrong", f"bearer {ADMIN}", "Bearer",
)
CONTENT_TYPES = (None, "application/json", "application/json; charset=utf-8",
                 "application/json; charset=latin-1", "text/plain", "application/x-www-form-urlencoded",
                 "multipart/form-data; boundary=x", "junk", "application/octet-stream", "")
ENCODINGS = ("gzip", "deflate", "br", "x-junk", "gzip, deflate", "identity")


def compress(coding: str, body: bytes) -> bytes:
    if coding == "gzip":
        return gzip.compress(body)
    if coding == "deflate":
        return zlib.compress(body)
    return body[::-1]  # (no brotli here: a body the name does not describe)


@st.composite
def wire(draw: st.DrawFn, method: str, path: str, body: bytes,
         authorizations: SearchStrategy[str | None]) -> Fuzzed:
    """``body`` to ``path`` with drawn headers, maybe compressed, maybe chunked."""
    headers: dict[str, str] = {}
    authorization = draw(authorizations)
    if authorization is not None:
        headers["Authorization"] = authorization
    content_type = draw(mostly(st.just("application/json"), st.sampled_from(CONTENT_TYPES)))
    if content_type is not None:
        headers["Content-Type"] = content_type
    coding = draw(mostly(st.none(), st.sampled_from(ENCODINGS)))
    if coding is not None:
        headers["Content-Encoding"] = coding
        if draw(st.booleans()):
            body = compress(coding, body)
    return Fuzzed(method, path, headers, body, chunked=draw(mostly(st.just(False), st.just(True))))


write_key_auth = mostly(st.sampled_from(AUTHORIZATIONS[1:3]), st.sampled_from(AUTHORIZATIONS))
admin_auth = mostly(st.just(f"Bearer {ADMIN}"), st.sampled_from(AUTHORIZATIONS))
batches = st.fixed_dictionaries(
    {"batch": mostly(st.lists(batch_calls, max_size=8),
                     st.one_of(wrong_types, st.lists(json_values, max_size=3)))},
    optional={"writeKey": write_keys, "sentAt": mostly(valid_times, hostile_values),
              "context": objects},
)


call_documents, batch_documents = documents(calls, oversize), documents(batches, oversize)


@st.composite
def ingestion_requests(draw: st.DrawFn) -> Fuzzed:
    kind = draw(st.sampled_from((*KINDS, "batch")))
    body = draw(batch_documents if kind == "batch" else call_documents)
    return draw(wire("POST", f"/v1/{kind}", body, write_key_auth))


send_keys = st.builds(  # customer:journey:entry:step:n
    lambda *parts: ":".join(map(str, parts)),
    st.one_of(st.sampled_from(POOL), st.text(max_size=10), huge_strings),
    st.sampled_from(["cart_abandonment", "nope", ""]),
    st.one_of(st.integers(0, 3), st.sampled_from([str(2**64), "-1", "٣", ""]), many_digits),
    st.sampled_from(["push", "email", "sms", "wait_1h", "end", "nope"]),
    st.one_of(st.integers(0, 3), st.just(str(2**64)), many_digits),
)
RECEIPT_STATUSES = ("delivered", "opened", "clicked", "bounced", "unsubscribed")
receipts = st.fixed_dictionaries(
    {"key": mostly(send_keys, st.one_of(strings, wrong_types)),
     "status": mostly(st.sampled_from(RECEIPT_STATUSES), st.one_of(strings, wrong_types))},
    optional={"messageId": mostly(message_ids, hostile_values)},
)
receipt_bodies = st.one_of(
    st.fixed_dictionaries({"receipts": mostly(st.lists(receipts, max_size=6), wrong_types)},
                          optional={"writeKey": write_keys}),
    st.builds(lambda receipt, more: {**receipt, **more}, receipts,
              st.fixed_dictionaries({}, optional={"writeKey": write_keys})),
)
RECEIPT = {"key": "ada:cart_abandonment:1:push:1", "status": "delivered"}
oversize_receipts = st.one_of(  # 2,500 receipts (the limit), more, and over 500 KB
    st.sampled_from([2_500, 2_501, 10_000]).map(
        lambda count: to_body({"writeKey": KEY, "receipts": [RECEIPT] * count})),
    oversize,
)


receipt_documents = documents(receipt_bodies, oversize_receipts)


def path_segment(id_: str | bytes) -> str:
    """``id_`` percent-encoded whole, dots too (a client would otherwise resolve "." and "..")."""
    return quote(id_, safe="").replace(".", "%2E")


@st.composite
def receipt_requests(draw: st.DrawFn) -> Fuzzed:
    channel = draw(mostly(st.sampled_from(RECEIPT_CHANNELS), st.just("x/") | st.text(), odds=7))
    body = draw(receipt_documents)
    return draw(wire("POST", f"/v1/receipts/{path_segment(channel)}", body, write_key_auth))


profile_ids = st.one_of(
    st.sampled_from([*POOL, "a/b", "ada/"]),  # a customer id may hold a slash
    st.text(min_size=1, max_size=20),
    st.binary(min_size=1, max_size=8),
    st.sampled_from([1_000, 10_000]).map(lambda n: "x" * n),
).map(path_segment)


@st.composite
def admin_requests(draw: st.DrawFn) -> Fuzzed:
    path = draw(st.one_of(st.sampled_from(ADMIN_PATHS), profile_ids.map(lambda id_: f"/v1/profiles/{id_}")))
    query = draw(mostly(st.just(""), st.text(PRINTABLE, max_size=20)))
    body = draw(mostly(st.just(b""), st.binary(max_size=256)))
    return draw(wire("GET", f"{path}?{quote(query, safe='=&')}" if query else path, body, admin_auth))


case_ids = st.one_of(st.integers(0, 5), st.sampled_from(["9" * 30, "-1", "1.5", "x", "%00"]))
agent_bodies = mostly(
    st.fixed_dictionaries({"agent": mostly(st.sampled_from(["ann", "ben"]), hostile_values)},
                          optional={"text": strings, "code": strings, "extra": hostile_values}).map(to_body),
    st.one_of(st.binary(max_size=256), json_values.map(to_body)),
)


@st.composite
def agent_requests(draw: st.DrawFn) -> Fuzzed:
    """The agent API: its lists and cases, and actions on cases (none of the cart scenario's
    journeys escalates, so a well-formed action meets no case: a 404 after its body is checked)."""
    auth = mostly(st.just(f"Bearer {AGENT}"), st.sampled_from(AUTHORIZATIONS))
    if draw(st.booleans()):
        path = draw(st.one_of(st.just("/v1/desk"), st.text(max_size=12).map(lambda q: f"/v1/desk/{quote(q)}"),
                              case_ids.map(lambda c: f"/v1/cases/{c}")))
        return draw(wire("GET", path, b"", auth))
    action = draw(mostly(st.sampled_from(["claim", "reply", "resolve"]), st.text(PRINTABLE, max_size=10)))
    return draw(wire("POST", f"/v1/cases/{draw(case_ids)}/{quote(action)}", draw(agent_bodies), auth))


ingestion_paths = st.sampled_from([f"/v1/{kind}" for kind in (*KINDS, "batch")] + ["/v1/receipts/email"])
unknown_paths = st.one_of(
    st.sampled_from(["/", "/v1", "/v1/", "/v2/track", "/v1/batch/x", "/healthz/x", "/%2e%2e/etc/passwd",
                     "/v1/trak", "/metrics/x"]),
    st.text(PRINTABLE, max_size=20).map(lambda p: "/x/" + quote(p)),
)
stray_targets = st.one_of(  # (method, path) pairs that no route answers
    st.tuples(st.sampled_from(["GET", "PUT", "DELETE", "PATCH"]), ingestion_paths),
    st.tuples(st.sampled_from(["POST", "PUT", "DELETE"]),
              st.sampled_from([*ADMIN_PATHS[:3], "/v1/profiles/ada"])),
    st.tuples(st.sampled_from(["GET", "POST", "PUT"]), unknown_paths),
)


@st.composite
def stray_requests(draw: st.DrawFn) -> Fuzzed:
    method, path = draw(stray_targets)
    return draw(wire(method, path, draw(st.binary(max_size=64)), write_key_auth))


# --- tests ---------------------------------------------------------------------------------

# inputs the fuzz found, each of which broke a version of the server: they run every time
WITH_KEY = {"Authorization": basic(f"{KEY}:".encode()), "Content-Type": "application/json"}
WITH_TOKEN = {"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"}
FOUND_INGESTING = (
    Fuzzed("POST", "/v1/identify", WITH_KEY, to_body(nested(999, "object"))),  # 500: RecursionError
    Fuzzed("POST", "/v1/batch", WITH_KEY, to_body({"batch": nested(999, "array")})),  # 500: RecursionError
    Fuzzed("POST", "/v1/identify", WITH_KEY,  # the process died: OverflowError writing the log
           to_body({"userId": "ada", "traits": {"journey": "cart_abandonment", "entry": 2**64}})),
    Fuzzed("POST", "/v1/track", WITH_KEY,  # 500: OverflowError naming the number in the 400
           to_body({"userId": "ada", "event": "cart_add", "properties": {"value": 10**400}})),
)
FOUND_RECEIVING = (
    Fuzzed("POST", "/v1/receipts/push", WITH_KEY,  # 500: ValueError reading the entry
           to_body({"key": f"ada:cart_abandonment:{'9' * 5000}:push:1", "status": "delivered"})),
    Fuzzed("POST", "/v1/receipts/x%2F", WITH_KEY, b'{"receipts":[]}'),  # 307 to /v1/receipts/x
    Fuzzed("POST", "/v1/receipts/%0A0", WITH_KEY, b'{"receipts":[]}'),  # 404: a channel path stopped at \n
)
FOUND_ADMINISTERING = (
    Fuzzed("GET", "/v1/profiles/ada%2F", WITH_TOKEN, b""),  # 307 to another profile's, ada's
)


def found(inputs: tuple[Fuzzed, ...]) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Decorate a fuzz test to try each of ``inputs`` before what hypothesis draws."""
    def decorate(test: Callable[..., None]) -> Callable[..., None]:
        for fuzzed in reversed(inputs):
            test = example(fuzzed=fuzzed)(test)
        return test

    return decorate


@pytest.mark.slow
@settings(FUZZ, max_examples=1_500)
@given(ingestion_requests())
@found(FOUND_INGESTING)
def test_ingestion_answers_any_request_with_a_documented_status(server, fuzzed):
    server.exchange(fuzzed, INGESTION_STATUSES)


@pytest.mark.slow
@settings(FUZZ, max_examples=500)
@given(receipt_requests())
@found(FOUND_RECEIVING)
def test_the_receipts_webhook_answers_any_request_with_a_documented_status(server, fuzzed):
    server.exchange(fuzzed, INGESTION_STATUSES)


@pytest.mark.slow
@settings(FUZZ, max_examples=450)
@given(admin_requests())
@found(FOUND_ADMINISTERING)
def test_the_admin_api_answers_any_request_with_a_documented_status(server, fuzzed):
    server.exchange(fuzzed, ADMIN_STATUSES)


@pytest.mark.slow
@settings(FUZZ, max_examples=300)
@given(agent_requests())
def test_the_agent_api_answers_any_request_with_a_documented_status(server, fuzzed):
    server.exchange(fuzzed, AGENT_STATUSES)


@pytest.mark.slow
@settings(FUZZ, max_examples=150)
@given(stray_requests())
def test_unknown_paths_and_wrong_methods_answer_404_or_405(server, fuzzed):
    server.exchange(fuzzed, STRAY_STATUSES)


@pytest.mark.slow
def test_after_the_fuzz_the_server_is_healthy_applies_a_call_and_stops_cleanly(server):
    health = server.client.get(f"{server.url}/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok", health.text
    call = {"userId": "after-fuzz", "event": "cart_add", "properties": {"value": 50}}
    deadline = time.monotonic() + 30
    while True:  # (a 429 only says the engine is still catching up: retry as a client would)
        answer = server.client.post(f"{server.url}/v1/track", json=call, auth=(KEY, ""))
        if answer.status_code != 429 or time.monotonic() > deadline:
            break
        time.sleep(float(answer.headers.get("Retry-After", 1)))
    assert answer.status_code == 200, answer.text

    status, output = server.stop()
    assert status == 0, output
    lines = run_engine("export", "--data", str(server.data)).stdout.splitlines()
    assert "after-fuzz" in {json.loads(line)["customer_id"] for line in lines}
    # whatever the service accepted, its archive holds a call replay reads back (refusing any
    # malformed line would fail the run)
    archive = server.data / "archive.ndjson"
    replayed = run_engine("replay", str(archive), "--scenario", "cart_abandonment", "--malformed", "refuse",
                          "--out", str(server.data / "replayed"), "-q")
    assert replayed.returncode == 0 and "after-fuzz" in archive.read_text()
