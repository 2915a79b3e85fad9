"""Buy-till-you-die models: BG/NBD for how often customers buy and whether they are still
customers, Gamma-Gamma for how much they spend (Fader, Hardie & Lee 2005, "Counting your
customers the easy way", and "RFM and CLV").

A customer's history is summarised as ``x`` (repeat purchases: the purchase periods after the
first), ``t_x`` (the time of the last purchase, from the first) and ``T`` (the time from the
first purchase to the end of the calibration period), in the chosen unit of time.

BG/NBD: while alive, a customer buys at a rate ``lambda ~ Gamma(r, alpha)``; after each purchase
they drop out with probability ``p ~ Beta(a, b)``. The log-likelihood of one customer is

    A1 = ln G(r + x) - ln G(r) + r ln alpha
    A2 = ln G(a + b) + ln G(b + x) - ln G(b) - ln G(a + b + x)
    A3 = -(r + x) ln(alpha + T)
    A4 = ln a - ln(b + x - 1) - (r + x) ln(alpha + t_x)         (x > 0 only)
    LL = A1 + A2 + ln(exp(A3) + [x > 0] exp(A4))

maximised over the four parameters (on their logarithms, by L-BFGS-B). Then, for a horizon ``t``:

    P(alive)        1 / (1 + [x > 0] a / (b + x - 1) ((alpha + T) / (alpha + t_x))^(r + x))
    E[Y(t) | ...]   (a + b + x - 1) / (a - 1)
                    * (1 - ((alpha + T) / (alpha + T + t))^(r + x)
                           2F1(r + x, b + x; a + b + x - 1; t / (alpha + T + t)))
                    / (1 + [x > 0] a / (b + x - 1) ((alpha + T) / (alpha + t_x))^(r + x))
    P(buys in t)    P(alive) (1 - ((alpha + T) / (alpha + T + t))^(r + x))
                    (dropping out happens only just after a purchase: one who buys nothing in t
                    stays as alive as they were)

Gamma-Gamma: a customer's transactions are worth ``Gamma(p, nu)`` each, ``nu ~ Gamma(q, v)``,
fitted on the customers with repeat purchases from their mean repeat value ``m``:

    LL = ln G(p x + q) - ln G(p x) - ln G(q) + q ln v + (p x - 1) ln m + p x ln x
         - (p x + q) ln(x m + v)
    E[value | x, m] = p (v + x m) / (p x + q - 1)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize
from scipy.special import gammaln, hyp2f1

Floats = NDArray[np.float64]


@dataclass(frozen=True)
class BgNbd:
    """Fitted BG/NBD parameters (in the unit of time of the histories they were fitted on)."""

    r: float
    alpha: float
    a: float
    b: float

    def p_alive(self, x: Floats, t_x: Floats, T: Floats) -> Floats:  # noqa: N803 (the paper's names)
        """The probability that each customer is still a customer at ``T``."""
        return 1.0 / (1.0 + self._dead_odds(x, t_x, T))

    def expected_purchases(self, t: float, x: Floats, t_x: Floats, T: Floats) -> Floats:  # noqa: N803
        """Each customer's expected purchases in the next ``t``, given their history."""
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        z = t / (alpha + T + t)
        hyper = hyp2f1(r + x, b + x, a + b + x - 1.0, z)
        head = (a + b + x - 1.0) / (a - 1.0)
        bought = 1.0 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyper
        return np.asarray(head * bought / (1.0 + self._dead_odds(x, t_x, T)), dtype=np.float64)

    def p_purchase(self, t: float, x: Floats, t_x: Floats, T: Floats) -> Floats:  # noqa: N803
        """The probability that each customer buys at least once in the next ``t``."""
        quiet = ((self.alpha + T) / (self.alpha + T + t)) ** (self.r + x)
        return self.p_alive(x, t_x, T) * (1.0 - quiet)

    def _dead_odds(self, x: Floats, t_x: Floats, T: Floats) -> Floats:  # noqa: N803
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        with np.errstate(divide="ignore", invalid="ignore"):
            odds = a / (b + x - 1.0) * ((alpha + T) / (alpha + t_x)) ** (r + x)
        return np.where(x > 0, odds, 0.0)


def bgnbd_log_likelihood(params: Floats, x: Floats, t_x: Floats, T: Floats) -> float:  # noqa: N803
    """The total log-likelihood of ``(r, alpha, a, b)`` over the histories."""
    r, alpha, a, b = params
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + T)
    repeat = x > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.log(a) - np.log(np.where(repeat, b + x - 1.0, 1.0)) - (r + x) * np.log(alpha + t_x)
    tail = np.where(repeat, np.logaddexp(a3, a4), a3)
    return float(np.sum(a1 + a2 + tail))


def fit_bgnbd(x: Floats, t_x: Floats, T: Floats) -> BgNbd:  # noqa: N803
    """The maximum-likelihood BG/NBD parameters of the histories.

    Raises:
        ValueError: no history, or the fit did not converge.
    """
    if len(x) == 0:
        raise ValueError("no customer to fit")
    if not np.any(x > 0):
        raise ValueError("no customer bought again after their first purchase: BG/NBD has nothing to fit")

    def loss(log_params: Floats) -> float:
        return -bgnbd_log_likelihood(np.exp(log_params), x, t_x, T) / len(x)

    fitted = _minimise(loss, np.log([1.0, max(float(np.mean(T)), 1e-3), 1.0, 1.0]))
    r, alpha, a, b = (float(v) for v in np.exp(fitted))
    return BgNbd(r, alpha, a, b)


@dataclass(frozen=True)
class GammaGamma:
    """Fitted Gamma-Gamma spend parameters."""

    p: float
    q: float
    v: float

    def expected_value(self, x: Floats, m: Floats) -> Floats:
        """Each customer's expected value per transaction; the population mean for those with
        no repeat purchase (``x`` = 0)."""
        p, q, v = self.p, self.q, self.v
        population = p * v / (q - 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            own = p * (v + x * m) / (p * x + q - 1.0)
        return np.where(x > 0, own, population)


def fit_gamma_gamma(x: Floats, m: Floats) -> GammaGamma:
    """The maximum-likelihood Gamma-Gamma parameters, from the customers with repeat purchases
    (``x`` > 0) and their mean repeat transaction value ``m`` (> 0).

    Raises:
        ValueError: no customer with a repeat purchase of positive value, or no convergence.
    """
    keep = (x > 0) & (m > 0)
    x, m = x[keep], m[keep]
    if len(x) == 0:
        raise ValueError("no customer with a repeat purchase of positive value to fit spend on")

    def loss(log_params: Floats) -> float:
        p, q, v = np.exp(log_params)
        ll = (gammaln(p * x + q) - gammaln(p * x) - gammaln(q) + q * np.log(v) + (p * x - 1.0) * np.log(m)
              + p * x * np.log(x) - (p * x + q) * np.log(x * m + v))
        return -float(np.sum(ll)) / len(x)

    p, q, v = (float(value) for value in np.exp(_minimise(loss, np.log([1.0, 2.0, float(np.mean(m))]))))
    if q <= 1.0:
        raise ValueError(f"the spend fit gives q = {q:.3g} <= 1: values so spread have no finite mean")
    return GammaGamma(p, q, v)


def _minimise(loss: object, start: Floats) -> Floats:
    result = minimize(loss, start, method="L-BFGS-B", bounds=[(-20.0, 20.0)] * len(start))
    if not result.success or not np.isfinite(result.fun):
        raise ValueError(f"the fit did not converge: {result.message}")
    return np.asarray(result.x, dtype=np.float64)
