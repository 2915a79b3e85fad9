"""Replay (``touchpoint replay``): a design against a recorded Segment log, in simulated time.

The cart design's trace over a small log is worked by hand; the same log, posted to the service's
HTTP edge on trio's mock clock at the calls' own times, makes the very sends the replay makes;
malformed lines are reported by number and skipped or refused; two designs compare over one
history.
"""

from __future__ import annotations

import csv
import io
import json
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from harness import CART_SCENARIO, DAY, ROOT, T0, load_program
from serving import KEY, run_against_server, start, stop

import engine.edge.archive as archive_module
from engine.edge.archive import Archive, LogError, SegmentLog, identity_links
from engine.lab.replay import TABLES, iso, replay_log
from engine.runtime.replay import Record, Replay, in_time_order
from engine.scenario_files import load_scenario

MONDAY = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # (UTC: the customers' time zone when none is known)


def at(**delta: float) -> str:
    return (MONDAY + timedelta(**delta)).isoformat()


def identify(who: str, when: str, **traits: Any) -> dict[str, Any]:
    return {"type": "identify", "userId": who, "timestamp": when, "messageId": f"id-{who}-{when}",
            "traits": {"email": f"{who}@example.com", "phone": "+15550100", **traits}}


def track(who: str, event: str, when: str, **properties: Any) -> dict[str, Any]:
    return {"type": "track", "userId": who, "event": event, "timestamp": when,
            "messageId": f"{event}-{who}-{when}", "properties": properties}


def hand_log() -> list[dict[str, Any]]:
    """ada leaves a cart and never comes back; bob buys ten minutes later; cy leaves hers at 20:30,
    so the first reminder falls in quiet hours; dee clicks the first reminder."""
    return [
        identify("ada", at()), track("ada", "cart_add", at(seconds=5), value=60),
        identify("bob", at(minutes=1)), track("bob", "cart_add", at(minutes=1, seconds=5), value=80),
        track("bob", "purchase", at(minutes=11), value=80),
        identify("dee", at(minutes=2)), track("dee", "cart_add", at(minutes=2, seconds=5), value=45),
        click("dee", at(hours=1, minutes=30)),
        identify("cy", at(hours=10, minutes=29)), track("cy", "cart_add", at(hours=10, minutes=30), value=30),
    ]


def click(who: str, when: str) -> dict[str, Any]:
    """A click on the first reminder of the customer's first cart entry, as the provider reports it."""
    return {"type": "track", "userId": who, "event": "Email Link Clicked", "timestamp": when,
            "messageId": f"click-{who}", "properties": {"journey": "cart_abandonment", "entry": 1,
                                                        "message": "cart_reminder"}}


def recorder(sends: list[tuple[str, str, str, str]]) -> Any:
    """An ``on_send`` that records (when, who, step, channel)."""
    return lambda at, who, s: sends.append((iso(at), who, s.step, s.channel))


def touchpoint(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engine", *arguments], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)


def write_log(path: Path, calls: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(call) + "\n" for call in calls), encoding="utf-8")
    return path


def replay_calls(calls: list[dict[str, Any]], after: float = 8 * DAY, **options: Any) -> tuple[Replay, list]:
    sends: list[tuple[str, str, str, str]] = []
    replay = Replay(load_program(), on_send=recorder(sends), **options)
    stream = io.BytesIO("".join(json.dumps(c) + "\n" for c in calls).encode())
    replay.feed(in_time_order(SegmentLog(stream)))
    replay.finish(replay.now + after)
    return replay, sends


