"""Latency histograms with fixed buckets, as Prometheus histograms count them.

The real-time engine keeps two (``engine.edge.monitoring`` exports them at scrape time):

- trigger latency, kept by the outbox: from what caused a send (the acceptance of the event
  that triggered it, or the due time of the timer that made it) to the send handed to its
  provider, rate limit waits included;
- timer lateness, kept by the runtime: from a timer's due time to the moment it fires.

Observing costs a bisection over the bucket bounds and three additions: no allocation.
"""

from __future__ import annotations

from bisect import bisect_left

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
           60.0)  # seconds: upper bounds, the last bucket (+Inf) implied


class LatencyHistogram:
    """Counts of observations by bucket, their sum and their number.

    Attributes:
        bounds: the buckets' upper bounds, in seconds (inclusive, as Prometheus's ``le``).
        counts: observations per bucket (one more than ``bounds``: the last is above them all).
    """

    __slots__ = ("bounds", "counts", "total", "count")

    def __init__(self, bounds: tuple[float, ...] = BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        """Count one latency (a negative one, from clocks a hair apart, counts as zero)."""
        seconds = max(seconds, 0.0)
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, observations at or below it)`` per bucket, ``+Inf`` last: Prometheus's form."""
        buckets, running = [], 0
        for bound, count in zip((*map(repr, self.bounds), "+Inf"), self.counts, strict=True):
            running += count
            buckets.append((bound, running))
        return buckets
