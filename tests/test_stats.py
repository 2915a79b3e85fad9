"""Lift statistics against the worked example of REFERENCE.md section 4."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reports.stats import two_proportions


def test_worked_example_from_the_reference() -> None:
    result = two_proportions(250, 10_000, 200, 10_000)
    assert result["z"] == pytest.approx(2.384, abs=5e-4)
    assert result["p_value"] == pytest.approx(0.0171, abs=5e-5)
    assert result["lift_ci95_low"] == pytest.approx(0.00089, abs=5e-6)
    assert result["lift_ci95_high"] == pytest.approx(0.00911, abs=5e-6)
    assert result["relative_lift"] == pytest.approx(0.25)


def test_an_empty_group_gives_no_lift() -> None:
    result = two_proportions(5, 100, 0, 0)
    assert result["rate_treated"] == 0.05
    assert result["lift"] is None and result["rate_holdout"] is None


def test_a_holdout_with_no_conversion_gets_a_wide_interval_not_a_collapsed_one() -> None:
    result = two_proportions(20, 1000, 0, 103)
    low, high = result["lift_ci95_low"], result["lift_ci95_high"]
    assert result["lift"] == 0.02
    assert low < 0 < high  # 0/103 is compatible with the treated 2%
    assert high - low > 0.03


def test_counts_that_cannot_be_a_proportion_give_no_lift_rather_than_raising():
    # one entrant and two conversions: tallies kept apart across a restart can say so
    result = two_proportions(2, 1, 3, 10)
    assert result["rate_treated"] is None and result["lift"] is None
    assert result["rate_holdout"] == pytest.approx(0.3)


@given(st.integers(-3, 60), st.integers(0, 60), st.integers(-3, 60), st.integers(0, 60))
def test_two_proportions_never_raises_and_its_interval_holds_the_lift(conv_t, n_t, conv_c, n_c):
    result = two_proportions(conv_t, n_t, conv_c, n_c)
    if result["lift"] is None:
        assert not (0 <= conv_t <= n_t > 0 and 0 <= conv_c <= n_c > 0)
        return
    low, lift, high = result["lift_ci95_low"], result["lift"], result["lift_ci95_high"]
    assert all(math.isfinite(x) for x in (low, lift, high))
    assert low <= lift + 1e-12 and lift <= high + 1e-12
    assert -1.0 - 1e-9 <= low and high <= 1.0 + 1e-9
