"""The scoring pass: every customer's predictive scores, from the engine's own purchase histories.

A runtime runs a pass every ``[scores] every`` (a day by default) over the profiles of the
customers who have bought (BG/NBD describes a customer from their first purchase on; one who has
not bought keeps no scores, and no condition on a score holds for them) and hands each one's
scores to their actor as a ``Scored`` message (``actors.scores`` names them):

- RFM quintile scores among the customers who bought (``engine.lab.rfm``); 0 for the others.
- BG/NBD (``engine.lab.clv``), refitted every ``refit`` on the histories as they then are, in
  days: ``x`` the purchases after the first, ``t_x`` the days from the first purchase to the
  last, ``T`` the days from the first purchase to now (a profile with no purchase given to
  ``score`` scores as a new customer: ``x = t_x = T = 0``). A fit needs
  ``MIN_REPEAT_BUYERS`` customers who bought again and ``MIN_SPAN_DAYS`` of history; until
  then the BG/NBD scores are NaN, which no condition holds.
- ``churn_risk``: a buyer whose ``p_alive`` is under ``churn_below``.

Scores are as old as the last pass: at most ``every`` (``Scoring.staleness`` reports it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from actors.profile import Profile
from engine.lab.rfm import rfm_scores

if TYPE_CHECKING:
    from engine.lab.clv import BgNbd

DAY = 86400.0
MIN_REPEAT_BUYERS = 30
MIN_SPAN_DAYS = 7.0


@dataclass
class Scoring:
    """A runtime's scoring, pass after pass.

    Args:
        every, refit, horizon: seconds between passes, between fits, and of the predictions.
        churn_below: the ``p_alive`` under which a buyer is flagged.
    """

    every: float
    refit: float
    horizon: float
    churn_below: float
    model: BgNbd | None = None
    fitted_at: float = -np.inf
    passes: int = 0
    last_pass: float | None = None
    fit_problem: str = ""  # why the last fit failed, if it did
    history: list[dict[str, float]] = field(default_factory=list)  # each fit: when, and its parameters

    @staticmethod
    def scored(profile: Profile) -> bool:
        """Whether a pass scores this customer: one who has bought (BG/NBD's customer)."""
        return profile.purchases > 0

    @classmethod
    def of(cls, settings: tuple[float, float, float, float] | None) -> Scoring | None:
        """The scoring a program asks for (``Program.scoring``), or None."""
        return None if settings is None else cls(*settings)

    def score(self, profiles: Sequence[Profile], now: float) -> list[tuple[float, ...]]:
        """One pass: each profile's scores at ``now``, in ``actors.scores.SCORE_NAMES`` order."""
        return self.score_histories(histories(profiles, now), now)

    def score_histories(self, purchase_histories: Histories, now: float) -> list[tuple[float, ...]]:
        """``score`` of the histories ``histories`` read (a runtime reads them in its own loop and
        scores them in a thread: this reads no profile)."""
        purchases, revenue, first, last = purchase_histories
        n = len(purchases)
        bought = purchases > 0
        x = np.where(bought, np.maximum(purchases - 1.0, 0.0), 0.0)
        t_x = np.where(bought, np.maximum(last - first, 0.0) / DAY, 0.0)
        big_t = np.where(bought, np.maximum(now - first, 0.0) / DAY, 0.0)
        t_x = np.minimum(t_x, big_t)
        if now - self.fitted_at >= self.refit and np.any(bought):
            self._fit(x[bought], t_x[bought], big_t[bought], now)
        recency, frequency, monetary = (np.zeros(n) for _ in range(3))
        if np.any(bought):
            r, f, m = rfm_scores((now - last[bought]) / DAY, purchases[bought],
                                 revenue[bought] / purchases[bought])
            recency[bought], frequency[bought], monetary[bought] = r, f, m
        if self.model is not None:
            horizon = self.horizon / DAY
            alive = self.model.p_alive(x, t_x, big_t)
            expected = self.model.expected_purchases(horizon, x, t_x, big_t)
            likely = self.model.p_purchase(horizon, x, t_x, big_t)
        else:
            alive = expected = likely = np.full(n, np.nan)
        churn = (bought & (alive < self.churn_below)).astype(np.float64)
        self.passes += 1
        self.last_pass = now
        columns = np.column_stack([recency, frequency, monetary, alive, expected, likely, churn])
        return [tuple(row) for row in columns.tolist()]

    def _fit(self, x: np.ndarray, t_x: np.ndarray, big_t: np.ndarray, now: float) -> None:
        if np.count_nonzero(x) < MIN_REPEAT_BUYERS or big_t.max() < MIN_SPAN_DAYS:
            self.fit_problem = (f"too little history to fit: {np.count_nonzero(x)} customers bought again"
                                f" (at least {MIN_REPEAT_BUYERS}), over {big_t.max():.1f} days"
                                f" (at least {MIN_SPAN_DAYS:.0f})")
            return
        from engine.lab.clv import fit_bgnbd  # (scipy: loaded by a first fit, not by every run)

        try:
            self.model = fit_bgnbd(x, t_x, big_t)
        except (ValueError, FloatingPointError) as exc:
            self.fit_problem = str(exc)  # (the last model, if any, stays)
            return
        self.fitted_at, self.fit_problem = now, ""
        m = self.model
        self.history.append({"at": now, "customers": float(len(x)), "r": m.r, "alpha": m.alpha,
                             "a": m.a, "b": m.b})

    def staleness(self, now: float) -> float | None:
        """How old the scores are at ``now`` (None before the first pass)."""
        return None if self.last_pass is None else now - self.last_pass

    def report(self, now: float | None) -> dict[str, object]:
        """What the metrics say of the scoring: passes, the scores' age at ``now`` (None: not
        said), the bound on it, the fits."""
        staleness = None if now is None else self.staleness(now)
        return {"passes": self.passes, "every_s": self.every, "staleness_s": staleness,
                "fits": self.history, "fit_problem": self.fit_problem}


Histories = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # purchases, revenue, first, last


def histories(profiles: Sequence[Profile], now: float) -> Histories:
    """The purchase histories of ``profiles`` as columns: purchases, revenue, and the times of
    the first and last purchase (``now`` where there was none)."""
    n = len(profiles)
    return (np.fromiter((p.purchases for p in profiles), np.float64, n),
            np.fromiter((p.revenue for p in profiles), np.float64, n),
            np.fromiter((now if p.first_purchase_at is None else p.first_purchase_at for p in profiles),
                        np.float64, n),
            np.fromiter((now if p.last_purchase_at is None else p.last_purchase_at for p in profiles),
                        np.float64, n))
