"""The central scheduler pops items in (time, -priority, sequence) order, whatever the buckets."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.scheduler import TimerQueue


def drain(queue: TimerQueue) -> list[tuple[float, int, int, int, object]]:
    out = []
    while queue.peek_time() != float("inf"):
        out.append(queue.pop())
    return out


def test_ties_go_to_higher_priority_then_first_scheduled() -> None:
    queue = TimerQueue(width=60.0)
    queue.push(100.0, 1, "low-first", priority=0)
    queue.push(100.0, 2, "high", priority=5)
    queue.push(100.0, 3, "low-second", priority=0)
    queue.push(99.5, 4, "earlier")
    assert [item[4] for item in drain(queue)] == ["earlier", "high", "low-first", "low-second"]


def test_items_pushed_into_the_bucket_being_drained_keep_their_order() -> None:
    queue = TimerQueue(width=60.0)
    queue.push(10.0, 1, "a")
    queue.push(50.0, 1, "c")
    assert queue.peek_time() == 10.0
    assert queue.pop()[4] == "a"
    queue.push(20.0, 1, "b")  # lands in the bucket being drained, before "c"
    queue.push(130.0, 1, "d")  # a later bucket
    assert [item[4] for item in drain(queue)] == ["b", "c", "d"]


def test_len_counts_pending_items_and_empty_pop_raises() -> None:
    queue = TimerQueue()
    for i in range(5):
        queue.push(i * 100.0, i, None)
    queue.pop()
    assert len(queue) == 4
    drain(queue)
    assert len(queue) == 0
    with pytest.raises(IndexError):
        queue.pop()


@given(st.lists(st.tuples(st.floats(0, 1e6), st.integers(-3, 3)), max_size=300), st.integers(0, 2**32))
def test_matches_a_plain_sort_under_interleaved_pushes_and_pops(
    items: list[tuple[float, int]], seed: int
) -> None:
    rng = random.Random(seed)
    queue = TimerQueue(width=37.0)
    popped, now = [], 0.0
    expected_pending: list[tuple[float, int, int]] = []
    seq = 0
    for at, priority in items:
        at = max(at, now)  # nothing is scheduled in the past
        seq += 1
        queue.push(at, 0, seq, priority)
        expected_pending.append((at, -priority, seq))
        if rng.random() < 0.4:
            item = queue.pop()
            now = item[0]
            popped.append(item[:3])
            expected_pending.remove(item[:3])
            assert item[:3] == min(expected_pending + [item[:3]])
    popped.extend(item[:3] for item in drain(queue))
    assert sorted(set(popped)) == sorted(popped)  # nothing popped twice
    assert len(popped) == len(items)
