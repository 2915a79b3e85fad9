"""What the real-time runtime takes in: batches of submissions, the tickets their submitters wait
on, and the time each message is applied at.

Event time. An event carries its corrected timestamp (the edge's ``timestamp`` property:
``engine.edge.segment.corrected_timestamp``), and is applied at it when that lies in the recent
past, within ``EVENT_TIME_BOUND`` (6 hours) of its arrival: a mobile client flushing its offline
queue, or a backfill, is timed as it happened, so goal windows, waits and policies see when
things happened (a wait already over fires at once). An event stamped earlier than that is
``Recorded``: counted in the profile (a purchase's count, revenue and time), acted on by no
journey, so it re-runs no timer that would long have fired. A timestamp ahead of the arrival,
and every other message, is applied at its arrival; and no message is applied earlier than its
customer's latest interaction (``actors.actor.Actor.handle``), so their history stays in order.
"""

from __future__ import annotations

from collections.abc import Sequence

import anyio

from actors.messages import Event, Message, Recorded, Submission

# What a round logs and applies: the submissions, and the timers due as (customer_id, fired, None).
# Timers join as bare tuples: a NamedTuple costs 230 ns more to make, more than a whole fire
# through the runtime takes (bench.realtime: about 180 ns a timer); a Submission is a tuple too.
Work = tuple[str, Message, str | None]
EVENT_TIME_BOUND = 6 * 3600.0  # an event stamped up to 6 hours back is applied at its time


class EngineUnavailable(Exception):
    """The engine cannot take a batch now (it failed, is stopping, or its log cannot be written):
    nothing of it was applied; an edge answers 503 and the client retries."""


class Ticket:
    """A submitter's wait for its batch: ``done`` is set once the batch is durable, or refused
    (``error`` then says why). ``accepted_at`` is the engine time the batch was submitted: what
    the trigger latency of the sends it causes counts from."""

    __slots__ = ("done", "error", "accepted_at")

    def __init__(self, accepted_at: float) -> None:
        self.done = anyio.Event()
        self.error: EngineUnavailable | None = None
        self.accepted_at = accepted_at

    def settle(self, error: EngineUnavailable | None = None) -> None:
        self.error = error
        self.done.set()


Batch = tuple[Sequence[Submission], Ticket | None]  # (entries, the submitter's ticket)


def when_applied(entry: Submission, now: float, oldest: float) -> tuple[Submission, float]:
    """The entry to apply (an event stamped before ``oldest`` becomes ``Recorded``) and when:
    an event at its timestamp if that lies in ``[oldest, now)``, anything else ``now``."""
    message = entry.message
    if type(message) is Event:
        stamp = message.properties.get("timestamp")
        if isinstance(stamp, float) and stamp < now:
            if stamp >= oldest:
                return entry, stamp
            late = Recorded(message.name, message.properties)
            return Submission(entry.customer_id, late, entry.message_id), now
    return entry, now
