"""The one central scheduler: every timer and every world event of every customer in one queue.

Never a task, coroutine or SimPy process per customer or per timer. An item goes in as
``push(at, customer, payload, priority)`` (or many, each ``Scheduled(at, customer, payload,
priority)``: the same fields in the same order) and comes out as the tuple ``(at, -priority, seq,
customer, payload)`` (``Item``), in exactly that order: same time, higher priority first, then
first scheduled first (as in SimPy's own kernel), so runs are deterministic. The queue is generic
over the customer key (string ids in real time, population numbers in simulation) and the payload.

Queued items stay bare tuples on purpose: they are compared by the sort and the heap in C, and a
NamedTuple costs 230 ns more to make than a tuple (measured: 261 against 30 ns), about 6% of a
simulated run, which queues one item per timer and per world wake-up.

Structure: a bucketed timing wheel. Items go into buckets of ``width`` seconds (a dict of lists,
appends only); a heap of bucket numbers says which bucket is next. The bucket being drained is
sorted once (in C; items are mostly appended in time order already, which the sort exploits) and
consumed from its end, so a pop costs no comparison at all, however many items share the bucket
(a broadcast: a million timers due the same minute). Items pushed into the bucket being drained,
or earlier, go to a small heap that ``pop`` merges in. Cancelling is lazy: a cancelled timer stays
queued and the actor ignores it by its version stamp.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Hashable, Iterable
from typing import Generic, NamedTuple, TypeVar

K = TypeVar("K", bound=Hashable | None)  # how customers are named (None: the world itself)
P = TypeVar("P")  # what is due: a message, a world wake-up


class Scheduled(NamedTuple, Generic[K, P]):
    """An item to schedule, as ``push`` takes it: ``payload`` for ``customer`` at ``at``."""

    at: float
    customer: K
    payload: P
    priority: int = 0


Item = tuple[float, int, int, K, P]  # (at, -priority, seq, customer, payload): the queue order


class TimerQueue(Generic[K, P]):
    """A timing wheel of due items, popped in ``(at, -priority, seq)`` order.

    Args:
        width: bucket width in seconds.
    """

    __slots__ = ("_width", "_buckets", "_keys", "_current", "_late", "_current_key", "_seq")

    def __init__(self, width: float = 60.0) -> None:
        self._width = width
        self._buckets: dict[int, list[Item[K, P]]] = {}
        self._keys: list[int] = []  # heap of the numbers of non-empty future buckets
        self._current: list[Item[K, P]] = []  # the bucket being drained, sorted last-first
        self._late: list[Item[K, P]] = []  # heap: pushed into the bucket being drained, or earlier
        self._current_key = -(1 << 62)
        self._seq = 0

    def __len__(self) -> int:
        return len(self._current) + len(self._late) + sum(len(b) for b in self._buckets.values())

    def push(self, at: float, customer: K, payload: P, priority: int = 0) -> None:
        """Schedule ``payload`` for ``customer`` at ``at``."""
        seq = self._seq = self._seq + 1
        item: Item[K, P] = (at, -priority, seq, customer, payload)
        key = int(at // self._width)
        if key <= self._current_key:
            heapq.heappush(self._late, item)
            return
        bucket = self._buckets.get(key)
        if bucket is None:
            self._buckets[key] = [item]
            heapq.heappush(self._keys, key)
        else:
            bucket.append(item)

    def push_many(self, items: Iterable[Scheduled[K, P] | tuple[float, K, P, int]]) -> None:
        """Schedule each ``Scheduled(at, customer, payload, priority)`` as ``push`` would, in
        order, in one call (a restore arms a million timers). A plain tuple of the same fields
        will do where making a million records would cost (``Dormant.live_timers``)."""
        width, buckets, keys, late, current_key = (
            self._width, self._buckets, self._keys, self._late, self._current_key
        )
        seq = self._seq
        for at, customer, payload, priority in items:
            seq += 1
            item: Item[K, P] = (at, -priority, seq, customer, payload)
            key = int(at // width)
            if key <= current_key:
                heapq.heappush(late, item)
                continue
            bucket = buckets.get(key)
            if bucket is None:
                buckets[key] = [item]
                heapq.heappush(keys, key)
            else:
                bucket.append(item)
        self._seq = seq

    def peek_time(self) -> float:
        """When the next item is due (infinity when nothing is pending)."""
        current, late = self._current, self._late
        if not current:
            if late:
                return late[0][0]
            if not self._keys:
                return math.inf
            key = heapq.heappop(self._keys)
            current[:] = self._buckets.pop(key)
            current.sort(reverse=True)
            self._current_key = key
        if late and late[0] < current[-1]:
            return late[0][0]
        return current[-1][0]

    def pop(self) -> Item[K, P]:
        """Remove and return the next item ``(at, -priority, seq, customer, payload)``.

        Raises:
            IndexError: nothing is pending.
        """
        current, late = self._current, self._late
        # (the late heap holds only items of the bucket being drained or earlier, and every
        # future bucket is later still: the next item is the earlier of the two heads)
        if late and (not current or late[0] < current[-1]):
            return heapq.heappop(late)
        if current:
            return current.pop()
        if self.peek_time() == math.inf:  # (loads the next bucket)
            raise IndexError("pop from an empty TimerQueue")
        return self.pop()

    def pop_due(self, now: float, limit: int) -> list[Item[K, P]]:
        """Remove and return the items due at or before ``now``, in order, at most ``limit``."""
        out: list[Item[K, P]] = []
        current, late = self._current, self._late
        while len(out) < limit and self.peek_time() <= now:
            if late:
                out.append(self.pop())
                continue
            # no late items: take a run of the sorted bucket at once, from its end
            take = min(limit - len(out), len(current))
            if current[-take][0] > now:  # not all due: find where the due ones start
                lo, hi = len(current) - take, len(current) - 1
                while lo < hi:  # first index whose item is due (times fall towards the end)
                    mid = (lo + hi) // 2
                    if current[mid][0] <= now:
                        hi = mid
                    else:
                        lo = mid + 1
                take = len(current) - lo
            run = current[-take:]
            del current[-take:]
            run.reverse()
            out.extend(run)
        return out
