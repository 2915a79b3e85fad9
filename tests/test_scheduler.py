"""The central scheduler pops items in (time, -priority, sequence) order, whatever the buckets."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.runtime.scheduler import Scheduled, TimerQueue


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


@given(
    st.lists(
        st.tuples(st.sampled_from([0.0, 5.0, 30.0, 59.0, 61.0, 200.0]), st.integers(-2, 2)), max_size=200
    ),
    st.lists(st.tuples(st.floats(0, 300), st.integers(1, 50)), max_size=20),
)
def test_pop_due_takes_the_due_items_in_order_whatever_the_limit(
    items: list[tuple[float, int]], rounds: list[tuple[float, int]]
) -> None:
    queue, reference = TimerQueue(width=60.0), TimerQueue(width=60.0)
    for at, priority in items:  # many items share a time, as in a broadcast
        queue.push(at, 0, None, priority)
        reference.push(at, 0, None, priority)
    taken = []
    for now, limit in sorted(rounds):
        batch = queue.pop_due(now, limit)
        assert len(batch) <= limit and all(item[0] <= now for item in batch)
        if len(batch) < limit:
            assert queue.peek_time() > now  # nothing due was left behind
        taken.extend(batch)
        queue.push(now + 1.0, 0, None)  # a late push, into the bucket being drained
        reference.push(now + 1.0, 0, None)
    taken.extend(drain(queue))
    assert [item[:3] for item in taken] == [item[:3] for item in drain(reference)]


@given(st.lists(st.tuples(st.floats(0, 1e5), st.integers(-3, 3)), max_size=200), st.integers(0, 200))
def test_push_many_queues_as_pushing_one_by_one(items: list[tuple[float, int]], drained: int) -> None:
    one_by_one, at_once = TimerQueue(width=60.0), TimerQueue(width=60.0)
    for queue in (one_by_one, at_once):  # some already due and drained: late pushes too
        for n in range(drained):
            queue.push(float(n), -1, None)
        queue.pop_due(drained / 2, limit=drained)
    for n, (at, priority) in enumerate(items):
        one_by_one.push(at, n, None, priority)
    at_once.push_many(Scheduled(at, n, None, priority) for n, (at, priority) in enumerate(items))
    assert one_by_one.pop_due(2e5, limit=10**6) == at_once.pop_due(2e5, limit=10**6)
