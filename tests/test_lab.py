"""The laboratory: designs as variants, compare on the same customers, paired statistics, bundles.

Common random numbers are what make a compare sharp: a customer the designs treat alike lives the
same life in each. So a design compared with itself differs by exactly zero, and the holdout
groups (which no design sends to) of every variant of the cart scenario are identical.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib

import numpy as np
import pytest
from harness import CART_SCENARIO, JOURNEY_DESIGNS

from actors import ScenarioError
from engine.lab.runs import Design, Job, run_jobs, simulate
from engine.runtime.simulation import Simulation
from engine.scenario_files import load_scenario, scenario_from_document
from reports.bundle import figures_of
from reports.comparison import DesignResult, compare
from reports.html import report_html
from reports.paired import mean_difference, ratio_difference

CART = "cart_abandonment"


def result(design: Design, customers: int, days: float, seed: int = 1) -> DesignResult:
    run = simulate(Job(design, customers, days, seed))
    return DesignResult(design.name, "", [run.metrics], [run.outcomes])


def walk(value: object, path: str = "") -> list[tuple[str, object]]:
    """Every leaf of nested data with its path."""
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in walk(v, f"{path}.{k}")]
    if isinstance(value, (list, tuple)):
        return [leaf for i, v in enumerate(value) for leaf in walk(v, f"{path}[{i}]")]
    return [(path, value)]


# -- designs -------------------------------------------------------------------------------------


def test_each_variant_of_the_cart_scenario_changes_what_it_says():
    scenario = load_scenario(CART)
    assert set(scenario.variants) >= {"push_first", "email_first", "no_sms", "tight_cap"}
    steps = scenario.program.journeys[0].steps
    assert steps["push"].best and "sms" in steps
    push_first = scenario.variant("push_first").program.journeys[0].steps
    assert push_first["push"].channels == ("push",) and not push_first["push"].best
    email_first = scenario.variant("email_first").program.journeys[0].steps
    assert email_first["push"].channels == ("email",) and email_first["email"].channels == ("push",)
    no_sms = scenario.variant("no_sms").program.journeys[0].steps
    assert "sms" not in no_sms and no_sms["did_engage_email"].on_timeout == "end"
    tight = scenario.variant("tight_cap").program.policy.caps
    assert len(tight) == len(scenario.program.policy.caps) + 1
    assert scenario.variant("no_sms").name == "no_sms"
    assert "variants" not in scenario.document  # the design as written carries none of them


def test_settings_by_path_reach_lists_and_journeys_by_id():
    scenario = load_scenario(CART).with_settings(
        {"policy.caps.0.max": 1, "journeys.cart_abandonment.steps.wait_1h.wait": "30m"}
    )
    assert scenario.program.policy.caps[0].max == 1
    assert scenario.program.journeys[0].steps["wait_1h"].seconds == 1800.0


@pytest.mark.parametrize(
    ("variant", "words"),
    [
        ('[variants.x]\nworld.checkout_after_cart = 0.5\n', "not 'world'"),
        ('[variants.x]\njourneys.nope.holdout = 0.2\n', "no journey 'nope'"),
        ('[variants.x]\njourneys.cart_abandonment.remove_steps = ["nope"]\n', "no step 'nope'"),
        ('[variants.x]\njourneys.cart_abandonment.steps.push = { send = { message = "m" }, next = "end" }\n',
         "variant x"),
        ('variants = 3\n', "a table of named variants"),
    ],
)
def test_a_bad_variant_is_refused_at_load_naming_it(variant, words):
    document = tomllib.loads(CART_SCENARIO.read_text())
    document.update(tomllib.loads(variant))  # (in place of the file's own variants)
    with pytest.raises(ScenarioError, match=words):
        scenario_from_document(document, "cart.toml")


@pytest.mark.parametrize(
    ("path", "words"),
    [("policy.caps.9.max", "not an index"), ("journeys.nope.holdout", "no journey"),
     ("policy.caps.0.max.deeper", "is a value")],
)
def test_a_bad_setting_path_is_refused(path, words):
    with pytest.raises(ScenarioError, match=words):
        load_scenario(CART).with_settings({path: 1})


def test_an_unknown_variant_is_refused_naming_the_known_ones():
    with pytest.raises(ScenarioError, match="no variant 'nope'.*push_first"):
        load_scenario(CART).variant("nope")


# -- paired statistics ---------------------------------------------------------------------------


def test_paired_mean_difference_matches_its_formula():
    rng = np.random.default_rng(4)
    a = rng.poisson(2.0, 5_000)
    b = a + rng.binomial(1, 0.1, 5_000)  # b = a plus a little: strongly correlated
    d = mean_difference(a, b)
    diff = b - a
    half = 1.959963984540054 * diff.std(ddof=1) / np.sqrt(len(a))
    assert d.difference == pytest.approx(diff.mean())
    assert (d.low, d.high) == pytest.approx((diff.mean() - half, diff.mean() + half))
    assert d.width < d.width_independent / 5  # pairing removes the customers' own variance


def test_ratio_difference_of_identical_designs_is_exactly_zero():
    rng = np.random.default_rng(5)
    entered = rng.integers(0, 3, 2_000)
    converted = np.minimum(entered, rng.integers(0, 2, 2_000))
    d = ratio_difference(converted, entered, converted, entered, 100)
    assert d is not None
    assert (d.difference, d.low, d.high) == (0.0, 0.0, 0.0)
    assert d.width_independent > 0
    assert ratio_difference(converted, 0 * entered, converted, entered) is None


# -- compare -------------------------------------------------------------------------------------


def test_a_design_compared_with_itself_differs_by_exactly_zero():
    design = Design(CART, CART)
    runs = run_jobs([Job(design, 3_000, 10.0, 2), Job(design, 3_000, 10.0, 2)], workers=2, task=simulate)
    assert runs[0].metrics == runs[1].metrics
    same = compare([DesignResult("a", "", [runs[0].metrics], [runs[0].outcomes]),
                    DesignResult("b", "", [runs[1].metrics], [runs[1].outcomes])])
    difference = same["differences"][0]
    numbers = [(path, value) for path, value in walk(
        {k: difference[k] for k in ("conversion_rate_points", "revenue_per_customer",
                                    "messages_per_customer", "opt_outs_per_1000_customers")}
    ) if not path.endswith("width_independent")]
    assert numbers and all(value == 0.0 for _, value in numbers), numbers
    first, second = (dict(d, name=None) for d in same["designs"])
    assert first == second


def test_the_holdouts_of_every_cart_variant_are_identical():
    scenario = load_scenario(CART)
    designs = [Design(CART, CART)] + [Design(v, CART, v) for v in scenario.variants]
    runs = run_jobs([Job(d, 4_000, 14.0, 3) for d in designs], task=simulate)
    holdouts = [r.metrics["journeys"][CART]["holdout"] for r in runs]
    assert holdouts[0]["entrants"] > 100 and holdouts[0]["conversions"] > 30
    for holdout in holdouts[1:]:
        assert holdout == holdouts[0]
    treated = [r.metrics["journeys"][CART]["treated"] for r in runs]
    assert len({t["conversions"] for t in treated}) > 1, "the designs do differ where they send"


def test_pairing_narrows_push_first_against_email_first():
    scenario = load_scenario(CART)
    runs = [result(Design(v, CART, v), 6_000, 21.0) for v in ("push_first", "email_first")]
    assert scenario.variants
    difference = compare(runs)["differences"][0]["conversion_rate_points"][CART]
    assert 0 < difference["width"] < difference["width_independent"] / 2


def test_compare_on_the_command_line_writes_a_bundle_and_names_the_best_per_message(tmp_path):
    out = tmp_path / "bundle"
    command = [sys.executable, "-m", "engine", "compare", CART, "--customers", "2000", "--days", "10",
               "--variant", "push_first", "--variant", "no_sms", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "per message sent" in done.stdout
    result = json.loads((out / "metrics.json").read_text())
    assert [d["name"] for d in result["designs"]] == [CART, "push_first", "no_sms"]
    assert result["best_per_message"]["design"] in {CART, "push_first", "no_sms"}
    assert any("per message sent" in line for line in result["reading"])
    page = (out / "report.html").read_text()
    assert "per message sent" in page and page.count("data:image/png;base64,") >= 3
    for png in ("designs.png", "differences.png", f"funnel_{CART}.png"):
        assert (out / png).read_bytes().startswith(b"\x89PNG")
    for design in (CART, "push_first", "no_sms"):  # each design's conversion and null paths, and models
        table = (out / f"paths-{design}-{CART}.csv").read_text().splitlines()
        assert table[0] == "path;total_conversions;total_conversion_value;total_null" and len(table) > 3
    assert "Attribution, design by design" in page and ">push_first</th>" in page
    rebuilt = subprocess.run([sys.executable, "-m", "engine", "report", str(out)], capture_output=True,
                             text=True, timeout=120)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert (out / "report.html").read_text() == page


@pytest.mark.parametrize(
    ("arguments", "words"),
    [(["--variant", "nope"], "no variant 'nope'"),
     (["--variant", "push_first", str(CART_SCENARIO)], "--variant takes one scenario"),
     (["nowhere.toml"], "no such file")],
)
def test_compare_refuses_bad_designs_before_running_anything(arguments, words):
    command = [sys.executable, "-m", "engine", "compare", CART, *arguments]
    if arguments == ["nowhere.toml"]:
        command = [sys.executable, "-m", "engine", "compare", "nowhere.toml"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert words in " ".join(done.stderr.split())


def test_report_refuses_a_folder_that_is_no_bundle(tmp_path):
    done = subprocess.run([sys.executable, "-m", "engine", "report", str(tmp_path)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "not a bundle" in done.stderr


# -- coverage of the interval -------------------------------------------------------------------------

UPLIFT = str(JOURNEY_DESIGNS / "one_message_uplift.toml")
TRUE_DIFFERENCE_POINTS = -100 * 0.98 * 0.5 * 0.4 * 0.6  # (the file's comment derives it)


@pytest.mark.slow
def test_the_paired_interval_covers_the_true_difference_in_about_95_percent_of_replications():
    seeds = range(1, 41)
    designs = [Design("one_message_uplift", UPLIFT), Design("silent", UPLIFT, "silent")]
    jobs = [Job(design, 3_000, 10.0, seed) for seed in seeds for design in designs]
    runs = run_jobs(jobs, 2, task=simulate)
    covered, estimates = 0, []
    for k in range(len(seeds)):
        pair = (runs[2 * k], runs[2 * k + 1])
        result = compare([DesignResult(r.job.design.name, "", [r.metrics], [r.outcomes]) for r in pair])
        d = result["differences"][0]["conversion_rate_points"]["one_message"]
        estimates.append(d["difference"])
        covered += d["low"] <= TRUE_DIFFERENCE_POINTS <= d["high"]
    # 34 is the lower end of the central 99% range of Binomial(40, 0.95)
    assert covered >= 34, (covered, estimates)
    # and the estimate is unbiased: the mean of 40 lies within 3 standard errors of the truth
    spread = float(np.std(estimates, ddof=1)) / len(estimates) ** 0.5
    assert abs(float(np.mean(estimates)) - TRUE_DIFFERENCE_POINTS) < 3 * spread, estimates


def test_replications_give_intervals_across_populations_in_the_page():
    designs = [Design(CART, CART), Design("no_sms", CART, "no_sms")]
    runs = run_jobs([Job(d, 1_500, 10.0, seed) for d in designs for seed in (1, 2)], 2, task=simulate)
    results = [DesignResult(d.name, "", [r.metrics for r in runs[2 * i:2 * i + 2]],
                            [r.outcomes for r in runs[2 * i:2 * i + 2]]) for i, d in enumerate(designs)]
    result = {"kind": "compare", "scenario": CART, "customers": 1_500, "days": 10.0, "seed": 1,
              "replications": 2, **compare(results)}
    spread = result["differences"][0]["across_replications"]["conversion_rate_points"][CART]
    assert spread["replications"] == 2 and spread["low"] <= spread["difference"] <= spread["high"]
    page = report_html(result, figures_of(result))
    assert "across replications (t, 95%)" in page and "Student" in page


def test_a_design_that_sends_to_no_one_is_compared_on_every_entrant():
    document = tomllib.loads(CART_SCENARIO.read_text())
    document["variants"]["nobody"] = {"description": "Send to no one",
                                      "journeys": {CART: {"holdout": 1.0}}}
    scenario = scenario_from_document(document, "cart+nobody.toml")
    nobody = scenario.variant("nobody")
    assert nobody.program.journeys[0].holdout == 1.0
    runs = {}
    for name, loaded in ((CART, scenario), ("nobody", nobody)):
        simulation = Simulation(loaded, 2_000, 14.0, 3)
        simulation.run()
        metrics = {"customers": 2_000, **simulation.metrics.to_dict()}
        runs[name] = DesignResult(name, "", [metrics], [simulation.metrics.outcomes()])
    assert runs["nobody"].metrics[0]["messages"]["total"] == 0
    result = compare([runs[CART], runs["nobody"]])
    difference = result["differences"][0]
    assert difference["conversion_basis"][CART].startswith("all entrants")
    d = difference["conversion_rate_points"][CART]
    assert d is not None and d["high"] < 0  # (the messages add conversions: no one sent, fewer)
    assert "counting every entrant" in " ".join(difference["sentences"])
    assert result["designs"][1]["per_message_basis"].startswith("none: the design treats no one")


def test_a_file_compared_with_itself_on_the_command_line_differs_by_zero(tmp_path):
    out = tmp_path / "aa"
    command = [sys.executable, "-m", "engine", "compare", str(CART_SCENARIO), str(CART_SCENARIO),
               "--customers", "1500", "--days", "10", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads((out / "metrics.json").read_text())
    assert [d["name"] for d in result["designs"]] == [CART, f"{CART} (2)"]
    numbers = [(path, value) for path, value in walk(result["differences"])
               if isinstance(value, float) and not path.endswith("width_independent")]
    assert numbers and all(value == 0.0 for _, value in numbers), numbers
