"""What the running engine reports: journey statistics (JSON) and Prometheus metrics.

Nothing is counted per event on the hot path beyond the run-metrics fold the simulation uses
too (``reports.metrics.RunMetrics``); the Prometheus collector reads those tallies, and a few
gauges of the runtime, when it is scraped. Labels are low-cardinality only: journey (from the
scenario), channel, rule, group, receipt status, file (``settled_log``, ``dead_letters``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from engine.delivery.outbox import Outbox, OutboxStatistics
from engine.delivery.providers import MockProvider
from engine.runtime.latency import LatencyHistogram
from engine.runtime.realtime import RealtimeRuntime
from engine.storage.snapshots import SnapshotStatistics


class EngineCollector(Collector):
    """Reads a runtime's tallies (and its service's snapshot statistics) at scrape time."""

    def __init__(self, runtime: RealtimeRuntime, snapshots: SnapshotStatistics | None = None) -> None:
        self.runtime = runtime
        self.snapshots = snapshots

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
        if metrics.segments:
            members = GaugeMetricFamily("touchpoint_segment_members", "Customers in each live segment",
                                        labels=["segment"])
            for segment, (count, _, _) in sorted(metrics.segments.items()):
                members.add_metric([segment], count)
            yield members
        if metrics.scoring is not None and metrics.scoring.last_pass is not None:
            yield GaugeMetricFamily("touchpoint_scores_age_seconds", "Time since the last scoring pass "
                                    "(at most the [scores] every, plus a pass's run)",
                                    value=metrics.scoring.staleness(runtime.now()))
        gauges = {
            "touchpoint_actors": ("Customers with state in memory", runtime.actor_count),
            "touchpoint_pending_timers": ("Timers queued (cancelled ones included)", len(runtime.timers)),
            "touchpoint_inbox_depth": ("Batches waiting for the engine", runtime.inbox_depth),
            "touchpoint_applied_lsn": ("Last write-ahead log position applied", runtime.applied_lsn),
            "touchpoint_dedupe_ids": ("Client message ids remembered for dedupe (24 h, 2 million at most)",
                                      len(runtime.seen)),
            "touchpoint_accepting": ("1 while the engine takes events; 0 when its log cannot be written, "
                                     "or it failed or is stopping (ingestion answers 503)",
                                     int(runtime.accepting)),
        }
        yield from _storage_counters(runtime, self.snapshots)
        yield from _desk_metrics(runtime.desk.statistics())
        yield _histogram("touchpoint_timer_lateness_seconds",
                         "From a timer's due time to its firing", runtime.timer_lateness)
        if self.snapshots is not None and self.snapshots.last_written_at is not None:
            gauges["touchpoint_snapshot_last_written"] = (
                "Unix time of the last snapshot written", self.snapshots.last_written_at)
        outbox = runtime.channel
        if isinstance(outbox, Outbox):
            stats = outbox.statistics()
            gauges["touchpoint_outbox_pending"] = ("Sends handed over, not yet settled", stats.pending)
            gauges["touchpoint_dead_letters"] = (
                "Sends given up after the last try (all in dead-letters.jsonl)", stats.dead_letters)
            gauges["touchpoint_dead_letters_dropped_from_memory"] = (
                "Dead letters kept in the file only, not in /v1/dead-letters",
                stats.dead_letters_dropped_from_memory)
            yield from _outbox_counters(outbox, stats)
            yield _histogram("touchpoint_trigger_latency_seconds",
                             "From a send's trigger (the event accepted, or its timer due) to the send "
                             "handed to its provider", outbox.trigger_latency)
        for name, (text, value) in gauges.items():
            gauge = GaugeMetricFamily(name, text)
            gauge.add_metric([], value)
            yield gauge


_DESK_COUNTERS = {"cases": "Cases opened (escalations)", "answered": "Cases an agent claimed",
                  "abandoned": "Cases whose customer left before an agent claimed them"}
_DESK_GAUGES = {
    "agents": "Agents the queue is staffed with (the scenario's)",
    "backlog": "Open cases: waiting or claimed", "claimed": "Open cases an agent has claimed",
    "abandonment_rate": "Abandoned cases over cases",
    "service_level": "Cases claimed within the target wait, over cases",
    "service_level_target_s": "The target wait of the service level",
    "wait_mean_s": "Mean speed of answer: opening to claim", "wait_p90_s": "90th percentile of the wait",
    "first_response_mean_s": "Mean time from opening to the agent's first reply",
    "first_response_p90_s": "90th percentile of the first response time",
    "handle_time_mean_s": "Mean time from claim to resolution",
    "resolution_mean_s": "Mean time from opening to resolution",
    "resolution_p90_s": "90th percentile of the resolution time",
}


def _desk_metrics(statistics: dict[str, dict[str, Any]]) -> Iterator[Any]:
    """The agent desk's KPIs per queue (``engine.runtime.desk``), as ``GET /v1/desk`` has them."""
    for key, text in _DESK_COUNTERS.items():
        counter = CounterMetricFamily(f"touchpoint_desk_{key}", text, labels=["queue"])
        for queue, kpis in statistics.items():
            counter.add_metric([queue], kpis[key])
        yield counter
    for key, text in _DESK_GAUGES.items():
        name = f"touchpoint_desk_{key.removesuffix('_s')}{'_seconds' if key.endswith('_s') else ''}"
        gauge = GaugeMetricFamily(name, text, labels=["queue"])
        for queue, kpis in statistics.items():
            gauge.add_metric([queue], kpis[key])
        yield gauge


