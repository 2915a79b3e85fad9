"""The one central scheduler: every timer and every world event of every customer in one queue.

Never a task, coroutine or SimPy process per customer or per timer. Items are tuples
``(at, -priority, seq, customer, payload)`` and leave in exactly that order: same time, higher
priority first, then first scheduled first (as in SimPy's own kernel), so runs are deterministic.

Structure: a bucketed timing wheel. Items go into buckets of ``width`` seconds (a dict of lists,
appends only); a heap of bucket numbers says which bucket is next; only the bucket being drained
is a heap of items. A heap over all pending items costs a tuple comparison per level, about 18
levels at 200k pending; the wheel keeps each item's heap work to the few dozen items of its
bucket. Cancelling is lazy: a cancelled timer stays queued and the actor ignores it by its
version stamp.
"""

from __future__ import annotations

import heapq
import math
from typing import Any

Item = tuple[float, int, int, int, Any]


class TimerQueue:
    """A timing wheel of due items, popped in ``(at, -priority, seq)`` order.

    Args:
        width: bucket width in seconds.
    """

    __slots__ = ("_width", "_buckets", "_keys", "_current", "_current_key", "_seq")

    def __init__(self, width: float = 60.0) -> None:
        self._width = width
        self._buckets: dict[int, list[Item]] = {}
        self._keys: list[int] = []  # heap of the numbers of non-empty future buckets
        self._current: list[Item] = []  # heap: the bucket being drained (and anything earlier)
        self._current_key = -(1 << 62)
        self._seq = 0

    def __len__(self) -> int:
        return len(self._current) + sum(len(bucket) for bucket in self._buckets.values())

    def push(self, at: float, customer: int, payload: Any, priority: int = 0) -> None:
        """Schedule ``payload`` for ``customer`` at ``at``."""
        seq = self._seq = self._seq + 1
        item = (at, -priority, seq, customer, payload)
        key = int(at // self._width)
        if key <= self._current_key:
            heapq.heappush(self._current, item)
            return
        bucket = self._buckets.get(key)
        if bucket is None:
            self._buckets[key] = [item]
            heapq.heappush(self._keys, key)
        else:
            bucket.append(item)

    @property
    def due(self) -> list[Item]:
        """The heap of the bucket being drained: the same list object for the queue's lifetime.

        A hot loop may read ``due[0]`` and ``heapq.heappop(due)`` directly while ``due`` is not
        empty, and call ``peek_time`` when it is (which moves the next bucket in).
        """
        return self._current

    def peek_time(self) -> float:
        """When the next item is due (infinity when nothing is pending)."""
        current = self._current
        if not current:
            if not self._keys:
                return math.inf
            key = heapq.heappop(self._keys)
            current[:] = self._buckets.pop(key)
            heapq.heapify(current)
            self._current_key = key
        return current[0][0]

    def pop(self) -> Item:
        """Remove and return the next item ``(at, -priority, seq, customer, payload)``.

        Raises:
            IndexError: nothing is pending.
        """
        if self.peek_time() == math.inf:
            raise IndexError("pop from an empty TimerQueue")
        return heapq.heappop(self._current)
