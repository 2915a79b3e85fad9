"""Buy-till-you-die models (``engine.lab.clv``), RFM scores (``engine.lab.rfm``) and ``touchpoint
predict``: the BG/NBD fit reproduces Fader, Hardie & Lee (2005) on the CDNOW sample
(tests/data/README.md says where the data comes from)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from harness import ROOT

from engine.lab.clv import fit_bgnbd, fit_gamma_gamma
from engine.lab.rfm import quintiles, rfm_scores
from engine.lab.transactions import TransactionError, read_transactions, summarise

CDNOW = Path(__file__).resolve().parent / "data" / "cdnow_sample.csv"


@pytest.fixture(scope="module")
def cdnow():
    return summarise(read_transactions(CDNOW, value="amount"), date(1997, 9, 30), "week")


def test_the_cdnow_calibration_histories_are_the_papers(cdnow):
    assert len(cdnow.customers) == 2357 and cdnow.after_until == 0
    first = cdnow.customers.index("0001")  # the paper's first customer: x = 2, t_x = 30.43, T = 38.86
    assert (cdnow.x[first], round(cdnow.t_x[first], 2), round(cdnow.T[first], 2)) == (2, 30.43, 38.86)


def test_bgnbd_on_cdnow_gives_the_published_parameters_and_conditional_expectation(cdnow):
    model = fit_bgnbd(cdnow.x, cdnow.t_x, cdnow.T)
    assert (round(model.r, 2), round(model.alpha, 2), round(model.a, 2), round(model.b, 2)) == (
        0.24, 4.41, 0.79, 2.43)  # r 0.243, alpha 4.414, a 0.793, b 2.426
    assert (model.r, model.alpha, model.a, model.b) == pytest.approx((0.243, 4.414, 0.793, 2.426), abs=6e-4)
    one = (np.array([2.0]), np.array([30.43]), np.array([38.86]))
    assert round(float(model.expected_purchases(39.0, *one)[0]), 3) == 1.226
    alive = model.p_alive(cdnow.x, cdnow.t_x, cdnow.T)
    buys = model.p_purchase(39.0, cdnow.x, cdnow.t_x, cdnow.T)
    assert np.all((0 <= buys) & (buys <= alive) & (alive <= 1))
    assert np.all(alive[cdnow.x == 0] == 1.0)  # (one who never bought again cannot have dropped out)


def test_gamma_gamma_on_cdnow_gives_the_published_spend_parameters(cdnow):
    spend = fit_gamma_gamma(cdnow.x, cdnow.m)
    assert (spend.p, spend.q, spend.v) == pytest.approx((6.25, 3.74, 15.44), abs=0.01)  # (Fader & Hardie)
    value = spend.expected_value(np.array([0.0, 3.0]), np.array([0.0, 40.0]))
    assert value[0] == pytest.approx(spend.p * spend.v / (spend.q - 1))  # no repeat: the population mean
    assert value[1] == pytest.approx(spend.p * (spend.v + 120.0) / (3 * spend.p + spend.q - 1))


def test_rfm_quintiles_on_a_small_table_worked_by_hand():
    # ten customers: days since the last purchase, purchases, spend
    recency = np.array([3.0, 40.0, 10.0, 10.0, 90.0, 1.0, 25.0, 60.0, 10.0, 5.0])
    frequency = np.array([5.0, 1.0, 2.0, 2.0, 1.0, 9.0, 3.0, 1.0, 4.0, 6.0])
    monetary = np.array([120.0, 15.0, 40.0, 55.0, 10.0, 300.0, 60.0, 20.0, 80.0, 150.0])
    r, f, m = rfm_scores(recency, frequency, monetary)
    # recency, worst (longest ago) first: 90 (#4), 60 (#7), 40 (#1), 25 (#6), 10 (#2, #3, #8 in order),
    # 5 (#9), 3 (#0), 1 (#5); two customers a quintile
    assert r.tolist() == [5, 2, 3, 3, 1, 5, 2, 1, 4, 4]
    # frequency, lowest first: 1 (#1, #4, #7), 2 (#2, #3), 3 (#6), 4 (#8), 5 (#0), 6 (#9), 9 (#5)
    assert f.tolist() == [4, 1, 2, 3, 1, 5, 3, 2, 4, 5]
    assert m.tolist() == [4, 1, 2, 3, 1, 5, 3, 2, 4, 5]
    assert quintiles(np.array([7.0, 7.0, 7.0, 7.0, 7.0])).tolist() == [1, 2, 3, 4, 5]  # ties: by rank


def test_predict_writes_the_parameters_and_each_customers_predictions(tmp_path):
    out = tmp_path / "p.json"
    arguments = [str(CDNOW), "--value", "amount", "--until", "1997-09-30", "--horizon", "39",
                 "--out", str(out)]
    done = subprocess.run([sys.executable, "-m", "engine", "predict", *arguments], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "r 0.2426" in done.stdout and "p 6.24" in done.stdout
    result = json.loads(out.read_text())
    assert set(result["bgnbd"]) == {"r", "alpha", "a", "b"} and set(result["gamma_gamma"]) == {"p", "q", "v"}
    first = next(c for c in result["customers"] if c["customer"] == "0001")
    assert round(first["expected_purchases"], 3) == 1.226 and len(result["customers"]) == 2357
    per_purchase = first["expected_value_per_purchase"]
    assert first["expected_value"] == pytest.approx(first["expected_purchases"] * per_purchase)
    assert all(1 <= s <= 5 for c in result["customers"] for s in c["rfm"])


@pytest.mark.parametrize(("text", "said"), [
    ("customer_id,date\nc1,2025-01-01\nc2,not-a-date\n", "row 3, column date: 'not-a-date' is not a date"),
    ("customer_id,day\nc1,2025-01-01\n", "row 1: no column 'date'"),
    ("customer_id,date,amount\nc1,2025-01-01,ten\n", "row 2, column amount: 'ten' is not a number"),
    ("customer_id,date,amount\nc1,2025-01-01,-3\n", "row 2, column amount: '-3' is not a value of 0 or more"),
    ("customer_id,date\n,2025-01-01\n", "row 2, column customer_id: empty"),
    ("", "the file is empty"),
])
def test_a_bad_file_gets_one_line_naming_the_row_and_column_and_exit_2(tmp_path, text, said):
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(TransactionError, match=said.replace("(", r"\(")):
        read_transactions(path, value="amount" if "amount" in text else None)
    done = subprocess.run([sys.executable, "-m", "engine", "predict", str(path),
                           *(["--value", "amount"] if "amount" in text else [])],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2 and said in " ".join(done.stderr.split()) and "Traceback" not in done.stderr
