"""The bare-loop ceiling (REFERENCE.md section 8): what one core does per event with no engine.

Per event: a dict lookup by string key, three field updates, a branch and a heappush. An engine
cannot beat this loop on the same machine; reporting it beside every throughput figure turns a
noisy absolute number into a stable ratio.
"""

from __future__ import annotations

import heapq
import statistics
import time


class _Record:
    __slots__ = ("count", "last", "total")

    def __init__(self) -> None:
        self.count = 0
        self.last = 0.0
        self.total = 0.0


def bare_loop_events_per_second(events: int = 1_000_000, keys: int = 100_000) -> float:
    """Events per second of the bare loop over ``events`` events spread over ``keys`` records."""
    table = {f"c{i:07d}": _Record() for i in range(keys)}
    names = list(table)
    heap: list[tuple[float, int]] = []
    started = time.perf_counter()
    for i in range(events):
        record = table[names[i % keys]]
        record.count += 1
        record.last = float(i)
        record.total += 1.5
        if record.count & 1:
            heapq.heappush(heap, (i + 3600.0, i))
        else:
            heapq.heappush(heap, (i + 60.0, i))
    return events / (time.perf_counter() - started)


def measure(repeat: int = 3, events: int = 1_000_000) -> dict[str, float]:
    """Median and best of ``repeat`` bare-loop runs, events per second."""
    runs = [bare_loop_events_per_second(events) for _ in range(repeat)]
    return {"median": statistics.median(runs), "max": max(runs)}
