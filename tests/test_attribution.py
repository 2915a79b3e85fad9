"""Attribution models against values worked by hand (REFERENCE.md section 3), and ``touchpoint
attribute`` on path tables."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import trio
import trio.testing
from harness import ROOT
from serving import ADMIN, KEY, run_against_app

from reports.attribution import (
    PathRow,
    attribute,
    decay_weights,
    markov,
    position_weights,
    shapley,
    shapley_by_subsets,
)

SMALL = [PathRow(("A", "B"), 1, 10), PathRow(("B",), 1, 10, 1), PathRow(("A",), 0, 0, 2)]


def test_position_based_and_time_decay_on_the_toy_paths():
    assert position_weights(4) == pytest.approx([0.4, 0.1, 0.1, 0.4])
    assert decay_weights([21, 14, 7, 0]) == pytest.approx([1 / 15, 2 / 15, 4 / 15, 8 / 15])  # 0.0667 ...
    assert [round(w, 4) for w in decay_weights([21, 14, 7, 0])] == [0.0667, 0.1333, 0.2667, 0.5333]
    credit = attribute([PathRow(("A", "B", "C", "D"), 10)], ["position", "time_decay"])
    assert credit["position"] == pytest.approx({"A": 4, "B": 1, "C": 1, "D": 4})
    assert credit["time_decay"] == pytest.approx({"A": 10 / 15, "B": 20 / 15, "C": 40 / 15, "D": 80 / 15})


def test_the_heuristics_on_a_small_table_worked_by_hand():
    # A > B converts once; B converts once (and ends once without); A ends twice without
    credit = attribute(SMALL, ["first", "last", "linear", "position"])
    assert credit["first"] == {"A": 1.0, "B": 1.0}
    assert credit["last"] == {"A": 0.0, "B": 2.0}
    assert credit["linear"] == {"A": 0.5, "B": 1.5}
    assert credit["position"] == {"A": 0.5, "B": 1.5}  # (two touches: half each)
    assert attribute(SMALL, ["first"], value=True)["first"] == {"A": 10.0, "B": 10.0}


def test_the_exact_markov_removal_effect_on_a_chain_solved_by_hand():
    # start -> A 3/5, start -> B 2/5; A -> B 1/3, A -> null 2/3; B -> conversion 2/3, null 1/3
    # P(conv) = 3/5 * 1/3 * 2/3 + 2/5 * 2/3 = 6/15. Without A: 2/5 * 2/3 = 4/15, so RE_A = 1/3;
    # without B nothing converts, RE_B = 1. Credits: 2 * (1/3) / (4/3) = 0.5 and 2 * 1 / (4/3) = 1.5
    assert markov(SMALL) == pytest.approx({"A": 0.5, "B": 1.5})
    # converting paths only: start -> A 1/2, -> B 1/2; A -> B; B -> conversion. P = 1;
    # without A: 1/2 (RE 1/2); without B: 0 (RE 1): credits 2/3 and 4/3
    assert markov(SMALL, nulls=False) == pytest.approx({"A": 2 / 3, "B": 4 / 3})
    # repeats collapse: A > A > B is A > B
    assert markov([PathRow(("A", "A", "B"), 1), *SMALL[1:]]) == pytest.approx(markov(SMALL))


def test_markov_of_a_higher_order_credits_the_whole_total():
    rows = [PathRow(("A", "B", "C"), 3, nulls=1), PathRow(("B", "C"), 2, nulls=2),
            PathRow(("C", "A"), 1, nulls=3), PathRow(("A",), 0, nulls=4)]
    for order in (1, 2, 3):
        credit = markov(rows, order=order)
        assert sum(credit.values()) == pytest.approx(6) and all(v >= 0 for v in credit.values())
    assert markov(rows, order=2) != pytest.approx(markov(rows, order=1))


def test_shapley_sums_to_the_conversions_and_equals_the_sum_over_coalitions():
    rows = [PathRow(("A", "B", "C"), 3), PathRow(("B", "C"), 2), PathRow(("C", "D", "A", "C"), 1.5),
            PathRow(("D",), 4), PathRow(("B", "A"), 0.5, nulls=9)]
    fast, slow = shapley(rows), shapley_by_subsets(rows)
    assert sum(fast.values()) == pytest.approx(11)
    assert fast == pytest.approx(slow)
    assert fast == pytest.approx({"A": 1 + 0.5 + 0.25, "B": 1 + 1 + 0.25, "C": 1 + 1 + 0.5, "D": 0.5 + 4})


def run(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engine", "attribute", *arguments], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)


def test_the_command_prints_a_table_and_writes_every_model(tmp_path):
    table = tmp_path / "paths.csv"
    table.write_text("path;total_conversions;total_conversion_value;total_null\n"
                     "A > B;1;10;0\nB;1;10;1\nA;0;0;2\n")
    done = run(str(table), "--out", str(tmp_path / "r.json"))
    assert done.returncode == 0, done.stderr
    assert "markov" in done.stdout and "shapley" in done.stdout
    result = json.loads((tmp_path / "r.json").read_text())
    assert set(result) == {"first", "last", "linear", "position", "time_decay", "markov", "shapley"}
    assert result["markov"] == pytest.approx({"A": 0.5, "B": 1.5})
    done = run(str(table), "--model", "last,markov", "--value", "--out", str(tmp_path / "v.json"))
    assert json.loads((tmp_path / "v.json").read_text())["last"] == {"A": 0.0, "B": 20.0}


HEADER = "path;total_conversions;total_conversion_value;total_null\n"


@pytest.mark.parametrize(("text", "said"), [
    ("path;total_conversions\nA > ;1\n", "row 2, column path"),
    (HEADER + "A;1;x;0\n", "row 2, column total_conversion_value"),
    ("path;total_conversions\nA;1\nB;-3\n", "row 3, column total_conversions"),
    ("path;conversions\nA;1\n", "row 1, column total_conversions: missing"),
    (HEADER + "A;1\n", "row 2, column total_conversion_value"),
    ("", "row 1"),
])
def test_a_bad_table_gets_one_line_naming_the_row_and_column_and_exit_2(tmp_path, text, said):
    table = tmp_path / "bad.csv"
    table.write_text(text)
    done = run(str(table))
    assert done.returncode == 2 and said in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_run_writes_its_paths_and_every_models_credit_and_attribute_reads_them_back(tmp_path):
    """A simulation's conversions carry the channels their entry was sent on; entries that ended
    without one are null paths. The bundle's path table, given to ``touchpoint attribute``,
    gives the credit metrics.json already holds."""
    done = subprocess.run([sys.executable, "-m", "engine", "run", "cart_abandonment", "--customers", "3000",
                           "--days", "20", "--seed", "2", "--out", str(tmp_path), "--quiet"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    attributed = metrics["attribution"]["cart_abandonment"]
    conversions = sum(row[1] for row in attributed["paths"])
    assert conversions > 50 and sum(row[3] for row in attributed["paths"]) > 50  # nulls too
    converted = metrics["journeys"]["cart_abandonment"]
    assert conversions <= converted["treated"]["conversions"]  # (those converted before any send: no path)
    for model, credit in attributed["models"].items():
        assert sum(credit.values()) == pytest.approx(conversions), model
    assert set(attributed["models"]["markov"]) <= {"push", "email", "sms"}
    done = run(str(tmp_path / "paths-cart_abandonment.csv"), "--out", str(tmp_path / "again.json"))
    assert done.returncode == 0, done.stderr
    again = json.loads((tmp_path / "again.json").read_text())
    for model, credit in attributed["models"].items():
        assert again[model] == pytest.approx(credit, rel=1e-6), model


def test_the_paths_go_into_snapshots_and_come_back():
    from reports.paths import PathTally

    tally = PathTally()
    tally.converted("cart", ("push", "email"), 30.0)
    tally.converted("cart", ("push", "email"), 20.0)
    tally.lapsed("cart", ("email",))
    tally.converted("cart", (), 99.0)  # (no send: no path)
    again = PathTally()
    again.restore(json.loads(json.dumps(tally.state())))
    assert again.to_dict() == tally.to_dict()
    assert tally.to_dict()["cart"]["paths"] == [["email", 0, 0.0, 1], ["push > email", 2, 50.0, 0]]


def test_the_service_serves_its_paths_and_the_models_credit(tmp_path):
    """Over HTTP on the mock clock: ada gets the cart reminder by email and buys (a conversion on
    the path "email"); gus gets his reminders, buys nothing, and adds a cart again a week later
    (his first entry's null path)."""
    clock = trio.testing.MockClock()

    async def script(client, runtime):
        async def call(body):
            assert (await client.post("/v1/track" if body["type"] == "track" else "/v1/identify",
                                       json={"writeKey": KEY, **body})).status_code == 200
            await trio.testing.wait_all_tasks_blocked()

        for who in ("ada", "gus"):
            await call({"type": "identify", "userId": who, "traits": {"email": f"{who}@example.com"}})
            await call({"type": "track", "userId": who, "event": "cart_add", "properties": {"value": 80}})
        bought = {"type": "track", "userId": "ada", "event": "purchase", "properties": {"value": 80}}
        for hour in range(8 * 24):  # a week and a day, an hour at a time (the journey's timers fire)
            clock.jump(3600)
            await trio.testing.wait_all_tasks_blocked()
            if hour == 1:
                await call(bought)
        await call({"type": "track", "userId": "gus", "event": "cart_add", "properties": {"value": 70}})
        answer = await client.get("/v1/attribution", headers={"authorization": f"Bearer {ADMIN}"})
        assert answer.status_code == 200
        cart = answer.json()["cart_abandonment"]
        paths = {path: (conversions, value, nulls) for path, conversions, value, nulls in cart["paths"]}
        assert paths["email"][:2] == (1, 80.0)  # ada: the reminder, then the purchase
        assert sum(nulls for _, _, nulls in paths.values()) == 1  # gus's first entry
        assert all(channel == "email" for path in paths for channel in path.split(" > "))
        assert cart["models"]["last"] == {"email": 1.0} and cart["models"]["markov"] == {"email": 1.0}
        unauthorised = await client.get("/v1/attribution")
        assert unauthorised.status_code == 401

    run_against_app(tmp_path, script, clock=clock)


def test_with_no_end_a_null_path_is_said_once_as_its_goal_window_closes_or_at_a_re_entry_before():
    from actors.messages import Converted, Entered
    from reports.paths import PathTally

    tally = PathTally({"cart": 100.0})
    for who in ("ada", "bob", "cy"):
        tally.entered(who, Entered("cart", 1, False), 0.0)
    tally.entered("dee", Entered("cart", 1, True), 0.0)  # (held out: no path, no window)
    tally.converted_entry("bob", Converted("cart", 1, False, 5.0, 10.0))  # bob converts: no null path
    tally.entered("cy", Entered("cart", 2, False, ("sms",)), 50.0)  # within cy's window: said by the entry
    assert tally.due(100.0) == []  # (a conversion at the very end of a window still counts)
    snapshot = json.loads(json.dumps(tally.open_state()))
    assert tally.due(100.5) == [("ada", "cart", 1)]  # (the runtime reads its path from ada's actor)
    tally.entered("ada", Entered("cart", 2, False, ("email",)), 200.0)  # closed and said before: not again
    assert tally.to_dict()["cart"]["paths"] == [["sms", 0, 0.0, 1]]
    again = PathTally({"cart": 100.0})
    again.restore_open(snapshot)  # (open windows are part of snapshots)
    assert again.due(100.5) == [("ada", "cart", 1)] and again.due(151.0) == [("cy", "cart", 2)]


def test_the_service_says_a_null_path_when_the_goal_window_closes(tmp_path):
    """gus gets his three reminders and never buys nor comes back: a week after his entry (and the
    6 hours in which a late event may still convert it), the next round counts his null path."""
    clock = trio.testing.MockClock()

    async def script(client, runtime):
        async def call(body):
            answer = await client.post(f"/v1/{body['type']}", json={"writeKey": KEY, **body})
            assert answer.status_code == 200
            await trio.testing.wait_all_tasks_blocked()

        traits = {"email": "gus@example.com", "phone": "+1555"}
        await call({"type": "identify", "userId": "gus", "traits": traits})
        await call({"type": "track", "userId": "gus", "event": "cart_add", "properties": {"value": 80}})
        for _ in range(7 * 24 + 7):
            clock.jump(3600)
            await trio.testing.wait_all_tasks_blocked()
        nulls_before = runtime.metrics.paths.to_dict().get("cart_abandonment", {}).get("paths", [])
        await call({"type": "identify", "userId": "zed", "traits": {"plan": "free"}})  # (any round)
        cart = (await client.get("/v1/attribution", headers={"authorization": f"Bearer {ADMIN}"})).json()
        assert nulls_before == []
        assert cart["cart_abandonment"]["paths"] == [["email > email > sms", 0, 0.0, 1]]

    run_against_app(tmp_path, script, clock=clock)
