"""What the running engine reports: journey statistics (JSON) and Prometheus metrics.

Nothing is counted per event on the hot path beyond the run-metrics fold the simulation uses
too (``reports.metrics.RunMetrics``); the Prometheus collector reads those tallies, and a few
gauges of the runtime, when it is scraped. Labels are low-cardinality only: journey (from the
scenario), channel, rule, group, receipt status.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from engine.outbox import Outbox
from engine.realtime import RealtimeRuntime


class EngineCollector(Collector):
    """Reads a runtime's tallies at scrape time."""

    def __init__(self, runtime: RealtimeRuntime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Any]:
        runtime, metrics = self.runtime, self.runtime.metrics
        handled = CounterMetricFamily("touchpoint_messages", "Messages handed to actors")
        handled.add_metric([], runtime.handled)
        yield handled
        sends = CounterMetricFamily(
            "touchpoint_sends", "Sends handed to channels", labels=["journey", "channel"]
        )
        suppressed = CounterMetricFamily(
            "touchpoint_suppressed", "Sends blocked by a policy", labels=["journey", "rule"]
        )
        entries = CounterMetricFamily(
            "touchpoint_journey_entries", "Journey entries", labels=["journey", "group"]
        )
        conversions = CounterMetricFamily(
            "touchpoint_conversions", "Goals reached after an entry", labels=["journey", "group"]
        )
        for journey, tally in sorted(metrics.journeys.items()):
            for channel, count in sorted(tally.sends.items()):
                sends.add_metric([journey, channel], count)
            for rule, count in sorted(tally.suppressed.items()):
                suppressed.add_metric([journey, rule], count)
            for index, group in enumerate(("treated", "holdout")):
                entries.add_metric([journey, group], tally.entrants[index])
                conversions.add_metric([journey, group], tally.conversions[index])
        yield from (sends, suppressed, entries, conversions)
        gauges = {
            "touchpoint_actors": ("Customers with state in memory", runtime.actor_count),
            "touchpoint_pending_timers": ("Timers queued (cancelled ones included)", len(runtime.timers)),
            "touchpoint_inbox_depth": ("Batches waiting for the engine", runtime.inbox_depth),
            "touchpoint_applied_lsn": ("Last write-ahead log position applied", runtime.applied_lsn),
        }
        outbox = runtime.channel
        if isinstance(outbox, Outbox):
            gauges["touchpoint_outbox_pending"] = ("Sends handed over, not yet settled", len(outbox.pending))
            dead = len(outbox.dead_letters)
            gauges["touchpoint_dead_letters"] = ("Sends given up after the last try", dead)
            delivered = CounterMetricFamily("touchpoint_deliveries", "Sends a provider accepted")
            delivered.add_metric([], outbox.delivered)
            yield delivered
        for name, (text, value) in gauges.items():
            gauge = GaugeMetricFamily(name, text)
            gauge.add_metric([], value)
            yield gauge


def registry_for(runtime: RealtimeRuntime) -> CollectorRegistry:
    """A registry of its own for one runtime (no process-global state)."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(EngineCollector(runtime))
    return registry


def journey_statistics(runtime: RealtimeRuntime) -> dict[str, Any]:
    """Per journey: entrants and conversions by group, lift with its CI, sends, suppressions."""
    return runtime.metrics.to_dict()["journeys"]  # type: ignore[no-any-return]


def dead_letters(runtime: RealtimeRuntime) -> list[dict[str, Any]]:
    """The sends given up on, with the last error (empty when sends do not go through an outbox)."""
    outbox = runtime.channel
    if not isinstance(outbox, Outbox):
        return []
    return [
        {"key": send.key, "customer": send.customer, "journey": send.journey, "channel": send.channel,
         "message": send.message, "error": error}
        for send, error in outbox.dead_letters
    ]
