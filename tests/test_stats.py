"""Lift statistics against the worked example of REFERENCE.md section 4."""

from __future__ import annotations

import pytest

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
