"""The predictive scores a profile keeps: their names, in the order a ``Scored`` message holds them.

A runtime's scoring pass (``engine.lab.scoring``) computes them for the whole population from the
profiles' purchase histories and hands each customer's to its actor as a ``Scored`` message; the
actor keeps them on the profile and re-checks its live segments. Conditions read them as
``scores.<name>``.

    recency, frequency, monetary  RFM quintile scores, 1 to 5 (5 best; recency reversed, so
                                  5 is the most recent buyers); 0 for a customer with no purchase
    p_alive                       BG/NBD: the probability that the customer is still "alive"
    expected                      BG/NBD: expected purchases over the scoring horizon
    likelihood                    BG/NBD: the probability of at least one purchase in the horizon
    churn_risk                    1 when a buyer's ``p_alive`` is under the churn threshold, else 0
"""

from __future__ import annotations

SCORE_NAMES: tuple[str, ...] = (
    "recency", "frequency", "monetary", "p_alive", "expected", "likelihood", "churn_risk",
)
SCORE_INDEX = {name: i for i, name in enumerate(SCORE_NAMES)}
