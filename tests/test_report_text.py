"""The report's words and page: what a marketer reads must say what the numbers are.

The rules checked here: no number prints as ``-0.0``; an interval that includes zero is said to
(never "adds 1.7 points ... not distinguishable from no effect"); every difference carries its
unit; designs that tie to the precision shown are named as tying; deferred sends are counted
apart from skipped ones; entries are said to be journey entries; each figure has a caption that
says what it shows, placed beside the table it illustrates; and the funnel names the channel a
send step uses (a variant may make a step named ``push`` send email). A compare draws, design
against design, the figures its data supports (over time, pressure, blocked sends, agent queues),
and a bundle older than them still redraws without them.
"""

from __future__ import annotations

import copy
import io
import json
import re

import matplotlib.image
import pytest

from engine.lab.runs import Design, Job, simulate
from reports.bundle import rebuild, write_bundle
from reports.compare_figures import holdout_drawn
from reports.comparison import DesignResult, compare
from reports.figure_facts import step_label
from reports.figures import run_figures
from reports.html import blocked_words, lift_words, report_html, run_reading
from reports.lab_figures import compare_figures
from reports.paired import Difference, phrase, signed

CART = "cart_abandonment"
NEGATIVE_ZERO = re.compile(r"-0\.0+(?![0-9])")  # -0.0, -0.00, but not -0.04


@pytest.fixture(scope="module")
def runs() -> dict[str, object]:
    """Small runs of the cart scenario and two of its variants, on the same customers."""
    designs = {CART: Design(CART, CART), "email_first": Design("email_first", CART, "email_first"),
               "no_sms": Design("no_sms", CART, "no_sms")}
    return {name: simulate(Job(design, 2_000, 14.0, 1)) for name, design in designs.items()}


@pytest.fixture(scope="module")
def compared(runs: dict) -> dict:
    """A compare's metrics.json content, as the command line writes it."""
    results = [DesignResult(name, f"the {name} design", [r.metrics], [r.outcomes])
               for name, r in runs.items()]
    return {"kind": "compare", "scenario": CART, "customers": 2_000, "days": 14.0, "seed": 1,
            "replications": 1, **compare(results)}


# -- numbers and differences in words ---------------------------------------------------------------


@pytest.mark.parametrize("value", [-0.04, -0.0, 0.0, 0.049, -1e-12])
def test_what_rounds_to_zero_prints_as_an_unsigned_zero(value):
    assert signed(value) == "0.0"
    assert signed(value / 10, 2) == "0.00"


def test_signed_numbers_keep_their_sign_and_separators():
    assert (signed(-0.3), signed(1234.56), signed(-2.2, 2)) == ("-0.3", "+1,234.6", "-2.20")


def test_an_interval_clear_of_zero_gets_the_digits_to_show_it():
    words = phrase(Difference(-0.284, -0.546, -0.021, 4.4), "{n} points {word}")
    assert words == "0.28 points less [-0.55, -0.02]"


def test_an_interval_across_zero_says_about_the_same_with_its_unit():
    words = phrase(Difference(-0.1, -0.2, 0.004, 1.0), "{n} points {word}", unit="points")
    assert words == "about the same (-0.1 points [-0.2, 0.0])"


def test_the_journeys_lift_says_when_its_interval_includes_zero():
    unclear = lift_words({"lift": 0.017, "lift_ci95_low": -0.009, "lift_ci95_high": 0.043})
    assert unclear == ("the measured lift is +1.7 points [-0.9, +4.3]: the interval includes zero, so at "
                       "this size it cannot be told from no effect")
    clear = lift_words({"lift": 0.012, "lift_ci95_low": 0.004, "lift_ci95_high": 0.020})
    assert clear == "the journey raises conversion by 1.2 points [+0.4, +2.0]"


# -- a run's reading ---------------------------------------------------------------------------------


def test_deferred_sends_are_counted_apart_from_skipped_ones():
    suppressed = {"total": 2_780, "by_rule": {"quiet_hours": 673, "unreachable": 2_107},
                  "deferred_by_rule": {"quiet_hours": 673}}
    assert blocked_words(suppressed) == ("2,107 sends skipped by a rule; 673 delayed by quiet hours and "
                                         "tried again later.")
    nothing = {"total": 0, "by_rule": {}, "deferred_by_rule": {}}
    assert blocked_words(nothing) == "No send was blocked by a rule."