def test_the_cart_design_over_a_small_log_gives_the_trace_worked_by_hand():
    replay, sends = replay_calls(hand_log())
    assert sorted(sends) == sorted([
        # ada: an hour after the cart, the best of push and email (she has no push token: email); no click
        # in 24 hours, the email step; none in 48 more, the SMS
        ("2026-03-02T11:00:05Z", "ada", "push", "email"),
        ("2026-03-03T11:00:05Z", "ada", "email", "email"),
        ("2026-03-05T11:00:05Z", "ada", "sms", "sms"),
        # dee clicked the first reminder: the journey ends there
        ("2026-03-02T11:02:05Z", "dee", "push", "email"),
        # cy: her hour is up at 21:30, in quiet hours (21:00-08:00): deferred to 08:00, then as ada's
        ("2026-03-03T08:00:00Z", "cy", "push", "email"),
        ("2026-03-04T08:00:00Z", "cy", "email", "email"),
        ("2026-03-06T08:00:00Z", "cy", "sms", "sms"),
    ])  # (bob bought before his hour was up: nothing)
    m = replay.metrics.to_dict()
    journey = m["journeys"]["cart_abandonment"]
    assert journey["entrants"] == 4 and journey["treated"]["conversions"] == 1
    assert m["suppressed"]["deferred_by_rule"] == {"quiet_hours": 1}
    assert replay.receipts == 1 and replay.records == 10


def test_a_batch_per_line_replays_as_the_same_calls_one_per_line_and_retries_count_once():
    calls = hand_log()
    _, one_per_line = replay_calls(calls)
    stream = io.BytesIO((json.dumps({"batch": calls[:5], "sentAt": at(minutes=12)}) + "\n"
                         + json.dumps({"batch": calls[5:]}) + "\n"
                         + json.dumps(calls[1]) + "\n").encode())  # ada's cart_add again: a client's retry
    sends: list[tuple[str, str, str, str]] = []
    replay = Replay(load_program(), on_send=recorder(sends))
    log = SegmentLog(stream)
    replay.feed(in_time_order(log))
    replay.finish(replay.now + 8 * DAY)
    assert sorted(sends) == sorted(one_per_line)
    assert (log.lines, log.calls, replay.duplicates) == (3, 11, 1)


def test_calls_out_of_order_within_the_window_are_put_back_in_order_and_beyond_it_applied_late():
    records: list[Record] = [(t, []) for t in (10.0, 5.0, 20.0, 7000.0, 7020.0, 30.0, 7030.0)]
    ordered = [r[0] for r in in_time_order(records, window=3600.0)]
    assert ordered == [5.0, 10.0, 20.0, 30.0, 7000.0, 7020.0, 7030.0]
    late = [r[0] for r in in_time_order(records, window=10.0, chunk=1)]
    assert late == [5.0, 10.0, 20.0, 7000.0, 30.0, 7020.0, 7030.0]  # 30 came too late to be put back
    assert [r[0] for r in in_time_order(records, most=1, chunk=1)] == [5.0, 10.0, 20.0, 7000.0, 30.0, 7020.0,
                                                                       7030.0]  # (one held at most)
    replay = Replay(load_program())
    replay.feed(in_time_order(records, window=10.0, chunk=1))
    assert replay.late == 1 and replay.now == 7030.0


def test_malformed_lines_are_reported_by_number_and_skipped_or_refused():
    calls = [identify("ada", at()), "{not json", {"userId": "x", "event": "e"}, "",
             {"type": "track", "userId": "x", "event": "e"},
             {"batch": [track("x", "e", at()), {"type": "track", "event": "e", "timestamp": at()}]},
             track("y", "e", at(), value=2**60), track("ada", "cart_add", at(seconds=5), value=60)]
    data = "".join((c if isinstance(c, str) else json.dumps(c)) + "\n" for c in calls).encode()
    log = SegmentLog(io.BytesIO(data))
    records = list(log)
    assert [(e.number, e.reason.split(":")[0]) for e in log.errors] == [
        (2, "line"), (3, "type"), (5, "timestamp"), (6, "batch[1].userId"), (7, "properties.value")]
    assert log.malformed == 5 and log.lines == 8 and len(records) == 2
    with pytest.raises(LogError, match="line 2: line: malformed"):
        list(SegmentLog(io.BytesIO(data), "refuse"))


