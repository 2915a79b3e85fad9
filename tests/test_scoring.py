"""The scoring pass (``engine.lab.scoring``): RFM quintiles worked by hand, BG/NBD from the
profiles' purchase histories as the model gives them, and no model before there is history."""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from actors.profile import Profile
from actors.scores import SCORE_INDEX
from engine.lab.clv import fit_bgnbd
from engine.lab.scoring import DAY, Scoring
from engine.lab.transactions import read_transactions, summarise

CDNOW = Path(__file__).resolve().parent / "data" / "cdnow_sample.csv"
NOW = 400 * DAY


def buyer(name: str, purchases: int, first_day: float, last_day: float, revenue: float) -> Profile:
    profile = Profile(name)
    profile.purchases, profile.revenue = purchases, revenue
    profile.first_purchase_at, profile.last_purchase_at = first_day * DAY, last_day * DAY
    return profile


def column(rows: list[tuple[float, ...]], name: str) -> list[float]:
    return [row[SCORE_INDEX[name]] for row in rows]


def test_rfm_quintiles_of_five_buyers_and_a_prospect_worked_by_hand():
    # days since the last purchase 10, 50, 30, 5, 100; purchases 1, 4, 2, 8, 3; mean value 20, 5, 50, 10, 30
    profiles = [
        buyer("a", 1, 380, 390, 20.0), buyer("b", 4, 300, 350, 20.0), buyer("c", 2, 360, 370, 100.0),
        buyer("d", 8, 200, 395, 80.0), buyer("e", 3, 250, 300, 90.0), Profile("prospect"),
    ]
    rows = Scoring(DAY, 7 * DAY, 30 * DAY, 0.3).score(profiles, NOW)
    # five buyers: rank k of 5 scores 1 + k; recency reversed (the most recent is 5)
    assert column(rows, "recency") == [4, 2, 3, 5, 1, 0]
    assert column(rows, "frequency") == [1, 4, 2, 5, 3, 0]
    assert column(rows, "monetary") == [3, 1, 5, 2, 4, 0]


def test_no_model_before_enough_history_and_its_scores_read_as_unknown():
    scoring = Scoring(DAY, 7 * DAY, 30 * DAY, 0.3)
    rows = scoring.score([buyer("a", 2, 0, 1, 10.0)], 2 * DAY)
    assert math.isnan(column(rows, "likelihood")[0]) and "too little history" in scoring.fit_problem
    profile = Profile("a")
    profile.scores = rows[0]
    assert profile.score("likelihood") is None and profile.score("frequency") == 1.0


@pytest.fixture(scope="module")
def cdnow_in_days():
    return summarise(read_transactions(CDNOW, value="amount"), date(1997, 9, 30), "day")


def test_bgnbd_scores_are_the_models_on_the_profiles_histories(cdnow_in_days):
    data = cdnow_in_days
    start = 1000 * DAY  # everyone's T is counted back from now
    now = start + float(np.max(data.T)) * DAY
    profiles = []
    for x, t_x, big_t in zip(data.x, data.t_x, data.T, strict=True):
        first = now - big_t * DAY
        profiles.append(buyer("c", int(x) + 1, first / DAY, (first + t_x * DAY) / DAY, 10.0 * (x + 1)))
    scoring = Scoring(DAY, 7 * DAY, 30 * DAY, 0.3)
    rows = scoring.score(profiles, now)
    model = fit_bgnbd(data.x, data.t_x, data.T)
    assert (scoring.model.r, scoring.model.alpha) == pytest.approx((model.r, model.alpha), rel=1e-3)
    expected = model.p_purchase(30.0, data.x, data.t_x, data.T)
    assert column(rows, "likelihood") == pytest.approx(list(expected), rel=1e-3, abs=1e-6)
    alive = model.p_alive(data.x, data.t_x, data.T)
    assert column(rows, "churn_risk") == [float(p < 0.3) for p in alive]
    assert 0 < sum(column(rows, "churn_risk")) < len(rows)
    assert scoring.report(now + DAY)["staleness_s"] == DAY
