"""The synthetic population: who the customers are, drawn once, vectorised and seeded.

Each customer gets a time zone, reachability per channel (an email address, push opt-in, SMS
consent), a browsing session rate (gamma-distributed: a few heavy visitors, many light ones), a
response propensity per channel on the logit scale (``alpha_i`` of REFERENCE.md section 2, partly
shared across channels), and membership of the "weariness" class that tires of messages faster.
Columns are compact ``array.array`` values (single precision where that is plenty): a million
customers take about 25 MB.
"""

from __future__ import annotations

from array import array
from typing import Any

import numpy as np

from actors.profile import ALWAYS_REACHABLE, CHANNEL_BIT
from scenarios.config import PopulationConfig

RESPONSIVE_CHANNELS = ("email", "sms", "push", "in_app", "webhook")


class Population:
    """Columns of per-customer traits, indexed by customer number ``0 .. size-1``."""

    __slots__ = ("size", "tz_offset", "reach", "session_rate", "alpha", "weary")

    def __init__(
        self,
        size: int,
        tz_offset: array[Any],
        reach: array[Any],
        session_rate: array[Any],
        alpha: dict[str, array[Any]],
        weary: array[Any],
    ) -> None:
        self.size = size
        self.tz_offset = tz_offset  # seconds from UTC
        self.reach = reach  # channel bit set (actors.profile.CHANNEL_BIT)
        self.session_rate = session_rate  # sessions per day
        self.alpha = alpha  # per channel: logit shift of response rates
        self.weary = weary  # 1 for the weariness class


def customer_id(index: int) -> str:
    """The stable id of customer number ``index``."""
    return f"c{index:07d}"


def generate_population(config: PopulationConfig, size: int, rng: np.random.Generator) -> Population:
    """Draw a population of ``size`` customers.

    Args:
        config: the scenario's ``[population]`` table.
        size: how many customers.
        rng: a seeded generator (the same seed gives the same population).
    """
    weights = np.asarray(config.tz_weights, dtype=float)
    tz_hours = rng.choice(np.asarray(config.tz_hours), size=size, p=weights / weights.sum())
    reach = np.full(size, ALWAYS_REACHABLE, dtype=np.int64)
    for channel, share in (
        ("email", config.email_known),
        ("push", config.push_opt_in),
        ("sms", config.sms_consent),
    ):
        reach |= np.where(rng.random(size) < share, CHANNEL_BIT[channel], 0)
    shape = config.session_rate_shape
    rate = rng.gamma(shape, config.sessions_per_day / shape, size=size)
    # alpha = sd * (0.6 shared + 0.8 own): variance sd^2 (0.36 + 0.64), correlation 0.36 across
    # channels. The world relies on the spread being exactly propensity_sd when it solves its
    # intercepts so that average response rates match the benchmarks.
    shared = rng.standard_normal(size)
    alpha = {}
    for channel in RESPONSIVE_CHANNELS:
        own = rng.standard_normal(size)
        alpha[channel] = _column("f", config.propensity_sd * (0.6 * shared + 0.8 * own))
    weary = rng.random(size) < config.weary_share
    return Population(
        size=size,
        tz_offset=_column("f", tz_hours * 3600.0),
        reach=_column("B", reach),
        session_rate=_column("f", rate),
        alpha=alpha,
        weary=_column("b", weary),
    )


_DTYPES = {"f": np.float32, "d": np.float64, "B": np.uint8, "b": np.int8}


def _column(typecode: str, values: np.ndarray) -> array[Any]:
    """A compact ``array.array`` column from a numpy vector, without a detour through floats."""
    column = array(typecode)
    column.frombytes(np.ascontiguousarray(values, dtype=_DTYPES[typecode]).tobytes())
    return column