def test_a_runs_reading_speaks_of_journey_entries_and_blocked_sends(runs):
    metrics = runs[CART].metrics
    lines = run_reading(metrics)
    assert f"{metrics['journeys'][CART]['entrants']:,} journey entries from 2,000 customers" in lines[0]
    assert "may enter again after the re-entry period" in lines[0]
    assert "sends suppressed" not in " ".join(lines)
    assert not NEGATIVE_ZERO.search(" ".join(lines))


# -- a compare's reading -----------------------------------------------------------------------------


def test_every_difference_in_a_compare_carries_its_unit_and_no_negative_zero(compared):
    reading = " ".join(compared["reading"])
    assert not NEGATIVE_ZERO.search(reading), reading
    assert "costs" not in reading  # (opt-outs are "had", with their unit)
    for difference in compared["differences"]:
        converts, sends, earns = difference["sentences"]
        assert "opt-outs per 1,000 customers" in converts
        assert "messages per customer" in sends and "per customer" in earns


def test_designs_that_tie_to_the_shown_precision_are_named_as_tying(runs):
    same = runs[CART]
    result = compare([DesignResult("a", "", [same.metrics], [same.outcomes]),
                      DesignResult("b", "", [same.metrics], [same.outcomes])])
    assert result["best_per_message"]["tied_with"] == ["b"]
    assert " a and b tie at " in result["reading"][0]
    # identical lifts, each with a wide interval: the holdout cannot rank them, and the reading says so
    assert "cannot tell the designs apart" in result["reading"][1]


# -- the funnel names its channels -------------------------------------------------------------------


def test_a_send_step_is_shown_with_the_channel_it_sends_by(runs):
    email_first = {r["step"]: r for r in runs["email_first"].metrics["journeys"][CART]["funnel"]}
    assert email_first["push"]["channels"] == ["email"]
    assert step_label(email_first["push"]) == "push (sends email)"
    base = {r["step"]: r for r in runs[CART].metrics["journeys"][CART]["funnel"]}
    assert step_label(base["push"]) == "push (sends best of push/email)"
    assert step_label(base["wait_1h"]) == "wait_1h"


def test_the_entry_day_series_ends_at_the_tables_rate(runs):
    metrics = runs[CART].metrics
    days = metrics["series"]["journeys"][CART]
    complete = days["complete_days"]
    assert complete == 7  # (14 days, a 7-day goal window)
    for group in ("treated", "holdout"):
        table = metrics["journeys"][CART][group]
        assert sum(days["entrants"][group][:complete]) == table["entrants_complete"]
        assert sum(days["conversions_by_entry_day"][group][:complete]) == table["conversions_complete"]


# -- the pages ----------------------------------------------------------------------------------------


def _captions(page: str) -> list[str]:
    return re.findall(r"<figcaption>(.*?)</figcaption>", page)


def test_a_run_page_shows_each_figure_with_a_caption_beside_its_table(runs):
    metrics = {"kind": "run", **runs[CART].metrics}
    figures = run_figures(metrics)
    page = report_html(metrics, figures)
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    captions = _captions(page)
    assert len(captions) == len(figures)
    assert all(not c.endswith(".png") and len(c.split()) > 8 for c in captions), captions
    funnel_table = page.index("<h2>Funnel: cart_abandonment</h2>")
    assert funnel_table < page.index('alt="funnel_cart_abandonment.png"') < page.index("<h2>Messages")
    assert "Other figures" not in page
    assert not NEGATIVE_ZERO.search(re.sub(r"base64,[^\"]*", "", page))
    assert "revenue: in the scenario&#x27;s currency units (the scenario names no currency)" in page


def test_a_compare_page_names_the_scenario_once_and_lists_the_designs(compared):
    page = report_html(compared, compare_figures(compared))
    assert f"<h1>Touchpoint compare: {CART}</h1>" in page
    assert "<li><b>email_first</b>: the email_first design</li>" in page
    assert page.count("<h2>Funnel:") == 1  # one table per journey, the designs side by side
    assert f"Funnel: {CART}, {CART}" not in page
    assert "independent ones" in page and "paired differences figure" in page
    assert not NEGATIVE_ZERO.search(re.sub(r"base64,[^\"]*", "", page))
    assert '<span class="pair">' in page and 'class="wide"' in page


