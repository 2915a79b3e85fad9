"""Broadcasts and scheduled entry in the simulation (the built-in ``broadcast_targeting``): a
scheduled journey is entered at 10:00 in each customer's local time, only by its segment's
members, and not by a customer in the middle of the triggered journey (counted as skipped)."""

from __future__ import annotations

from collections import defaultdict

import pytest
from typer.testing import CliRunner

from actors.messages import Entered, Exited, Segmented, Suppressed
from engine.cli import app
from engine.runtime.simulation import Simulation
from engine.scenario_files import load_scenario

DAY = 86400.0


@pytest.fixture(scope="module")
def run():
    scenario = load_scenario("broadcast_targeting").variant("triggered_and_likely")
    trace: list = []
    sim = Simulation(scenario, customers=4_000, days=29, seed=4, trace=trace)
    sim.run()
    return sim, trace


def test_a_broadcast_enters_only_members_at_their_local_ten_and_skips_the_active(run):
    sim, trace = run
    tz = {actor.profile.customer_id: actor.profile.tz_offset for actor in sim.actors if actor is not None}
    member: dict[str, bool] = defaultdict(bool)
    in_cart: dict[str, bool] = defaultdict(bool)
    entered = skipped = 0
    for at, customer, effect in trace:
        if isinstance(effect, Segmented) and effect.segment == "likely_buyer":
            member[customer] = effect.entered
        elif isinstance(effect, Entered) and effect.journey == "cart_abandonment":
            in_cart[customer] = not effect.holdout
        elif isinstance(effect, Exited) and effect.journey == "cart_abandonment":
            in_cart[customer] = False
        elif isinstance(effect, Entered) and effect.journey == "weekly_likely":
            entered += 1
            assert member[customer] and not in_cart[customer]
            assert (at + tz[customer]) % DAY == pytest.approx(10 * 3600)
        elif isinstance(effect, Suppressed) and effect.rule == "active_journey":
            skipped += 1
            assert effect.journey == "weekly_likely" and member[customer] and in_cart[customer]
    assert entered > 300 and skipped > 5
    metrics = sim.metrics.to_dict()
    assert metrics["suppressed"]["by_rule"]["active_journey"] == skipped
    assert metrics["journeys"]["weekly_all"]["entrants"] == 0  # switched off in this design


def test_scores_go_to_every_actor_daily_and_segment_sizes_add_up(run):
    sim, _ = run
    metrics = sim.metrics.to_dict()
    assert metrics["scoring"]["passes"] == 28 and metrics["scoring"]["staleness_s"] == DAY
    assert metrics["scoring"]["fits"] and metrics["scoring"]["fits"][0]["at"] == 8 * DAY
    members = sum(1 for a in sim.actors if a is not None and a.segments is not None
                  and a.segments.members & sim.scenario.program.segment_bits["likely_buyer"])
    assert metrics["segments"]["likely_buyer"]["members"] == members > 0


def test_the_run_says_its_segments_and_scores_in_text_and_in_the_report(tmp_path):
    out = tmp_path / "run"
    done = CliRunner().invoke(app, ["run", "broadcast_targeting", "--customers", "2000", "--days", "15",
                                    "--seed", "3", "--out", str(out)], env={"COLUMNS": "200"})
    assert done.exit_code == 0, done.output
    assert "segment likely_buyer:" in done.output and "segment cart_open:" in done.output
    assert "scores: 14 passes, at most 24 h old; BG/NBD fitted 1 times, last r " in done.output
    page = (out / "report.html").read_text()
    assert "<h2>Segments</h2>" in page and "<h2>Scores</h2>" in page and ">likely_buyer<" in page


def test_validate_names_the_switched_off_journeys_the_segments_and_the_variants():
    done = CliRunner().invoke(app, ["validate", "broadcast_targeting"], env={"COLUMNS": "300"})
    assert done.exit_code == 0, done.output
    assert "weekly_all (2 steps, switched off)" in done.output
    said = done.output.replace("\n", "")
    assert "segments likely_buyer, cart_open;" in said
    assert "variants broadcast_all, broadcast_likely, triggered_and_likely" in said
