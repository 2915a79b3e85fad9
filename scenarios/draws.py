"""Random draws for the synthetic world: common random numbers, per customer.

A comparison of two journey designs is only as sharp as the two runs are alike. So every draw the
world makes is a fixed function of what it is for, not of its place in one shared stream:

    draw = F(seed, customer, purpose, n, slot)

``purpose`` names a kind of moment in a customer's life (a session, an answer to a message on
one channel, a cart's return, an agent case), ``n`` which one of them it is for this customer
(their session number, the number of the message on that channel), and ``slot`` the draw's
place within it. The world opens a moment with ``begin(customer, purpose, n)`` and then takes
``uniform()``, ``exponential()``, ``lognormal()`` as before. The draw a customer gets for "the
answer to their third email" or "their fifth session" therefore depends neither on what happened
to anyone else nor on the order in which events were handled: two designs that treat a customer
alike up to some moment give them identical lives up to it, and different lives only from what
the designs changed.

Each moment's draws come eight at a time from one BLAKE2b digest (``hashlib``, in C) of the
run's key and the moment's 64-bit counter, which packs customer (28 bits), purpose (4), n (20)
and the block of eight (12), so distinct draws never share an input. That costs about 0.4 us a
moment and 0.1 us a draw, and no state per customer beyond the counters the world keeps.

Sessions, the commonest moments by far, are drawn in bulk instead: ``moment_uniforms`` gives the
draws of many customers' moments at once, as numpy arrays, from Philox4x32-10 (Salmon et al.,
"Parallel random numbers: as easy as 1, 2, 3", SC 2011; the Random123 generator) keyed by the
seed, with the counter (block, n, customer, purpose). The same function of the same inputs, so
the same common random numbers, at a few nanoseconds a draw.
"""

from __future__ import annotations

import hashlib
import math
from array import array

import numpy as np

_UNIT = 1.0 / (1 << 53)
_TWO_PI = 2.0 * math.pi
_NO_BLOCK = array("Q")

# purposes (4 bits): what a moment of a customer's life is
FIRST, SESSION, ORDER, AGENT = 0, 1, 2, 3
ANSWER = 8  # 8 + the channel's index: the answer to a message on that channel
MOMENTS = 1 << 20  # a customer's moments of one purpose are numbered modulo this


class Draws:
    """Counter-based draws keyed by (seed, customer, purpose, n, slot).

    Args:
        seed: the run's seed; the same seed gives the same draw for the same moment on every
            run, design and machine.
    """

    __slots__ = ("seed", "_key", "_moment", "_block", "_slot")

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._key = b"touchpoint-world" + seed.to_bytes(16, "little", signed=True)
        self._moment = 0
        self._block = _NO_BLOCK
        self._slot = 0

    def begin(self, customer: int, purpose: int, n: int) -> None:
        """Open a moment: the draws that follow are the ``n``-th ``purpose`` of ``customer``'s.

        Raises:
            OverflowError: a customer number of 2**28 or more.
        """
        self._moment = ((customer << 4 | purpose) << 20 | n % MOMENTS) << 12
        self._slot = 0

    def uniform(self) -> float:
        """A number in [0, 1): the moment's next draw."""
        slot = self._slot
        self._slot = slot + 1
        i = slot & 7
        if i == 0:  # the next eight, from one digest
            counter = (self._moment | slot >> 3).to_bytes(8, "little")
            self._block = array("Q", hashlib.blake2b(self._key + counter, digest_size=64).digest())
        return (self._block[i] >> 11) * _UNIT

    def normal(self) -> float:
        """A standard normal number (Box-Muller on two of the moment's draws)."""
        radius = math.sqrt(-2.0 * math.log(1.0 - self.uniform()))
        return radius * math.cos(_TWO_PI * self.uniform())

    def exponential(self, mean: float) -> float:
        """An exponential number with the given mean."""
        return -mean * math.log(1.0 - self.uniform())

    def lognormal(self, mu: float, sigma: float) -> float:
        """``exp(mu + sigma * N(0, 1))``."""
        return math.exp(mu + sigma * self.normal())


# -- bulk: Philox4x32-10 over numpy arrays ---------------------------------------------------------

_PHILOX_M = (np.uint64(0xD2511F53), np.uint64(0xCD9E8D57))  # Random123's multipliers
_PHILOX_W = (0x9E3779B9, 0xBB67AE85)  # and key schedule (Weyl) constants
_LOW = np.uint64(0xFFFFFFFF)
_32 = np.uint64(32)


def philox4x32(counter: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], key: tuple[int, int],
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Philox4x32-10 of each counter ``(c0, c1, c2, c3)`` (arrays of 32-bit words, any shape
    that broadcasts) under ``key`` (two 32-bit words): four arrays of 32-bit words, as uint64."""
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint64) & _LOW for c in counter)
    k0, k1 = key
    for _ in range(10):
        p0, p1 = c0 * _PHILOX_M[0], c2 * _PHILOX_M[1]
        c0, c1, c2, c3 = ((p1 >> _32) ^ c1 ^ np.uint64(k0), p1 & _LOW,
                          (p0 >> _32) ^ c3 ^ np.uint64(k1), p0 & _LOW)
        k0, k1 = (k0 + _PHILOX_W[0]) & 0xFFFFFFFF, (k1 + _PHILOX_W[1]) & 0xFFFFFFFF
    return c0, c1, c2, c3


def philox_key(seed: int) -> tuple[int, int]:
    """The run's Philox key: two 32-bit words of a digest of the seed."""
    digest = hashlib.blake2b(b"touchpoint-bulk" + seed.to_bytes(16, "little", signed=True),
                             digest_size=8).digest()
    return int.from_bytes(digest[:4], "little"), int.from_bytes(digest[4:], "little")


def moment_uniforms(key: tuple[int, int], customers: np.ndarray, purpose: int, n: np.ndarray,
                    slots: int, first: int = 0) -> np.ndarray:
    """Draws ``first .. first + slots - 1`` in [0, 1) of moment ``n[i]`` of ``purpose`` of each
    ``customers[i]``: an array of shape ``(len(customers), slots)`` (``first`` even).

    Draw ``s`` of a moment is a fixed function of (seed, customer, purpose, n, s), whoever else
    is in the batch and whichever draws are asked for: each Philox block of the counter
    ``(s // 2, n, customer, purpose)`` gives draws ``s`` and ``s + 1``, of 53 bits each.
    """
    if first % 2:
        raise ValueError(f"moment_uniforms: first={first} must be even (a Philox block holds two draws)")
    blocks = (slots + 1) // 2
    shape = (len(customers), blocks)
    block = np.broadcast_to(np.arange(first // 2, first // 2 + blocks, dtype=np.uint64), shape)
    moment = np.broadcast_to(np.asarray(n, dtype=np.uint64)[:, None], shape)
    who = np.broadcast_to(np.asarray(customers, dtype=np.uint64)[:, None], shape)
    w0, w1, w2, w3 = philox4x32((block, moment, who, np.full(shape, purpose, dtype=np.uint64)), key)
    words = np.stack(((w0 << _32 | w1), (w2 << _32 | w3)), axis=2).reshape(len(customers), 2 * blocks)
    return (words[:, :slots] >> np.uint64(11)).astype(np.float64) * _UNIT
