"""Replay a design against a recorded Segment log, and compare two designs over the same history.

``replay_log`` reads the log a line at a time (``engine.edge.archive``), replays it
(``engine.runtime.replay``), and writes what the design would have done into a folder as it
goes: ``sends.csv`` (each send: when, to whom, which journey, step, channel and message) and
``suppressed.csv`` (each send a rule blocked or deferred, and the rule) and ``conversions.csv`` (each
conversion with its path and touches: the sends, opens and clicks since the entry, with when,
which message and which journey). It returns the bundle's
metrics (``kind: replay``): the run's tallies as ``touchpoint run`` gives them, with the log's
own counts (lines, calls, malformed lines with their numbers, late and duplicate calls, receipts).

``compare_replays`` puts two or more replays of one log side by side (``kind: replay-compare``):
each design's counts, and the differences to the first design, down to the customers one design
messages and the other does not.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from actors.messages import Converted, Send, Suppressed
from engine.edge.archive import OnError, SegmentLog, Shard
from engine.runtime.memory import collecting_rarely
from engine.runtime.replay import REORDER_WINDOW, Replay, in_time_order
from engine.scenario_files import Scenario
from reports.metrics import RunMetrics

SEND_COLUMNS = ("at", "customer", "journey", "entry", "step", "channel", "message", "key")
SUPPRESSED_COLUMNS = ("at", "customer", "journey", "step", "channel", "message", "rule", "deferred_until")
TABLES = ("sends.csv", "suppressed.csv", "conversions.csv")
CONVERSION_COLUMNS = ("at", "customer", "journey", "entry", "holdout", "value", "path", "touches")


@dataclass
class ReplayResult:
    """A design's replay: the bundle's metrics and who got how many messages."""

    metrics: dict[str, Any]
    messaged: Counter[str]


@dataclass
class Tally:
    """What a replay, or one shard of one, counted, as plain data (a shard's crosses processes)."""

    state: dict[str, Any]  # the journeys' tallies (``RunMetrics.state``)
    messaged: dict[str, int]  # sends per customer
    actors: int
    first: float | None  # the first call's time
    until: float  # how far the journeys went on
    pending: int  # timers still queued then
    lines: int
    calls: int
    malformed: int
    errors: list[tuple[int, str]]  # the malformed lines kept, (number, reason)
    late: int
    duplicates: int
    receipts: int


def iso(at: float) -> str:
    """A time of the engine (seconds since the epoch) as ISO 8601 in UTC."""
    return datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")


def replay_log(
    scenario: Scenario,
    log_file: Path,
    folder: Path,
    *,
    after: float | None = None,
    on_error: OnError = "skip",
    reorder: float = REORDER_WINDOW,
    on_progress: Callable[[int], None] | None = None,
    workers: int = 1,
    source: str | None = None,
) -> ReplayResult:
    """Replay ``log_file`` through ``scenario``'s design, writing sends.csv, suppressed.csv and
    conversions.csv into ``folder``; ``after``: how long the journeys go on after the last call
    (default: the longest goal window); ``reorder``: how far out of time order a call may be and
    still be put back in order (``engine.runtime.replay.in_time_order``); ``on_progress(bytes)``
    every 10,000 calls. With ``workers`` > 1, the customers are shared among that many processes
    (``engine.lab.shards``), each loading the design from ``source`` (a scenario file or name);
    the results are the same.

    Raises:
        engine.edge.archive.LogError: a malformed line, when ``on_error`` is ``refuse``.
        OSError: the log cannot be read, or the folder written.
    """
    after = max((j.goal_within for j in scenario.program.journeys), default=0.0) if after is None else after
    folder.mkdir(parents=True, exist_ok=True)
    if workers > 1 and source is not None:
        from engine.lab.shards import replay_in_shards

        tally = replay_in_shards(source, log_file, folder, workers, after, on_error, reorder, on_progress)
    else:
        tally = replay_shard(scenario, log_file, folder, on_error, reorder, None,
                             lambda now: now + after, on_progress)
    return ReplayResult(_metrics(scenario, log_file, tally), Counter(tally.messaged))


def replay_shard(scenario: Scenario, log_file: Path, folder: Path, on_error: OnError, reorder: float,
                 shard: Shard | None, until_of: Callable[[float], float],
                 on_progress: Callable[[int], None] | None) -> Tally:
    """Replay the calls of ``shard`` of the log (all with None), writing the tables into
    ``folder``; the journeys go on until ``until_of(the last call's time)``."""
    program = scenario.program
    with (log_file.open("rb") as stream,
          (folder / "sends.csv").open("w", newline="", encoding="utf-8") as sends_file,
          (folder / "suppressed.csv").open("w", newline="", encoding="utf-8") as blocked_file,
          (folder / "conversions.csv").open("w", newline="", encoding="utf-8") as converted_file):
        sends, blocked = _writer(sends_file, SEND_COLUMNS), _writer(blocked_file, SUPPRESSED_COLUMNS)
        conversions = _writer(converted_file, CONVERSION_COLUMNS)

        def on_send(at: float, customer: str, send: Send) -> None:
            sends.writerow((iso(at), customer, send.journey, send.entry, send.step, send.channel,
                            send.message, send.key))

        def on_suppressed(at: float, customer: str, s: Suppressed) -> None:
            later = "" if s.deferred_until is None else iso(s.deferred_until)
            blocked.writerow((iso(at), customer, s.journey, s.step, s.channel, s.message, s.rule, later))

        def on_converted(at: float, customer: str, c: Converted) -> None:
            touches = " > ".join(f"{iso(t)} {kind} {channel} {message} ({journey})"
                                 for t, kind, channel, message, journey in c.touches)
            conversions.writerow((iso(at), customer, c.journey, c.entry, c.holdout, c.value,
                                  " > ".join(c.path), touches))

        replay = Replay(program, on_send=on_send, on_suppressed=on_suppressed, on_converted=on_converted)
        log = SegmentLog(stream, on_error, shard)
        with collecting_rarely():
            replay.feed(in_time_order(_reporting(log, on_progress), reorder))
            until = until_of(replay.now)
            pending = replay.finish(until) if math.isfinite(until) else 0
    return Tally(replay.metrics.state(), dict(replay.messaged), len(replay.actors), replay.first, until,
                 pending,
                 log.lines, log.calls, log.malformed, [(e.number, e.reason) for e in log.errors],
                 replay.late, replay.duplicates, replay.receipts)


def _reporting(log: SegmentLog, on_progress: Callable[[int], None] | None) -> Any:
    if on_progress is None:
        yield from log
        return
    for number, record in enumerate(log):
        if number % 10_000 == 0:
            on_progress(log.bytes_read)
        yield record
    on_progress(log.bytes_read)


def _writer(file: IO[str], columns: tuple[str, ...]) -> Any:
    """A CSV writer on ``file``, its header written."""
    writer = csv.writer(file)
    writer.writerow(columns)
    return writer


def _metrics(scenario: Scenario, log_file: Path, tally: Tally) -> dict[str, Any]:
    metrics = RunMetrics(scenario.program, 0, close_windows=True)
    metrics.restore(tally.state)
    tallies = metrics.to_dict()
    customers, first, until = tally.actors, tally.first, tally.until
    messages = tallies["messages"]
    counts = sorted(tally.messaged.values())
    reached = len(counts)
    by_channel = messages["by_channel"]
    messages["per_customer_by_channel"] = {c: n / max(customers, 1) for c, n in by_channel.items()}
    messages["per_customer"] = {
        "mean": sum(counts) / max(customers, 1),
        "mean_of_reached": sum(counts) / reached if reached else 0.0,
        "max": counts[-1] if counts else 0,
        "customers_reached": reached,
    }
    tallies["opt_outs"]["per_1000_customers"] = 1000 * tallies["opt_outs"]["total"] / max(customers, 1)
    return {
        "kind": "replay",
        "scenario": scenario.name,
        "customers": customers,
        "days": (until - first) / 86400.0 if first is not None else 0.0,
        "log": {
            "file": log_file.name,
            "lines": tally.lines,
            "calls": tally.calls,
            "malformed": tally.malformed,
            "malformed_lines": [{"line": number, "reason": reason} for number, reason in tally.errors],
            "late": tally.late,
            "duplicates": tally.duplicates,
            "receipts": tally.receipts,
            "first": iso(first) if first is not None else None,
            "until": iso(until) if first is not None else None,
        },
        "timers_pending": tally.pending,
        **tallies,
    }


def compare_replays(names: list[str], results: list[ReplayResult]) -> dict[str, Any]:
    """The designs' replays of one log side by side, and each against the first."""
    designs = [_headline(name, r.metrics) for name, r in zip(names, results, strict=True)]
    base, base_sent = designs[0], set(results[0].messaged)
    against = []
    for design, result in zip(designs[1:], results[1:], strict=True):
        sent = set(result.messaged)
        before, now = results[0].messaged, result.messaged
        changed = sum(1 for c in base_sent | sent if now.get(c, 0) != before.get(c, 0))
        against.append({
            "design": design["design"],
            "baseline": base["design"],
            "messages": design["messages"] - base["messages"],
            "by_channel": _minus(design["by_channel"], base["by_channel"]),
            "suppressed_by_rule": _minus(design["suppressed_by_rule"], base["suppressed_by_rule"]),
            "entrants": design["entrants"] - base["entrants"],
            "conversions": design["conversions"] - base["conversions"],
            "customers_messaged_only_here": len(sent - base_sent),
            "customers_messaged_only_by_baseline": len(base_sent - sent),
            "customers_whose_messages_differ": changed,
        })
    first = results[0].metrics
    return {"kind": "replay-compare", "customers": first["customers"], "days": first["days"],
            "log": first["log"], "designs": designs, "differences": against}


def _headline(name: str, m: dict[str, Any]) -> dict[str, Any]:
    journeys = m["journeys"].values()
    return {
        "design": name,
        "scenario": m["scenario"],
        "entrants": sum(j["entrants"] for j in journeys),
        "conversions": sum(j["treated"]["conversions"] + j["holdout"]["conversions"] for j in journeys),
        "messages": m["messages"]["total"],
        "by_channel": m["messages"]["by_channel"],
        "customers_messaged": m["messages"]["per_customer"]["customers_reached"],
        "suppressed": m["suppressed"]["total"],
        "suppressed_by_rule": m["suppressed"]["by_rule"],
        "escalations": sum(m["escalations"].values()),
    }


def _minus(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: a.get(k, 0) - b.get(k, 0) for k in sorted(set(a) | set(b))}
