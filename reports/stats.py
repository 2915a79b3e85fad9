"""Incrementality statistics (REFERENCE.md section 4).

Holdout lift is ``p_T - p_C``; its 95% confidence interval uses the unpooled variance
``p_T(1-p_T)/n_T + p_C(1-p_C)/n_C``, and the z test the pooled one. Worked check from the
reference: 250/10,000 vs 200/10,000 gives z = 2.384, p = 0.0171, CI [0.00089, 0.00911].
"""

from __future__ import annotations

import math

Z95 = 1.959963984540054


def two_proportions(conv_t: int, n_t: int, conv_c: int, n_c: int) -> dict[str, float | None]:
    """Compare a treated group with its holdout.

    Returns:
        ``rate_treated``, ``rate_holdout``, ``lift`` (absolute), ``lift_ci95`` bounds,
        ``relative_lift``, ``z`` and two-sided ``p_value``; None where a group is empty.
    """
    p_t = conv_t / n_t if n_t else None
    p_c = conv_c / n_c if n_c else None
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
    pooled = (conv_t + conv_c) / (n_t + n_c)
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / n_t + 1 / n_c))
    z = diff / se_pooled if se_pooled > 0 else 0.0
    out.update(
        lift=diff,
        lift_ci95_low=diff - Z95 * se,
        lift_ci95_high=diff + Z95 * se,
        relative_lift=p_t / p_c - 1 if p_c else None,
        z=z,
        p_value=math.erfc(abs(z) / math.sqrt(2)),
    )
    return out