def _histogram(name: str, text: str, histogram: LatencyHistogram) -> HistogramMetricFamily:
    return HistogramMetricFamily(name, text, buckets=histogram.cumulative(), sum_value=histogram.total)


def _outbox_counters(outbox: Outbox, stats: OutboxStatistics) -> Iterator[CounterMetricFamily]:
    """The outbox's counters, and what its bounded structures (and its mocks') let go."""
    for name, text, value in (
        ("touchpoint_deliveries", "Sends a provider accepted", stats.delivered),
        ("touchpoint_send_attempts", "Provider calls made", stats.attempts),
        ("touchpoint_sends_recalled", "Marketing sends cancelled in the outbox: their run exited or "
         "converted", stats.recalled),
        ("touchpoint_receipts_refused", "Synthetic receipts a saturated engine could not take",
         stats.receipts_refused),
    ):
        counter = CounterMetricFamily(name, text)
        counter.add_metric([], value)
        yield counter
    forgotten = CounterMetricFamily(
        "touchpoint_mock_sends_forgotten",
        "Delivered keys a mock provider forgot (beyond its record_limit)", labels=["channel"])
    calls = CounterMetricFamily("touchpoint_mock_calls", "Calls a mock provider took", labels=["channel"])
    for channel, provider in sorted(outbox.providers.items()):
        if isinstance(provider, MockProvider):
            forgotten.add_metric([channel], provider.dropped)
            calls.add_metric([channel], provider.calls)
    yield forgotten
    yield calls
    failures = CounterMetricFamily(
        "touchpoint_storage_write_failures", "Failed writes (a full disk), not retried",
        labels=["file"])
    if outbox.settled_log is not None:
        failures.add_metric(["settled_log"], stats.settled_log_write_failures)
    if outbox.dead_letter_file is not None:
        failures.add_metric(["dead_letters"], stats.dead_letter_write_failures)
    yield failures


def _storage_counters(
    runtime: RealtimeRuntime, snapshots: SnapshotStatistics | None
) -> Iterator[CounterMetricFamily]:
    """What the log and the snapshots could not write."""
    counters = [
        ("touchpoint_log_append_failures", "Rounds the write-ahead log could not take (answered 503)",
         runtime.storage_failures),
        ("touchpoint_unlogged_messages", "Messages without a waiting client lost to such rounds (receipts)",
         runtime.unlogged),
    ]
    if snapshots is not None:
        counters += [
            ("touchpoint_snapshots_written", "Snapshots written", snapshots.written),
            ("touchpoint_snapshot_failures", "Snapshots that could not be written (the older one and the "
             "log kept)", snapshots.failed),
        ]
    for name, text, value in counters:
        counter = CounterMetricFamily(name, text)
        counter.add_metric([], value)
        yield counter


def registry_for(runtime: RealtimeRuntime, snapshots: SnapshotStatistics | None = None) -> CollectorRegistry:
    """A registry of its own for one runtime (no process-global state)."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(EngineCollector(runtime, snapshots))
    return registry


def journey_statistics(runtime: RealtimeRuntime) -> dict[str, Any]:
    """Per journey: entrants and conversions by group, lift with its CI, sends, suppressions,
    and the agent desk's KPIs of the journey's own cases, by queue (``desk``)."""
    journeys: dict[str, Any] = runtime.metrics.to_dict()["journeys"]
    for journey, queues in runtime.desk.journey_statistics().items():
        if journey in journeys:
            journeys[journey]["desk"] = queues
    return journeys


def dead_letters(runtime: RealtimeRuntime) -> list[dict[str, Any]]:
    """The sends given up on that the outbox holds in memory (its latest ``memory_limit``; the
    dead-letter file has them all), oldest first, with the last error (empty when sends do not go
    through an outbox)."""
    outbox = runtime.channel
    if not isinstance(outbox, Outbox):
        return []
    return [
        {"key": send.key, "customer": send.customer, "journey": send.journey, "channel": send.channel,
         "message": send.message, "error": error}
        for send, error in outbox.dead_letters
    ]
