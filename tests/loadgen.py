"""A load process for the crash test: posts purchase batches with unique messageIds, retrying
each batch (same ids) until it is acknowledged, and appends the acknowledged ids to a file.

    python tests/loadgen.py URL KEY BATCHES OUT_FILE
"""

from __future__ import annotations

import sys
import time

import httpx


def main() -> None:
    url, key, batches, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    deadline = time.monotonic() + 120  # bounded: gives up after two minutes
    with httpx.Client(timeout=5) as client, open(out, "a") as acked:
        for b in range(batches):
            batch = [
                {"type": "track", "userId": f"u{(b * 10 + i) % 17}", "event": "purchase",
                 "properties": {"value": 1}, "messageId": f"b{b}-{i}"}
                for i in range(10)
            ]
            while time.monotonic() < deadline:
                try:
                    response = client.post(f"{url}/v1/batch", json={"writeKey": key, "batch": batch})
                except httpx.HTTPError:
                    time.sleep(0.05)  # the server is down: retry the same ids
                    continue
                if response.status_code == 200:
                    acked.write("".join(f"{call['messageId']} {call['userId']}\n" for call in batch))
                    acked.flush()
                    break
                time.sleep(0.05)


if __name__ == "__main__":
    main()
