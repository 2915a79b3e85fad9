"""The dormant store: actors restored from a snapshot and not needed since, each kept as its raw
record beside the chunk it was read from, and turned into an actor when the first message for it
comes (``Dormant.wake``).

A restore of a million actors makes two objects per actor this way, not twenty, and a record
still dormant at the next snapshot is written back as it was read (``chunks_to_write``). A chunk
is let go once all of its actors are awake. The store knows the chunk records of
``actors.codec``, not the snapshot file around them (``snapshots.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import repeat
from typing import Any

import msgspec

from actors.actor import Actor
from actors.codec import Chunk, actor_from, actors_of, rewrite_chunk, to_chunk
from actors.messages import TimerFired


class Dormant:
    """Actors restored from a snapshot and not needed since: each one's raw record, with its
    chunk, turned into an actor on first use (``wake``). A chunk is let go once all of its
    actors are awake."""

    def __init__(self) -> None:
        self.records: dict[str, tuple[Chunk, msgspec.Raw]] = {}  # customer id -> (chunk, raw record)
        self.chunks: dict[Chunk, int] = {}  # -> how many of its actors are still dormant

    def __len__(self) -> int:
        return len(self.records)

    def __contains__(self, customer_id: object) -> bool:
        return customer_id in self.records

    def add(self, chunk: Chunk) -> None:
        """Take a chunk's actors in, dormant."""
        self.chunks[chunk] = len(chunk)
        entries = zip(repeat(chunk), chunk.records, strict=False)  # (pairs made in C, no loop)
        self.records.update(zip(chunk.ids, entries, strict=True))

    def wake(self, customer_id: str) -> Actor | None:
        """The actor of ``customer_id``, no longer dormant (None: it is not here)."""
        entry = self.records.pop(customer_id, None)
        if entry is None:
            return None
        chunk, raw = entry
        left = self.chunks[chunk] - 1
        if left:
            self.chunks[chunk] = left
        else:
            del self.chunks[chunk]
        return actor_from(chunk, customer_id, raw)

    def peek(self, customer_id: str) -> Actor | None:
        """A copy of the dormant actor of ``customer_id`` to read, which stays dormant (None: it
        is not here)."""
        entry = self.records.get(customer_id)
        return None if entry is None else actor_from(entry[0], customer_id, entry[1])

    def wake_all(self) -> dict[str, Actor]:
        """Every dormant actor, by customer id (none stays dormant)."""
        actors: dict[str, Actor] = {}
        for chunk, left in self.chunks.items():
            if left == len(chunk):  # (the usual case, as for ``export``: all of it in one go)
                actors.update(actors_of(chunk))
        for customer_id, (chunk, raw) in self.records.items():
            if customer_id not in actors:
                actors[customer_id] = actor_from(chunk, customer_id, raw)
        self.records.clear()
        self.chunks.clear()
        return actors

    def live_timers(self) -> list[tuple[float, str, TimerFired, int]]:
        """The live timers of the dormant actors, as ``(due_at, customer_id, fired, priority)``
        for ``TimerQueue.push_many`` (the fields of ``Scheduled``, as plain tuples: a million
        records would add about 0.23 s, a sixth, to a restore). Equal ``TimerFired`` messages
        are one object (they are frozen): a million timers of a few journey versions make a few
        messages."""
        records, items = self.records, []
        messages: dict[tuple[str, int], TimerFired] = {}
        for chunk in self.chunks:
            ids, journeys, priorities = chunk.ids, chunk.journeys, chunk.priorities()
            actor_at, journey_at, versions, due = chunk.timer_columns()
            for position, journey, version, at in zip(actor_at, journey_at, versions, due, strict=True):
                customer_id = ids[position]
                if customer_id in records:
                    fired = messages.get((journeys[journey], version))
                    if fired is None:
                        fired = messages[journeys[journey], version] = TimerFired(journeys[journey], version)
                    items.append((at, customer_id, fired, priorities[journey]))
        return items

    def chunks_to_write(self, size: int) -> Iterator[tuple[Any, ...]]:
        """The dormant actors as chunks: their records and columns as they were read, or, from
        a chunk that less than half of is still dormant, made into actors and packed anew, up to
        ``size`` a chunk (a rewritten chunk carries all of its columns, so a few records must not
        keep a whole chunk's worth alive). They stay dormant here either way."""
        records = self.records
        sparse: list[Actor] = []
        for chunk in self.chunks:
            keep = []
            for position, customer_id in enumerate(chunk.ids):
                entry = records.get(customer_id)
                if entry is not None and entry[0] is chunk:
                    keep.append(position)
            if 2 * len(keep) >= len(chunk):
                yield rewrite_chunk(chunk, keep)
            else:
                sparse.extend(actor_from(chunk, chunk.ids[i], chunk.records[i]) for i in keep)
        for start in range(0, len(sparse), size):
            yield to_chunk(sparse[start : start + size])