def test_an_overlong_line_is_skipped_without_being_read_whole():
    big = json.dumps(track("x", "e", at(), blob="x" * 600_000))
    stream = io.BytesIO((big + "\n" + json.dumps(identify("ada", at())) + "\n").encode())
    log = SegmentLog(stream)
    assert len(list(log)) == 1
    assert log.errors[0].number == 1 and "longer than 512,000 bytes" in log.errors[0].reason


def test_replay_gives_the_sends_the_service_made_of_the_same_events(tmp_path):
    """The same calls, posted over HTTP to the service's edge on the mock clock at their own times,
    and replayed, from the log the client sent and from the archive the service wrote of what it
    accepted: the same sends, at the same times, with the same keys."""
    calls = equality_log()
    clock = trio.testing.MockClock()

    async def script(client, runtime):
        async def advance_to(moment: float) -> None:  # each timer at its due time, as the clock goes
            while True:
                await trio.testing.wait_all_tasks_blocked()
                now = T0 + trio.current_time()
                step = min(runtime.timers.peek_time(), moment)
                if step > now:
                    clock.jump(step - now)
                await trio.testing.wait_all_tasks_blocked()
                if step >= moment:
                    return

        for call in calls:
            await advance_to(datetime.fromisoformat(call["timestamp"]).timestamp())
            kind = call["type"]
            answer = await client.post(f"/v1/{kind}", json=call, auth=(KEY, ""))
            assert answer.status_code == 200, answer.text
        await advance_to(T0 + 9 * DAY)

    archive = Archive(tmp_path / "archive.ndjson")
    served = run_against_server(tmp_path, script, clock=clock, archive=archive)
    archive.close()
    by_service = sorted((at, send.customer, send.key) for at, send in served.channel.delivered)
    assert len(by_service) >= 30, "the log should exercise the journey"
    assert archive.calls == len(calls) and "writeKey" not in archive.path.read_text()
    for log in (write_log(tmp_path / "log.ndjson", calls), archive.path):
        replay, sends = replay_sends(log, T0 + 9 * DAY)
        assert sorted(sends) == by_service, log.name
        assert replay.metrics.to_dict()["journeys"] == served.metrics.to_dict()["journeys"]


def replay_sends(log: Path, until: float) -> tuple[Replay, list[tuple[float, str, str]]]:
    """Replay ``log`` through the cart design up to ``until``: the replay and its sends as
    ``(at, customer, key)``."""
    sends: list[tuple[float, str, str]] = []
    replay = Replay(load_program(), on_send=lambda at, who, s: sends.append((at, s.customer, s.key)))
    with log.open("rb") as stream:
        replay.feed(in_time_order(SegmentLog(stream, "refuse")))
    replay.finish(until)
    return replay, sends


def equality_log() -> list[dict[str, Any]]:
    """Forty customers over two days from ``T0``: identifies, carts, page views, some purchases at
    once and some later, a click on a reminder, a visitor who identifies later (a merge)."""
    start = datetime.fromtimestamp(T0, UTC)
    calls = []
    for i in range(40):
        who, t = f"c{i}", start + timedelta(minutes=37 * i)
        calls.append(identify(who, t.isoformat()))
        calls.append(track(who, "page_view", (t + timedelta(seconds=20)).isoformat()))
        calls.append(track(who, "cart_add", (t + timedelta(seconds=40)).isoformat(), value=25 + i))
        if i % 3 == 0:
            calls.append(track(who, "purchase", (t + timedelta(minutes=20)).isoformat(), value=25 + i))
        elif i % 3 == 1:
            calls.append(track(who, "purchase", (t + timedelta(hours=30)).isoformat(), value=25 + i))
    calls.append(click("c2", (start + timedelta(minutes=74, hours=1, seconds=50)).isoformat()))
    visit = start + timedelta(hours=5)
    calls.append({"type": "track", "anonymousId": "v1", "event": "cart_add", "timestamp": visit.isoformat(),
                  "messageId": "v1-cart", "properties": {"value": 90}})
    calls.append({"type": "identify", "userId": "c99", "anonymousId": "v1", "messageId": "v1-id",
                  "timestamp": (visit + timedelta(minutes=10)).isoformat(),
                  "traits": {"email": "c99@example.com"}})
    return sorted(calls, key=lambda call: call["timestamp"])


