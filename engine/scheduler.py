"""The one central scheduler: every timer and every world event of every customer in one heap.

Never a task, coroutine or SimPy process per customer or per timer: a heap of
``(at, -priority, seq, customer, payload)`` tuples, popped in that order. Ties are deterministic:
same time, higher priority first, then first scheduled first (as in SimPy's own kernel). Cancelling
is lazy: a cancelled timer stays in the heap and the actor ignores it by its version stamp.
"""

from __future__ import annotations

import heapq
import math
from typing import Any


class TimerQueue:
    """A heap of due items keyed by ``(at, -priority, seq)``."""

    __slots__ = ("_heap", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, int, int, Any]] = []
        self._seq = 0

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, at: float, customer: int, payload: Any, priority: int = 0) -> None:
        """Schedule ``payload`` for ``customer`` at ``at``."""
        self._seq += 1
        heapq.heappush(self._heap, (at, -priority, self._seq, customer, payload))

    def peek_time(self) -> float:
        """When the next item is due (infinity when empty)."""
        return self._heap[0][0] if self._heap else math.inf

    def pop(self) -> tuple[float, int, int, int, Any]:
        """Remove and return the next item ``(at, -priority, seq, customer, payload)``."""
        return heapq.heappop(self._heap)
