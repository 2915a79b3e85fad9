"""Random draws for the synthetic world, fast and reproducible.

Scalar draws from numpy cost about a microsecond each; the world needs several per event. So
``Draws`` takes uniforms and standard normals from a seeded ``numpy.random.Generator`` in blocks and
hands them out one at a time: the same seed gives the same sequence on every run.
"""

from __future__ import annotations

import math

import numpy as np

BLOCK = 1 << 13  # 8,192 draws per numpy call: the call cost is amortised, the list stays small


class Draws:
    """A seeded stream of uniform, normal, exponential and lognormal numbers.

    Args:
        rng: the generator the blocks come from (its seed fixes the whole stream).
    """

    __slots__ = ("_rng", "_uniforms", "_u", "_normals", "_n")

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._uniforms: list[float] = []
        self._u = 0
        self._normals: list[float] = []
        self._n = 0

    def uniform(self) -> float:
        """A number in [0, 1)."""
        i = self._u
        if i == len(self._uniforms):
            self._uniforms = self._rng.random(BLOCK).tolist()
            i = 0
        self._u = i + 1
        return self._uniforms[i]

    def normal(self) -> float:
        """A standard normal number."""
        i = self._n
        if i == len(self._normals):
            self._normals = self._rng.standard_normal(BLOCK).tolist()
            i = 0
        self._n = i + 1
        return self._normals[i]

    def exponential(self, mean: float) -> float:
        """An exponential number with the given mean."""
        return -mean * math.log(1.0 - self.uniform())

    def lognormal(self, mu: float, sigma: float) -> float:
        """``exp(mu + sigma * N(0, 1))``."""
        return math.exp(mu + sigma * self.normal())
