"""RFM scores: recency, frequency and monetary value as quintile scores, 1 to 5, 5 the best.

Customers are ranked on each measure, worst first (for recency, the longest since the last
purchase is worst: the measure is reversed), ties broken by rank: customers with equal values
keep the order they are given in (a stable sort), so every score holds a fifth of the customers,
give or take one. The customer ranked ``k`` of ``n`` (from 0) scores ``1 + 5k // n``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Floats = NDArray[np.float64]
Scores = NDArray[np.int64]


def quintiles(values: Floats, *, reverse: bool = False) -> Scores:
    """Each value's score, 1 to 5 (higher values score higher; lower ones with ``reverse``)."""
    n = len(values)
    order = np.argsort(-values if reverse else values, kind="stable")
    ranks = np.empty(n, dtype=np.int64)
    ranks[order] = np.arange(n)
    return 1 + 5 * ranks // max(n, 1)


def rfm_scores(recency: Floats, frequency: Floats, monetary: Floats) -> tuple[Scores, Scores, Scores]:
    """``(R, F, M)`` scores: ``recency`` is the time since the last purchase (reversed: recent is
    best), ``frequency`` the purchases, ``monetary`` the value."""
    return quintiles(recency, reverse=True), quintiles(frequency), quintiles(monetary)
