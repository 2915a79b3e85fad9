"""The engine's calendar in real time (``engine.runtime.calendar.keep_calendar``), on trio's
``MockClock`` from ``T0`` (Tuesday 2023-11-14, 10:00 UTC): a weekly broadcast counted from
1970-01-01 (every 7 days from day 1: Fridays) reaches each customer at 10:00 in their own time
zone, and a scoring pass at start scores the customers who bought, through the log, and a later pass sends
only the scores that changed."""

from __future__ import annotations

from datetime import UTC, datetime

import trio
import trio.testing
from harness import DAY, T0, compile_toml
from serving import KEY, run_against_app

from actors.messages import Scored
from engine.lab.scoring import Scoring
from engine.runtime.calendar import keep_calendar, next_moments
from engine.storage.wal import WriteAheadLog

SCENARIO = """
[scores]
every = "1d"

[[journeys]]
id = "weekly"
entry = { schedule = { every = "7d", first = "1d", at = "10:00" } }
reentry = "6d"
start = "newsletter"
[journeys.steps.newsletter]
send = { message = "newsletter", channel = "email" }
next = "end"
[journeys.steps.end]
end = true
"""
FRIDAY = datetime(2023, 11, 17, tzinfo=UTC).timestamp()


def test_a_weekly_broadcast_reaches_each_customer_at_ten_local_and_scores_go_through_the_log(tmp_path):
    program = compile_toml(SCENARIO)
    clock = trio.testing.MockClock()
    moments = {wake.kind: at for at, wake in next_moments(program, T0)}
    assert moments == {"entry": FRIDAY, "score": T0 - 10 * 3600 + DAY}  # (day 1 of 1970: a Friday)

    async def script(client, runtime):
        calls = [
            {"type": "identify", "userId": "ada",
             "traits": {"email": "a@example.com", "timezone": "Asia/Tokyo"}},
            {"type": "identify", "userId": "bo", "traits": {"email": "b@example.com"}},
            {"type": "track", "userId": "bo", "event": "purchase", "properties": {"value": 20}},
        ]
        assert (await client.post("/v1/batch", json={"writeKey": KEY, "batch": calls})).status_code == 200
        scoring = Scoring.of(program.scoring)
        assert scoring is not None

        async def settled() -> None:
            """Until the pass due by now is done (it is computed in a thread, which the mock
            clock does not wait for) and the calendar waits again."""
            await trio.testing.wait_all_tasks_blocked()
            due = max(T0, runtime.now() - runtime.now() % DAY)
            while scoring.last_pass is None or scoring.last_pass < due:
                await trio.sleep(0)  # (mock time stands still; the thread runs meanwhile)
            await trio.testing.wait_all_tasks_blocked()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(keep_calendar, runtime, scoring)
            await settled()
            for _ in range(4 * 24):  # four days, an hour at a time
                clock.jump(3600)
                await settled()
            nursery.cancel_scope.cancel()
        sent = {send.customer: at for at, send in runtime.channel.delivered if send.message == "newsletter"}
        assert sent == {"ada": FRIDAY + 3600.0, "bo": FRIDAY + 10 * 3600.0}  # 10:00 JST, 10:00 UTC
        assert runtime.actor("bo").profile.scores is not None
        # a pass at start and one each midnight, Friday's too (the broadcast's moment as well)
        assert scoring.passes == 5

    runtime = run_against_app(tmp_path, script, clock=clock, program=program)
    logged = [(cid, m) for _, _, cid, m, _ in WriteAheadLog(runtime.log.directory, fsync="none").replay()]
    # the pass at start scored bo, the one buyer; the four midnight passes since changed nothing
    assert [cid for cid, m in logged if isinstance(m, Scored)] == ["bo"]
