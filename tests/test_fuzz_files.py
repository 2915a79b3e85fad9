"""Fuzz what users hand the engine as files: a recorded Segment log for ``touchpoint replay`` and
a transaction log for ``touchpoint predict``. Whatever a line or a row holds, the reader either
takes it or reports it by its number (never another exception), and the replay of whatever it
took never fails (hypothesis)."""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.lab.replay import replay_log
from engine.lab.transactions import TransactionError, read_transactions, summarise
from engine.scenario_files import load_scenario
from reports.bundle import write_bundle

CART = load_scenario("cart_abandonment")

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                    st.floats(allow_nan=False), st.text(max_size=20))
VALUES = st.recursive(
    SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner,
                                                                                  max_size=3)),
    max_leaves=12)
STAMPS = st.one_of(st.sampled_from(["2026-03-02T10:00:00Z", "2026-03-02T10:00:00+05:00", "1970-01-01",
                                    "9999-12-31T23:59:59Z", "0001-01-01T00:00:00+05:00", "2026-13-45", "",
                                    "yesterday"]),
                   st.datetimes().map(lambda d: d.isoformat()), st.text(max_size=12))
CALLS = st.fixed_dictionaries({}, optional={
    "type": st.sampled_from(["track", "identify", "page", "screen", "group", "alias", "nope", 3]),
    "userId": st.one_of(st.text(max_size=10), st.integers(), st.none()),
    "anonymousId": st.text(max_size=10), "previousId": st.text(max_size=10), "groupId": st.text(max_size=5),
    "event": st.one_of(st.sampled_from(["cart_add", "purchase", "Email Opened", "Order Completed"]),
                       st.text(max_size=10)),
    "messageId": st.text(max_size=6), "timestamp": STAMPS, "receivedAt": STAMPS, "sentAt": STAMPS,
    "originalTimestamp": STAMPS,
    "properties": st.dictionaries(st.sampled_from(["value", "journey", "entry", "channel", "x"]), VALUES,
                                  max_size=4),
    "traits": st.dictionaries(st.sampled_from(["email", "phone", "timezone", "email_consent", "y"]), VALUES,
                              max_size=4),
    "context": VALUES,
})


def line_of(call: Any) -> bytes:
    return json.dumps(call, allow_nan=True).encode() if not isinstance(call, bytes) else call


LINES = st.one_of(CALLS.map(line_of), st.lists(CALLS, max_size=4).map(lambda b: line_of({"batch": b})),
                  st.binary(max_size=40).map(lambda b: b.replace(b"\n", b" ")))


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(LINES, max_size=12))
def test_any_log_is_read_line_by_line_and_replayed_without_failing(tmp_path_factory: Any,
                                                                   lines: list[bytes]) -> None:
    folder = tmp_path_factory.mktemp("replay")
    log = folder / "log.ndjson"
    log.write_bytes(b"".join(line + b"\n" for line in lines))
    result = replay_log(CART, log, folder / "out")  # (the command's own path: tables, metrics, times)
    read = result.metrics["log"]
    assert read["lines"] == len(lines)
    assert read["malformed"] == len(read["malformed_lines"]) <= len(lines)  # (every skipped line reported)
    assert all(1 <= e["line"] <= len(lines) for e in read["malformed_lines"])
    if read["malformed"]:  # (the reasons quote the hostile text: the page must hold it, escaped)
        page = write_bundle(folder / "out", result.metrics).read_text()
        assert "<script" not in page


CELLS = st.one_of(st.text(alphabet=string.printable, max_size=12), st.sampled_from(["2025-01-01", "1.5", "-2",
                                                                                    "nan", "inf", ""]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(CELLS, min_size=0, max_size=4), max_size=8))
def test_any_transaction_file_is_read_or_refused_naming_where(tmp_path_factory: Any,
                                                              rows: list[list[str]]) -> None:
    path: Path = tmp_path_factory.mktemp("tx") / "t.csv"
    clean = [[cell.replace(",", " ").replace("\n", " ").replace("\r", " ") for cell in row] for row in rows]
    body = "".join(",".join(row) + "\n" for row in clean)
    path.write_text("customer_id,date,amount\n" + body, encoding="utf-8")
    try:
        taken = read_transactions(path, value="amount")
    except TransactionError as exc:
        assert str(exc).startswith(("row ", "no transaction"))
        return
    history = summarise(taken)
    assert len(history.customers) == len({who for who, _, _ in taken})
