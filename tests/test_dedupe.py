"""The message-id store forgets by age and by count, and survives a snapshot round trip."""

from __future__ import annotations

from engine.runtime.dedupe import SeenMessageIds


def test_ids_expire_with_the_window_and_the_oldest_go_past_the_capacity():
    seen = SeenMessageIds(window=100.0, capacity=5)
    seen.remember(["a", "b"], now=0.0)
    seen.remember(["c", "d"], now=50.0)
    assert all(seen.seen(mid) for mid in "abcd") and not seen.seen(None)
    seen.remember(["e", "f"], now=60.0)  # six ids: the oldest batch goes
    assert not seen.seen("a") and not seen.seen("b") and len(seen) == 4
    seen.remember([], now=155.0)  # c and d are past the window now
    assert sorted(seen.recent(155.0)) == ["e", "f"] and len(seen) == 2


def test_recent_and_restore_round_trip_in_time_order():
    seen = SeenMessageIds(window=1000.0, capacity=10)
    seen.remember(["x", "y"], now=10.0)
    seen.remember(["z"], now=20.0)
    again = SeenMessageIds(window=1000.0, capacity=2)
    again.restore(seen.recent(20.0))
    assert again.recent(20.0) == {"x": 10.0, "y": 10.0, "z": 20.0}
    again.remember(["w"], now=30.0)  # over capacity: the oldest batch (x, y) goes first
    assert again.recent(30.0) == {"z": 20.0, "w": 30.0}
