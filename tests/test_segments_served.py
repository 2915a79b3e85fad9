"""Live segments in the running server (``touchpoint serve``, a real process on 127.0.0.1): a
purchase takes the customer out of the cart segment and out of the cart journey before the
response to that very request returns; membership shows in the profile API and segment sizes in
``/metrics``; segment state and its timers survive a restart; a scoring pass scores customers."""

from __future__ import annotations

import signal

import httpx
import pytest
from serving import ADMIN, KEY, start, stop

BEARER = {"authorization": f"Bearer {ADMIN}"}


def track(url: str, user: str, event: str, value: float) -> httpx.Response:
    call = {"type": "track", "userId": user, "event": event, "properties": {"value": value}}
    return httpx.post(f"{url}/v1/track", json=call, auth=(KEY, ""), timeout=30)


def profile(url: str, user: str) -> dict:
    response = httpx.get(f"{url}/v1/profiles/{user}", headers=BEARER, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def segment_members(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", headers=BEARER, timeout=30).text
    return {line.split('"')[1]: float(line.split()[-1]) for line in text.splitlines()
            if line.startswith("touchpoint_segment_members{")}


@pytest.mark.slow
def test_a_purchase_leaves_the_cart_segment_and_journey_before_its_response_returns(tmp_path):
    data = tmp_path / "data"
    process, url = start(data, "--admin-token", ADMIN, scenario="broadcast_targeting")
    try:
        assert track(url, "ada", "cart_add", 80).status_code == 200
        shown = profile(url, "ada")
        assert shown["segments"] == ["cart_open"]
        assert shown["journeys"]["cart_abandonment"]["step"] == "wait_1h"
        assert segment_members(url) == {"cart_open": 1.0, "likely_buyer": 0.0}

        assert track(url, "ada", "purchase", 80).status_code == 200
        # the next request sees what the purchase did: the engine applied it before answering
        shown = profile(url, "ada")
        assert shown["segments"] == []
        assert shown["journeys"]["cart_abandonment"]["step"] is None
        assert shown["purchases"]["first_at"] == shown["purchases"]["last_at"] is not None
        assert segment_members(url)["cart_open"] == 0.0

        assert track(url, "bo", "cart_add", 30).status_code == 200
        before = profile(url, "bo")["segment_timer_at"] - 3 * 86400  # (when bo's cart was added)
    except BaseException:
        process.kill()
        raise
    stop(process, signal.SIGTERM)

    process, url = start(data, "--admin-token", ADMIN, scenario="broadcast_targeting")
    try:  # bo's segment and its 3-day timer came back with the snapshot
        shown = profile(url, "bo")
        assert shown["segments"] == ["cart_open"]
        assert shown["segment_timer_at"] == pytest.approx(before + 3 * 86400, abs=1.0)
        assert segment_members(url)["cart_open"] == 1.0
        scored = profile(url, "ada")["scores"]  # the pass at start scored ada, a buyer
        assert scored is not None and scored["frequency"] == 1.0  # (the only buyer: rank 0 of 1)
        assert set(scored) == {"at", "recency", "frequency", "monetary", "p_alive", "expected",
                               "likelihood", "churn_risk"}
    except BaseException:
        process.kill()
        raise
    stop(process, signal.SIGTERM)
