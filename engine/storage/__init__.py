"""The crash-safety protocol: how an acknowledged event survives a crash, and how a send is never
forgotten and never doubled.

Theory of operation.

1. An event is acknowledged only once it is durable. The real-time runtime appends every batch
   it handles (client events, merges, receipts, and the timers it fires, each with the time it
   was handled) to the write-ahead log (``wal.py``) as one CRC-framed MessagePack frame, with one
   write and one fsync, and only then lets the HTTP edge answer 2xx and hands the messages to the
   actors. An append that fails (a full disk, a failing fsync) is cut back to the last logged
   batch and refused: nothing of it is applied, and the edge answers 503.
2. The state is a snapshot plus the log after it. ``snapshots.py`` writes every actor (and the
   message ids applied lately, the merged ids and the sends not yet settled) at a log position,
   to a temporary file that is fsynced and renamed into place; the log before that position is
   dropped only once the snapshot is in place. A snapshot that cannot be written leaves the
   older one and the log as they were.
3. Recovery (``recovery.recover``) loads the newest complete snapshot, replays the log after it
   through the pure core, routed as the runtime routed it, and so rebuilds exactly the state the
   engine had, timers included: a timer that came due while the engine was down fires once.
   A torn last frame (a crash mid-write) is cut off; damage with good data after it stops the
   start with the file and offset. The actors the log does not concern may stay in the dormant
   store (``dormant.py``) as the raw records read, woken by the first message for them.
4. A send is never forgotten. Sends are effects of logged messages, so the replay produces every
   send again; the outbox is handed each one that is not known to be settled: pending in the
   snapshot, or produced after it, and not in ``settled.log``.
5. A send is never doubled at a provider that honours idempotency keys. Each send carries the key
   the core derives from (customer, journey, entry, step, n), the same on every replay.
   ``outbox_files.SettledLog`` records each key the moment its send settles (delivered or
   dead-lettered), so a restart re-sends only what may not have gone out: at most the calls in
   flight when the engine died, under their keys.

Damage that cannot be repaired safely, and a write that fails, raise ``errors.StorageError``
(naming the file, the offset or the cause, and what was kept): import it from
``engine.storage.errors``.

A data folder holds:

    wal/wal-<first position>.log   the write-ahead log, in segments
    snapshots/snap-<position>.msgpack  the two newest snapshots (``.snap-*.tmp`` while written)
    settled.log                    keys of the sends settled since the last snapshot
    settled.log.prev               those settled before a background snapshot that is being written
    dead-letters.jsonl             every send given up on, with the reason (the operator's list)
    scenario.toml                  the scenario the state was built with (``touchpoint export``)
"""
