"""Where clients meet the engine: the HTTP app and everything it reads, checks and shows.

    http.py        the Starlette app: Segment ingestion, the receipts webhook, the admin API
    segment.py     Segment payloads to actor messages: the one place that says what the engine
                   accepts (ids, names, numbers, depth, timestamps), checked before anything applies
    receipts.py    a provider's receipts webhook: idempotency keys to the sends' DeliveryReceipts
    views.py       a profile as JSON
    monitoring.py  journey statistics and the Prometheus collector of /metrics
"""
