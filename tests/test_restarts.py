"""Journey statistics survive restarts: a snapshot keeps them, the log after it is replayed.

One script of batches is played twice against a real ``touchpoint serve`` of the cart scenario:
once with no interruption, and once with three kill -9 restarts on the same data folder, one of
them right after a batch (before any snapshot could hold it: the log replay must), the others
after a periodic snapshot. ``/v1/journeys`` is then the same, figure for figure, except the times
to convert: those are wall-clock durations, and the two plays are paced differently.
"""

from __future__ import annotations

import signal
import time
from typing import Any

import httpx
import pytest
from serving import ADMIN, KEY, start, stop

PHASES = 4


def batch(phase: int) -> list[dict[str, Any]]:
    """Phase ``phase``'s calls: customers who arrive, fill carts (some under the entry filter's 20),
    buy with Segment's name or the journey's own, and come back."""
    calls: list[dict[str, Any]] = []
    for i in range(phase * 30, phase * 30 + 30):
        who = f"c{i}"
        calls.append({"type": "identify", "userId": who, "traits": {"email": f"{who}@example.com"},
                      "context": {"timezone": "Asia/Tokyo" if i % 2 else "America/New_York"}})
        calls.append({"type": "track", "userId": who, "event": "Product Added",
                      "properties": {"value": 15 if i % 7 == 0 else 40 + i}})
    for i in range(0, phase * 30, 3):  # earlier customers buy, some of them twice over the phases
        name = "Order Completed" if i % 2 else "purchase"
        calls.append({"type": "track", "userId": f"c{i}", "event": name,
                      "properties": {"revenue" if i % 2 else "value": 20 + i}})
    return calls


def post(url: str, calls: list[dict[str, Any]]) -> None:
    answer = httpx.post(f"{url}/v1/batch", json={"batch": calls}, auth=(KEY, ""), timeout=30)
    assert answer.status_code == 200, answer.text


def journeys(url: str) -> dict[str, Any]:
    answer = httpx.get(f"{url}/v1/journeys", headers={"authorization": f"Bearer {ADMIN}"}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def without_times(figures: dict[str, Any]) -> dict[str, Any]:
    """The figures with the time to convert set aside (wall-clock durations)."""
    for journey in figures.values():
        for group in ("treated", "holdout"):
            times = journey[group].pop("time_to_convert_h")
            assert (times["median"] is None) == (journey[group]["conversions"] == 0)
    return figures


def serve(data) -> tuple[Any, str]:
    return start(data, "--admin-token", ADMIN, "--snapshot-every", "1", "--fsync", "none")


@pytest.mark.slow
def test_journey_statistics_are_the_same_after_three_kill_9_restarts(tmp_path):
    process, url = serve(tmp_path / "straight")
    try:
        for phase in range(PHASES):
            post(url, batch(phase))
        straight = journeys(url)
    finally:
        stop(process, signal.SIGTERM)

    data = tmp_path / "killed"
    process, url = serve(data)
    try:
        for phase in range(PHASES):
            post(url, batch(phase))
            if phase == PHASES - 1:
                break
            if phase != 1:
                time.sleep(2.5)  # a periodic snapshot holds the phase (phase 1: only the log does)
            process.kill()  # kill -9
            process.wait()
            process, url = serve(data)
        restarted = journeys(url)
    finally:
        if process.poll() is None:
            stop(process, signal.SIGTERM)
    assert len(list((data / "snapshots").glob("snap-*.msgpack"))) > 0

    cart = straight["cart_abandonment"]
    assert cart["entrants"] > 60 and cart["treated"]["conversions"] > 20, "the script does something"
    assert cart["exits"].get("purchase", 0) > 20
    assert without_times(restarted) == without_times(straight)