def test_the_command_writes_the_bundle_and_compares_two_designs_over_the_same_history(tmp_path):
    nobody = {"type": "track", "event": "e", "timestamp": at()}
    ada_buys = track("ada", "purchase", at(hours=2), value=60)  # (after her first reminder)
    log = write_log(tmp_path / "log.ndjson", [*hand_log(), ada_buys, nobody])
    out = tmp_path / "out"
    done = touchpoint("replay", str(log), "--scenario", str(CART_SCENARIO), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "line 12: userId" in done.stderr  # the malformed line, by number
    rows = list(csv.DictReader((out / "sends.csv").open()))
    assert [(r["at"], r["customer"], r["channel"]) for r in rows][:2] == [
        ("2026-03-02T11:00:05Z", "ada", "email"), ("2026-03-02T11:02:05Z", "dee", "email")]
    blocked = list(csv.DictReader((out / "suppressed.csv").open()))
    assert [(r["customer"], r["rule"], r["deferred_until"]) for r in blocked] == [
        ("cy", "quiet_hours", "2026-03-03T08:00:00Z")]
    m = json.loads((out / "metrics.json").read_text())
    assert m["kind"] == "replay" and m["log"]["malformed"] == 1
    reason = "userId: userId or anonymousId is required"
    assert m["log"]["malformed_lines"] == [{"line": 12, "reason": reason}]
    assert m["messages"]["total"] == 5 and m["customers"] == 4
    converted = {r["customer"]: r for r in csv.DictReader((out / "conversions.csv").open())}
    assert converted["bob"]["path"] == converted["bob"]["touches"] == ""  # (he bought before any send)
    assert (converted["ada"]["path"], converted["ada"]["touches"]) == (
        "email", "2026-03-02T11:00:05Z sent email cart_reminder (cart_abandonment)")
    assert "Touchpoint replay" in (out / "report.html").read_text()

    variant = tmp_path / "no_sms.toml"
    variant.write_text(CART_SCENARIO.read_text().replace('name = "cart_abandonment"', 'name = "no_sms"')
                       .replace('on_timeout = "sms"', 'on_timeout = "end"'))
    both = tmp_path / "both"
    done = touchpoint("replay", str(log), "--scenario", str(CART_SCENARIO), "--compare", str(variant),
                      "--out", str(both), "-q")
    assert done.returncode == 0, done.stderr
    c = json.loads((both / "metrics.json").read_text())
    assert [d["design"] for d in c["designs"]] == ["cart_abandonment", "no_sms"]
    difference = c["differences"][0]
    assert difference["by_channel"] == {"email": 0, "sms": -1}
    assert difference["customers_whose_messages_differ"] == 1
    assert difference["customers_messaged_only_here"] == 0
    assert difference["customers_messaged_only_by_baseline"] == 0
    assert (both / "no_sms" / "sends.csv").is_file() and (both / "replay_designs.png").is_file()


@pytest.mark.parametrize(("arguments", "words"), [
    (["missing.ndjson", "--scenario", "cart_abandonment"], "no such file"),
    (["LOG", "--scenario", "cart_abandonment", "--malformed", "maybe"], "--malformed"),
    (["LOG", "--scenario", "cart_abandonment", "--after", "soon"], "--after"),
    (["LOG", "--scenario", "cart_abandonment", "--malformed", "refuse"], "line 2"),
    (["LOG", "--scenario", "cart_abandonment", "--malformed", "refuse", "--workers", "2"], "line 2"),
    (["LOG", "--scenario", "nonesuch"], "invalid scenario"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, arguments, words):
    log = tmp_path / "log.ndjson"
    log.write_text(json.dumps(identify("ada", at())) + "\n{oops\n")
    arguments = [str(log) if a == "LOG" else a for a in arguments]
    done = touchpoint("replay", *arguments, "--out", str(tmp_path / "o"))
    assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr


def test_serve_archive_writes_what_it_accepts_and_replay_reads_it(tmp_path):
    """A real ``touchpoint serve --archive``: the calls it accepted (a single call and a batch),
    and none it refused, are in DATA/archive.ndjson, which ``touchpoint replay`` runs a design over."""
    now = datetime.now(UTC).isoformat()  # (events stamped hours back would be only recorded, both ways)
    carts = [track("ada", "cart_add", now, value=60), track("bob", "cart_add", now, value=25)]
    process, url = start(tmp_path / "data", "--archive")
    try:
        one = httpx.post(f"{url}/v1/identify", json=identify("ada", now), auth=(KEY, ""), timeout=30)
        batch = httpx.post(f"{url}/v1/batch", json={"batch": carts}, auth=(KEY, ""), timeout=30)
        refused = httpx.post(f"{url}/v1/track", json={"event": "no one"}, auth=(KEY, ""), timeout=30)
        assert (one.status_code, batch.status_code, refused.status_code) == (200, 200, 400)
    finally:
        stop(process, signal.SIGTERM)
    archive = tmp_path / "data" / "archive.ndjson"
    archived = [json.loads(line) for line in archive.read_text().splitlines()]
    assert [(c["type"], c["userId"]) for c in archived] == [("identify", "ada"), ("track", "ada"),
                                                            ("track", "bob")]
    assert all("receivedAt" in c and "writeKey" not in c for c in archived)
    assert all("timestamp" not in c.get("properties", {}) for c in archived)  # (as the client sent them)
    done = touchpoint("replay", str(archive), "--scenario", "cart_abandonment", "--out", str(tmp_path / "r"),
                      "-q")
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["journeys"]["cart_abandonment"]["entrants"] == 2 and metrics["log"]["malformed"] == 0


def sharded_log() -> list[Any]:
    """``equality_log`` with what sharding must keep whole: visitors who identify later (their
    history joins the known customer's), an alias, a batch, a retry, a malformed line."""
    calls: list[Any] = equality_log()
    start = datetime.fromtimestamp(T0, UTC)
    for i in range(12):
        visit = (start + timedelta(hours=2, minutes=13 * i)).isoformat()
        calls.append({"type": "track", "anonymousId": f"visitor{i}", "event": "cart_add", "timestamp": visit,
                      "messageId": f"vc{i}", "properties": {"value": 40 + i}})
        later = (start + timedelta(hours=3, minutes=13 * i)).isoformat()
        calls.append({"type": "identify", "userId": f"known{i}", "anonymousId": f"visitor{i}",
                      "timestamp": later, "messageId": f"vi{i}",
                      "traits": {"email": f"known{i}@example.com"}})
    alias_at = (start + timedelta(hours=6)).isoformat()
    calls.append({"type": "alias", "userId": "known0", "previousId": "c5", "timestamp": alias_at,
                  "messageId": "al"})
    calls = sorted(calls, key=lambda call: call["timestamp"])
    calls[10:14] = [{"batch": calls[10:14]}]
    calls.insert(20, calls[19])  # (a client's retry)
    calls.insert(30, "{ not json")
    return calls


def test_a_replay_shared_among_processes_gives_what_one_process_gives(tmp_path):
    log = tmp_path / "log.ndjson"
    log.write_text("".join((c if isinstance(c, str) else json.dumps(c)) + "\n" for c in sharded_log()))
    scenario = load_scenario("cart_abandonment")
    one = replay_log(scenario, log, tmp_path / "one", workers=1)
    two = replay_log(scenario, log, tmp_path / "two", workers=2, source="cart_abandonment")
    for table in TABLES:
        rows = [sorted((tmp_path / run / table).read_text().splitlines()) for run in ("one", "two")]
        assert rows[0] == rows[1] and len(rows[0]) > 3, table
    assert two.messaged == one.messaged and len(one.messaged) > 20

    def rounded(value: Any) -> Any:  # (sums of money added in another order differ in the last digits)
        if isinstance(value, float):
            return round(value, 6)
        if isinstance(value, dict):
            return {k: rounded(v) for k, v in value.items()}
        return [rounded(v) for v in value] if isinstance(value, list) else value

    assert rounded(two.metrics) == rounded(one.metrics)
    assert one.metrics["log"]["malformed"] == 1 and one.metrics["log"]["duplicates"] == 1


def test_identity_links_join_the_ids_whatever_the_blocks(monkeypatch):
    data = "".join(json.dumps(c) + "\n" for c in sharded_log() if not isinstance(c, str)).encode()
    whole = identity_links(io.BytesIO(data))
    joined = {whole.get(identity, identity) for identity in ("c5", "known0", "visitor0")}
    assert len(joined) == 1 and len(whole) == 14  # (13 visitors identify, one alias: each joins an id)
    monkeypatch.setattr(archive_module, "BLOCK_BYTES", 97)  # (lines cut across blocks)
    assert identity_links(io.BytesIO(data)) == whole


def test_a_late_event_converts_an_entry_whose_window_just_closed_and_no_null_path_is_counted():
    t0 = MONDAY.timestamp()

    def stamp(at: float) -> str:
        return datetime.fromtimestamp(at, UTC).isoformat()

    calls = [{**identify("ada", stamp(t0)), "receivedAt": stamp(t0)},
             {**track("ada", "cart_add", stamp(t0 + 5), value=60), "receivedAt": stamp(t0 + 5)},
             # bought just inside the 7-day window, reported an hour after it closed (within 6 hours)
             {**track("ada", "purchase", stamp(t0 + 7 * DAY - 3600), value=60),
              "receivedAt": stamp(t0 + 7 * DAY + 3600)}]
    replay, _ = replay_calls(calls)
    paths = replay.metrics.paths.to_dict()["cart_abandonment"]["paths"]
    assert paths == [["email > email > sms", 1, 60.0, 0]]


def test_a_call_without_its_arrival_is_placed_at_its_timestamp_corrected_once():
    # Segment's ``timestamp`` is corrected already: with sentAt and originalTimestamp beside it, the
    # event is still at 08:00, not corrected again to 06:00
    call = {"type": "track", "userId": "ada", "event": "e", "timestamp": at(hours=-2), "sentAt": at(),
            "originalTimestamp": at(hours=-2), "messageId": "m"}
    (received, [entry]), = list(SegmentLog(io.BytesIO(json.dumps(call).encode() + b"\n")))
    assert received == entry.message.properties["timestamp"] == (MONDAY - timedelta(hours=2)).timestamp()


def test_a_retry_is_applied_once_within_24_hours_and_again_after():
    calls = [identify("ada", at()), {**track("ada", "page_view", at(minutes=1)), "messageId": "same"},
             {**track("ada", "cart_add", at(minutes=30), value=60), "messageId": "same"},  # a retry: dropped
             {**track("ada", "cart_add", at(days=3), value=60), "messageId": "same"}]  # days later: applied
    replay, _ = replay_calls(calls)
    journey = replay.metrics.to_dict()["journeys"]["cart_abandonment"]
    assert replay.duplicates == 1 and journey["entrants"] == 1


def test_replay_keeps_the_edges_limits_on_a_call_and_a_batch():
    big = {**identify("ada", at()), "traits": {"bio": "x" * 40_000}}  # (past the limit and the log's room)
    many = {"batch": [track(f"u{i}", "e", at()) for i in range(2_501)]}
    log = SegmentLog(io.BytesIO(json.dumps(big).encode() + b"\n" + json.dumps(many).encode() + b"\n"))
    assert list(log) == []
    assert [e.reason.split(";")[0] for e in log.errors] == ["line: call of 40,151 bytes",
                                                            "batch: 2,501 events"]
