"""Incrementality statistics (REFERENCE.md section 4).

Holdout lift is ``p_T - p_C``; its 95% confidence interval uses the unpooled variance
``p_T(1-p_T)/n_T + p_C(1-p_C)/n_C``, and the z test the pooled one. Worked check from the
reference: 250/10,000 vs 200/10,000 gives z = 2.384, p = 0.0171, CI [0.00089, 0.00911].

When a group converts never or always, that variance is zero for it and the Wald interval
collapses (0/103 in a holdout would look certain); the interval is then Newcombe's hybrid score
interval (Newcombe 1998, method 10), built from each group's Wilson interval.
"""

from __future__ import annotations

import math

Z95 = 1.959963984540054


def two_proportions(conv_t: int, n_t: int, conv_c: int, n_c: int) -> dict[str, float | None]:
    """Compare a treated group with its holdout.

    Never raises: a group's rate is None when it is empty or its counts cannot be a proportion
    (more conversions than entrants, or a negative count, as tallies kept apart across a restart
    can give), and the lift with it.

    Returns:
        ``rate_treated``, ``rate_holdout``, ``lift`` (absolute), ``lift_ci95`` bounds,
        ``relative_lift``, ``z`` and two-sided ``p_value``; None where a group has no rate.
    """
    p_t = _rate(conv_t, n_t)
    p_c = _rate(conv_c, n_c)
    out: dict[str, float | None] = {
        "rate_treated": p_t,
        "rate_holdout": p_c,
        "lift": None,
        "lift_ci95_low": None,
        "lift_ci95_high": None,
        "relative_lift": None,
        "z": None,
        "p_value": None,
    }
    if p_t is None or p_c is None:
        return out
    diff = p_t - p_c
    se = math.sqrt(p_t * (1 - p_t) / n_t + p_c * (1 - p_c) / n_c)
    if conv_t in (0, n_t) or conv_c in (0, n_c):
        low_t, high_t = wilson(conv_t, n_t)
        low_c, high_c = wilson(conv_c, n_c)
        low = diff - math.sqrt((p_t - low_t) ** 2 + (high_c - p_c) ** 2)
        high = diff + math.sqrt((high_t - p_t) ** 2 + (p_c - low_c) ** 2)
    else:
        low, high = diff - Z95 * se, diff + Z95 * se
    pooled = (conv_t + conv_c) / (n_t + n_c)
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / n_t + 1 / n_c))
    z = diff / se_pooled if se_pooled > 0 else 0.0
    out.update(
        lift=diff,
        lift_ci95_low=max(low, -1.0),  # (a difference of proportions lies in [-1, 1]; Wald's
        lift_ci95_high=min(high, 1.0),  # interval on a few entrants can reach past it)
        relative_lift=p_t / p_c - 1 if p_c else None,
        z=z,
        p_value=math.erfc(abs(z) / math.sqrt(2)),
    )
    return out


def _rate(conversions: int, n: int) -> float | None:
    return conversions / n if 0 <= conversions <= n and n > 0 else None


def wilson(successes: int, n: int) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion."""
    p = successes / n
    z2 = Z95 * Z95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return centre - half, centre + half
