"""Client message ids applied lately, so that a client's retry is applied once.

Segment's clients retry a batch with the same ``messageId`` values after a 5xx, a 429 or a lost
answer, and Segment dedupes over about 24 hours (REFERENCE.md section 6). The runtime keeps the
ids it applied in a set, and the batches they came in, oldest first, in a queue: expiring is
dropping whole batches from the front, O(1) per id, with no scan.

Memory stays bounded: ids are kept for ``window`` seconds, or, when traffic is heavy, for the
latest ``capacity`` ids, whichever is fewer (at about 100 bytes an id, the default two million
cost some 200 MB; 24 hours at 50,000 events a second would be four billion). Client retries come
within minutes, far inside either bound.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from itertools import groupby
from typing import Any, TypeVar

Entry = TypeVar("Entry", bound=tuple[Any, ...])  # (customer_id, message, message_id)

DAY = 86_400.0


class SeenMessageIds:
    """Message ids applied within ``window`` seconds (at most the latest ``capacity``)."""

    def __init__(self, window: float = DAY, capacity: int = 2_000_000) -> None:
        self.window = window
        self.capacity = capacity
        self._ids: set[str] = set()
        self._batches: deque[tuple[float, list[str]]] = deque()  # (applied at, ids), oldest first

    def __len__(self) -> int:
        return len(self._ids)

    def seen(self, message_id: str | None) -> bool:
        """Whether this id was already applied within the window (None ids never were)."""
        return message_id in self._ids

    def unseen(self, entries: list[Entry]) -> list[Entry]:
        """The ``(customer_id, message, message_id)`` entries not applied within the window
        (those without an id included)."""
        ids = self._ids  # None is never in it
        return [entry for entry in entries if entry[2] not in ids]

    def remember(self, message_ids: Iterable[str], now: float) -> None:
        """Record ids that were just applied (durably); forget those past the bounds."""
        batch = list(message_ids)
        if batch:
            self._batches.append((now, batch))
            self._ids.update(batch)
        batches, ids = self._batches, self._ids
        while batches and (batches[0][0] < now - self.window or len(ids) > self.capacity):
            ids.difference_update(batches.popleft()[1])

    def recent(self, now: float) -> dict[str, float]:
        """The ids applied within the window before ``now``, with when (what a snapshot keeps)."""
        return {mid: at for at, batch in self._batches if at >= now - self.window for mid in batch}

    def restore(self, seen: dict[str, float]) -> None:
        """Take over ids recovered from a snapshot and the log (id -> when applied)."""
        ordered = sorted(seen.items(), key=lambda item: item[1])
        for at, group in groupby(ordered, key=lambda item: item[1]):
            batch = [mid for mid, _ in group]
            self._batches.append((at, batch))
            self._ids.update(batch)
