"""How sends leave: the outbox and the providers behind it.

    outbox.py     a queue and a few workers per channel; retries with backoff, dead letters,
                  a bounded stop
    pacing.py     the circuit breaker (one trial call when half-open) and the token bucket
    providers.py  the mock, an HTTP API and SMTP, and their config-file tables

What the outbox writes to disk (the settled keys, the dead letters) is storage:
``engine.storage.outbox_files``.
"""