def test_a_run_that_holds_everyone_out_says_so_with_the_holdout_rate():
    journey = {"entrants": 120, "treated": {"entrants": 0, "rate": None},
               "holdout": {"entrants": 120, "rate": 0.4}, "lift": {"lift": None}}
    metrics = {"customers": 100, "journeys": {"cart": journey},
               "messages": {"total": 0, "per_customer": {"mean": 0.0}},
               "opt_outs": {"total": 0, "per_1000_customers": 0.0},
               "suppressed": {"total": 0, "by_rule": {}, "deferred_by_rule": {}}}
    reading = run_reading(metrics)
    assert "every entry is held out" in reading[0] and "40.0% of them converted" in reading[0]


# -- a compare's figures over time and under pressure ---------------------------------------------------

OVER_TIME = ("conversions_over_time.png", "messages_by_channel.png", "pressure.png", "suppressions.png")
QUEUE = {"agents": 2, "cases": 120, "answered": 114, "abandoned": 6, "abandonment_rate": 0.05,
         "wait_mean_s": 14.0, "wait_p90_s": 40.0, "first_response_mean_s": 30.0, "first_response_p90_s": 70.0,
         "service_level": 0.9, "service_level_target_s": 60.0, "handle_time_mean_s": 400.0,
         "resolution_mean_s": 420.0, "resolution_p90_s": 900.0, "occupancy": 0.2, "backlog_at_end": 0}


def _decoded(png: bytes) -> tuple[int, ...]:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    return tuple(matplotlib.image.imread(io.BytesIO(png), format="png").shape)


def test_a_compare_draws_each_design_over_time_beside_the_table_it_illustrates(compared):
    figures = compare_figures(compared)
    assert set(OVER_TIME) <= set(figures) and "agents.png" not in figures  # (the cart has no agents)
    for name in OVER_TIME:
        height, width, _ = _decoded(figures[name])
        assert height > 300 and width > 600, name
    assert holdout_drawn(compared) == "shared"  # (common random numbers: the same holdout in every design)
    page = report_html(compared, figures)
    assert "Other figures" not in page and len(_captions(page)) == len(figures)
    assert "the same entries in every design" in page
    assert page.index('alt="designs.png"') < page.index('alt="conversions_over_time.png"') < page.index(
        "<h2>Against the baseline")
    by_design, funnel = page.index("<h2>By design</h2>"), page.index("<h2>Funnel:")
    assert all(by_design < page.index(f'alt="{name}"') < funnel for name in OVER_TIME[1:])


def test_agent_queues_are_drawn_and_tabled_design_by_design_when_a_design_has_them(compared):
    queued = copy.deepcopy(compared)
    for i, run in enumerate(queued["runs"]):
        run["metrics"]["agents"] = {"support": {**QUEUE, "agents": 1 + i}}
    figures = compare_figures(queued)
    _decoded(figures["agents.png"])
    page = report_html(queued, figures)
    assert "<h2>Agent queues, design by design</h2>" in page and "90.00% in 60 s" in page
    assert page.index("<h2>Agent queues") < page.index('alt="agents.png"') < page.index("<h2>Funnel:")


def test_holdouts_that_differ_are_drawn_once_per_design(compared):
    apart = copy.deepcopy(compared)
    days = apart["runs"][1]["metrics"]["series"]["journeys"][CART]
    days["conversions_by_entry_day"]["holdout"][0] += 1
    assert holdout_drawn(apart) == "each"
    _decoded(compare_figures(apart)["conversions_over_time.png"])
    assert "each against its own holdout" in report_html(apart, compare_figures(apart))


def test_a_compare_bundle_without_the_newer_data_still_redraws(compared, tmp_path):
    old = copy.deepcopy(compared)
    for run in old["runs"]:
        for key in ("series", "pressure", "fatigue", "agents"):
            run["metrics"].pop(key, None)
        run["metrics"]["suppressed"] = {"total": 0, "by_rule": {}}  # (nothing blocked, and no deferrals)
    write_bundle(tmp_path, old)
    page = rebuild(tmp_path).read_text()
    assert sorted(p.name for p in tmp_path.glob("*.png")) == sorted(
        ["designs.png", "differences.png", f"funnel_{CART}.png"])
    assert "Other figures" not in page and "<h2>By design</h2>" in page
    assert json.loads((tmp_path / "metrics.json").read_text())["kind"] == "compare"

