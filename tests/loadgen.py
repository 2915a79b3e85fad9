"""A load process for the crash test: posts batches with unique messageIds at a steady pace,
retrying each batch (same ids) until it is acknowledged, and appends the acknowledged calls to a
file as ``messageId userId type`` lines.

Each batch brings CUSTOMERS new customers: an identify (email and phone traits) and a purchase.

    python tests/loadgen.py URL KEY BATCHES CUSTOMERS PER_SECOND OUT_FILE
"""

from __future__ import annotations

import sys
import time

import httpx


def batch_of(b: int, customers: int) -> list[dict[str, object]]:
    calls: list[dict[str, object]] = []
    for i in range(customers):
        who = f"c{b}-{i}"
        traits = {"email": f"{who}@example.com", "phone": f"+1555{b:04d}{i:03d}"}
        calls.append({"type": "identify", "userId": who, "traits": traits, "messageId": f"{who}-id"})
        calls.append({"type": "track", "userId": who, "event": "purchase", "properties": {"value": 1},
                      "messageId": f"{who}-buy"})
    return calls


def main() -> None:
    url, key, batches, customers = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    pause, out = 1.0 / float(sys.argv[5]), sys.argv[6]
    deadline = time.monotonic() + 120  # bounded: gives up after two minutes
    with httpx.Client(timeout=5) as client, open(out, "a") as acked:
        for b in range(batches):
            batch = batch_of(b, customers)
            while time.monotonic() < deadline:
                try:
                    response = client.post(f"{url}/v1/batch", json={"writeKey": key, "batch": batch})
                except httpx.HTTPError:
                    time.sleep(0.05)  # the server is down: retry the same ids
                    continue
                if response.status_code == 200:
                    acked.write("".join(f"{c['messageId']} {c['userId']} {c['type']}\n" for c in batch))
                    acked.flush()
                    break
                time.sleep(0.05)
            time.sleep(pause)


if __name__ == "__main__":
    main()
