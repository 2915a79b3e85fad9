"""The truth attribution models estimate (``engine.lab.truth``): what each channel's messages
caused, measured by running the same customers with channels unnoticed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from harness import ROOT

from actors.messages import DeliveryReceipt, Send
from engine.lab.runs import Design, Job, run_jobs, simulate
from engine.lab.truth import score, sent_channels, true_credit, truth_jobs
from engine.scenario_files import load_scenario
from scenarios.draws import Draws
from scenarios.population import generate_population
from scenarios.responses import Audience


def test_caused_is_the_shapley_value_of_the_conversions_and_removal_the_loss_without_one_channel():
    v = {frozenset(): 10.0, frozenset("a"): 14.0, frozenset("b"): 12.0, frozenset("ab"): 15.0}
    truth = true_credit(v, ["a", "b"])
    # a: half of what it adds alone (14 - 10) and half of what it adds to b (15 - 12)
    assert truth["caused"] == pytest.approx({"a": 3.5, "b": 1.5})
    assert truth["removal"] == {"a": 3.0, "b": 1.0}
    assert truth["total_caused"] == 5.0 == sum(truth["caused"].values())
    assert truth["conversions"] == {"a+b": 15.0, "a": 14.0, "b": 12.0, "none": 10.0}


def test_models_are_scored_by_how_far_their_split_is_from_the_truths():
    scores = score({"same": {"a": 70.0, "b": 30.0}, "swapped": {"a": 30.0, "b": 70.0}, "none": {}},
                   {"a": 3.5, "b": 1.5})
    assert scores["models"]["same"]["share_distance"] == pytest.approx(0.0)
    assert scores["models"]["swapped"]["share_distance"] == pytest.approx(0.4)  # |0.3 - 0.7|, halved twice
    assert scores["models"]["none"]["share_distance"] is None
    assert scores["closest"] == "same" and scores["models"]["same"]["credited"] == 100.0
    assert score({"m": {"a": 1.0}}, {"a": 2.0, "b": -1.0})["closest"] is None  # (shares of a loss: none)


def answers(unnoticed: frozenset[str]) -> tuple[set[str], float]:
    """What 50 customers' answers to three emails each post, and the most contact pressure."""
    config = load_scenario("cart_abandonment").simulation
    population = generate_population(config.population, 50, np.random.default_rng(1))
    posts: list[DeliveryReceipt] = []
    audience = Audience(population, config, Draws(1), lambda at, c, m: posts.append(m), unnoticed)
    for customer in range(50):
        for n in range(3):
            email = Send(f"c{customer}", "j", 1, "s", "email", "m", f"k{n}")
            audience.on_send(customer, email, 3600.0 * n)
    return {r.status for r in posts}, max(audience.pressure)


def test_an_unnoticed_channels_message_is_delivered_and_does_nothing_more():
    noticed, pressure = answers(frozenset())
    assert {"delivered", "opened"} <= noticed and pressure > 0
    unnoticed, pressure = answers(frozenset({"email"}))
    assert unnoticed <= {"delivered", "bounced"} and "delivered" in unnoticed and pressure == 0.0


def test_the_same_customers_with_channels_unnoticed_differ_only_by_what_the_messages_did():
    scenario = load_scenario("cart_abandonment")
    channels = sent_channels(scenario.program)
    assert channels == ["email", "push", "sms"]
    jobs = truth_jobs(Job(Design("cart", "cart_abandonment"), 3_000, 14.0, 5), channels)
    assert len(jobs) == 8 and jobs[0].unnoticed == frozenset() and jobs[-1].unnoticed == frozenset(channels)
    runs = run_jobs(jobs, 2, task=simulate)
    journeys = [r.metrics["journeys"]["cart_abandonment"] for r in runs]
    # the holdout gets no message: its customers live the very same lives in every run
    assert len({(j["holdout"]["entrants"], j["holdout"]["conversions"]) for j in journeys}) == 1
    # with nothing noticed, no message is opened, and fewer treated customers convert
    assert "opened" not in runs[-1].metrics["receipts"] and "opened" in runs[0].metrics["receipts"]
    assert journeys[-1]["treated"]["conversions"] < journeys[0]["treated"]["conversions"]


def test_run_with_truth_writes_the_truth_and_the_scores_into_the_bundle(tmp_path):
    done = subprocess.run([sys.executable, "-m", "engine", "run", "cart_abandonment", "--customers", "3000",
                           "--days", "14", "--truth", "--out", str(tmp_path)], capture_output=True, text=True,
                          timeout=300, cwd=ROOT, env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    assert "distance from caused" in done.stdout and "comes closest" in done.stdout
    m = json.loads((tmp_path / "metrics.json").read_text())
    journey = m["journeys"]["cart_abandonment"]
    truth = m["attribution"]["cart_abandonment"]["truth"]
    assert truth["conversions"]["email+push+sms"] == journey["treated"]["conversions"] + journey["holdout"][
        "conversions"]  # (the run itself is the one with every channel noticed)
    assert sum(truth["caused"].values()) == pytest.approx(truth["total_caused"])
    assert truth["total_caused"] == truth["conversions"]["email+push+sms"] - truth["conversions"]["none"]
    assert set(truth["scores"]["models"]) == set(m["attribution"]["cart_abandonment"]["models"])
    assert truth["total_caused_complete"] <= truth["total_caused"]  # (those whose window closed in the run)
    low, high = truth["holdout_incremental_ci95"]
    assert low <= truth["holdout_incremental"] <= high
    assert "caused (measured)" in (tmp_path / "report.html").read_text()
