"""Paired comparisons of two designs run on the same customers (common random numbers).

Two designs of a compare are simulated on one population whose draws are keyed by customer
(``scenarios.draws``), so a customer's outcome under design B is strongly correlated with their
outcome under A, and the difference of two means has a far smaller variance than two independent
runs would give: ``var(mean(b - a)) = (var(a) + var(b) - 2 cov(a, b)) / n``.

For a mean per customer (revenue, messages, opt-outs per customer) the interval is the paired
one, ``mean(d) +- z sd(d) / sqrt(n)``. For a ratio of two sums (a conversion rate: conversions
over entries, whose entrants may differ a little between designs) it is the delta method on the
paired linearisations: customer ``i`` contributes ``(c_i - R e_i) / mean(e)`` to each design's
rate, and the difference of those contributions is averaged like a mean.

``width_independent`` is the interval the same comparison would have if the two designs had
run on independent populations of the same size (the covariance term dropped): the variance
reduction, shown. Across ``K`` replications (independent populations, one seed each) the
interval is Student's t on the ``K`` paired estimates.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from reports.stats import Z95


@dataclass(frozen=True)
class Difference:
    """``b - a`` with its 95% interval (paired), and the width it would have unpaired."""

    difference: float
    low: float
    high: float
    width_independent: float

    @property
    def width(self) -> float:
        """The paired interval's width."""
        return self.high - self.low

    def to_dict(self) -> dict[str, float]:
        """Plain data, with the paired width (each design's own values are in its headline)."""
        return {**asdict(self), "width": self.width}


def mean_difference(a: np.ndarray, b: np.ndarray, scale: float = 1.0) -> Difference:
    """The difference of two per-customer means, ``scale`` times (1,000: per 1,000 customers)."""
    n = len(a)
    d = (b - a).astype(np.float64)
    half = Z95 * _sd(d) / math.sqrt(n) if n > 1 else math.nan
    independent = 2 * Z95 * math.sqrt((_var(a) + _var(b)) / n) if n > 1 else math.nan
    diff = float(b.mean()) - float(a.mean())
    return Difference(scale * diff, scale * (diff - half), scale * (diff + half), scale * independent)


def ratio_difference(
    num_a: np.ndarray, den_a: np.ndarray, num_b: np.ndarray, den_b: np.ndarray, scale: float = 1.0
) -> Difference | None:
    """The difference of two ratios of sums (``sum(num) / sum(den)``), paired by customer (delta
    method); None when a design has nothing in its denominator."""
    n = len(num_a)
    total_a, total_b = float(den_a.sum()), float(den_b.sum())
    if total_a == 0 or total_b == 0 or n < 2:
        return None
    ratio_a, ratio_b = float(num_a.sum()) / total_a, float(num_b.sum()) / total_b
    z_a = (num_a - ratio_a * den_a) / (total_a / n)
    z_b = (num_b - ratio_b * den_b) / (total_b / n)
    half = Z95 * _sd(z_b - z_a) / math.sqrt(n)
    independent = 2 * Z95 * math.sqrt((_var(z_a) + _var(z_b)) / n)
    diff = ratio_b - ratio_a
    return Difference(scale * diff, scale * (diff - half), scale * (diff + half), scale * independent)


def across_replications(differences: list[Difference]) -> dict[str, float] | None:
    """The mean of ``K`` replications' paired differences with Student's t 95% interval."""
    values = np.array([d.difference for d in differences])
    k = len(values)
    if k < 2:
        return None
    from scipy import stats  # (here: half a second to import, and only replications need it)

    half = float(stats.t.ppf(0.975, k - 1)) * float(values.std(ddof=1)) / math.sqrt(k)
    mean = float(values.mean())
    return {"replications": k, "difference": mean, "low": mean - half, "high": mean + half}


def pooled(differences: list[Difference]) -> Difference:
    """One difference from ``K`` replications' (equal sizes): means of the estimates, and the
    intervals of their mean (half-widths shrink by the square root of ``K``)."""
    k = len(differences)
    diff = sum(d.difference for d in differences) / k
    half = math.sqrt(sum((d.width / 2) ** 2 for d in differences)) / k
    independent = math.sqrt(sum(d.width_independent**2 for d in differences)) / k
    return Difference(diff, diff - half, diff + half, independent)


def phrase(d: Difference, template: str, more: str = "more", less: str = "less", digits: int = 1,
           same: str = "about the same", unit: str = "") -> str:
    """A difference in words, by ``template`` (``"{n} points {word}"``): ``1.2 points more
    [+0.4, +2.0]`` when the interval excludes zero, else ``same`` with the estimate in ``unit``:
    ``about the same (+0.3 points [-0.2, +0.8])``. No number is printed as ``-0.0``: an interval
    that excludes zero gets up to two more digits so that neither bound reads as zero
    (``[-0.52, -0.02]``, not ``[-0.5, -0.0]``)."""
    if d.low <= 0 <= d.high:
        value = signed(d.difference, digits) + (f" {unit}" if unit else "")
        return f"{same} ({value} {interval(d.low, d.high, digits)})"
    digits = next((k for k in range(digits, digits + 2)
                   if round(d.low, k) != 0 and round(d.high, k) != 0), digits + 2)
    words = template.format(n=f"{abs(d.difference):,.{digits}f}", word=more if d.difference > 0 else less)
    return f"{words} {interval(d.low, d.high, digits)}"


def signed(value: float, digits: int = 1) -> str:
    """``value`` with its sign and thousands separators (``+1,234.5``, ``-0.4``); what rounds to
    zero is ``0.0``, unsigned: never ``-0.0``."""
    text = f"{value:+,.{digits}f}"
    return text[1:] if text[1:].strip("0.,") == "" else text


def interval(low: float, high: float, digits: int = 1) -> str:
    """A 95% interval as printed: ``[-0.4, +1.2]``."""
    return f"[{signed(low, digits)}, {signed(high, digits)}]"


def as_dict(d: Difference | None) -> dict[str, Any] | None:
    """A difference as plain data (None stays None)."""
    return None if d is None else d.to_dict()


def _var(x: np.ndarray) -> float:
    return float(np.var(x, ddof=1)) if len(x) > 1 else 0.0


def _sd(x: np.ndarray) -> float:
    return math.sqrt(_var(x))
