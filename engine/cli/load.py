"""``touchpoint load``: the synthetic world as an open-loop load on any Segment endpoint."""

from __future__ import annotations

import json
import sys
from functools import partial
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from actors import ScenarioError
from actors.durations import parse_duration
from engine.cli.output import console, errors, refuse_scenario
from engine.scenario_files import DEFAULT_SCENARIO, load_scenario

THRESHOLD_FAILED = 99  # k6's exit status when a threshold fails


def load(
    url: Annotated[str, typer.Argument(help="The endpoint's base URL: batches go to URL/v1/batch.")],
    write_key: Annotated[str, typer.Option(help="The write key (sent as HTTP Basic user).")],
    scenario: Annotated[str, typer.Option(help="Whose world the traffic follows.")] = DEFAULT_SCENARIO,
    customers: Annotated[int, typer.Option(min=1, help="The population's size.")] = 10_000,
    rate: Annotated[float | None, typer.Option(min=0.001, help="Events a second, constant.")] = None,
    stages: Annotated[str | None, typer.Option(
        help='Ramps instead of --rate: "30s:1000,1m:5000,30s:0" (each to its target, linearly, from '
             "the one before; the first from 0).")] = None,
    duration: Annotated[str, typer.Option(help="How long a constant --rate lasts (30s, 2m).")] = "30s",
    batch: Annotated[int, typer.Option(min=1, max=2500, help="Events per request.")] = 100,
    connections: Annotated[int, typer.Option(min=1, max=1024, help="Requests in flight at most.")] = 16,
    threshold: Annotated[list[str] | None, typer.Option(
        help='A pass condition, repeatable: "p99<50ms", "p99.9<=1s", "acked>=99.9%", "errors<1%". '
             f"One that fails exits {THRESHOLD_FAILED}.")] = None,
    out: Annotated[Path | None, typer.Option(
        help="Write seconds.jsonl (each second), summary.json and load.png here.")] = None,
    seed: Annotated[int, typer.Option(help="The traffic's seed (same seed, same calls).")] = 1,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds a request may take.")] = 10.0,
    quiet: Annotated[bool, typer.Option(help="No live table; the summary only.")] = False,
) -> None:
    """Send a scenario's world to a Segment endpoint at an open-loop arrival rate and measure it.

    The traffic is the population's own stream: identifies with traits and context, page views,
    cart adds and purchases in the proportions of the scenario's world, with messageIds,
    timestamps and sentAt set and batches shaped as Segment's libraries send them. Requests go out
    at their intended times whatever the server answers, and latency counts from the intended
    time, so a stall cannot hide. Each second is shown live; at the end: throughput offered and
    acknowledged, latency p50/p90/p99/p99.9/max (HDR histogram), answers by status, requests
    sent late or dropped. The run stops by itself: after --duration (or the stages), and at
    most --timeout more for the last answers.
    """
    from engine.load import generator, results
    from engine.load.traffic import Traffic

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        _refuse(f"URL {url!r}: expected http://HOST:PORT")
    if rate is not None and stages is not None:
        _refuse("give --rate or --stages, not both")
    try:
        checks = [results.parse_threshold(text) for text in threshold or []]
        plan_stages = (_parse_stages(stages) if stages is not None else
                       generator.constant(rate if rate is not None else 1000.0, _seconds(duration)))
    except ValueError as exc:
        _refuse(str(exc))
    try:
        world = load_scenario(scenario)
    except ScenarioError as exc:
        raise refuse_scenario(exc) from None
    traffic = Traffic(world, customers, seed)
    plan = generator.Plan(url, write_key, plan_stages, batch, connections, timeout)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    seconds = results.SecondsFile(out / "seconds.jsonl" if out is not None else None)
    import trio

    try:
        if quiet:
            summary = trio.run(generator.run, plan, traffic, seconds)
        else:
            with Live(_live([]), console=console, refresh_per_second=2, transient=False) as live:
                summary = trio.run(partial(generator.run, plan, traffic, seconds,
                                           lambda _: live.update(_live(seconds.lines))))
            console.print()
    finally:
        seconds.close()
    summary = {"url": url, "scenario": world.name, "batch": batch, "connections": connections,
               "stages": [[s.seconds, s.target] for s in plan_stages], **summary}
    summary["thresholds"] = results.judge(checks, summary)
    summary["passed"] = all(t["ok"] for t in summary["thresholds"])
    if out is not None:
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        results.draw(seconds.lines, out / "load.png", f"touchpoint load {url} ({world.name}, batch {batch})")
    _print_summary(summary)
    if not summary["passed"]:
        raise typer.Exit(THRESHOLD_FAILED)


def _refuse(message: str) -> None:
    errors.print(f"[bold red]load[/]: {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _seconds(text: str) -> float:
    """``"30"`` (seconds), ``"30s"``, ``"2m"``... (ValueError when it is none of those)."""
    try:
        seconds = float(text)
    except ValueError:
        try:
            return parse_duration(text)
        except ScenarioError:
            raise ValueError(f"duration {text!r}: expected seconds or a duration such as 30s, 2m") from None
    if not 0 < seconds < float("inf"):
        raise ValueError(f"duration {text!r}: expected a positive number of seconds")
    return seconds


def _parse_stages(text: str) -> list[Any]:
    """``"30s:1000,1m:5000,30s:0"`` as stages (ValueError naming the bad one)."""
    from engine.load.generator import Stage

    stages = []
    for part in text.split(","):
        length, _, target = part.strip().partition(":")
        try:
            stages.append(Stage(_seconds(length), float(target)))
        except ValueError:
            raise ValueError(f"stage {part.strip()!r}: expected DURATION:RATE, such as 30s:1000") from None
        if stages[-1].target < 0:
            raise ValueError(f"stage {part.strip()!r}: a rate is not negative")
    return stages


def _live(lines: list[dict[str, Any]]) -> Table:
    table = Table(title="touchpoint load", title_justify="left")
    for column in ("second", "offered/s", "acked/s", "p50 ms", "p99 ms", "max ms", "2xx", "4xx", "429",
                   "5xx", "errors", "late"):
        table.add_column(column, justify="right")
    for line in lines[-10:]:
        lat, st = line["latency_ms"], line["statuses"]
        table.add_row(str(line["second"]), f"{line['throughput_eps']['offered']:,.0f}",
                      f"{line['throughput_eps']['acknowledged']:,.0f}", _ms(lat["p50"]), _ms(lat["p99"]),
                      _ms(lat["max"]), *(f"{st[s]:,}" for s in ("2xx", "4xx", "429", "5xx", "errors")),
                      f"{line['requests']['late']:,}")
    return table


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _print_summary(summary: dict[str, Any]) -> None:
    events, lat, req = summary["events"], summary["latency_ms"], summary["requests"]
    eps = summary["throughput_eps"]
    share = events["acknowledged_share"]
    lines = [
        f"throughput: offered {eps['offered']:,.0f} events/s, acknowledged "
        f"{eps['acknowledged']:,.0f} events/s ({events['acknowledged']:,} of {events['offered']:,} events"
        + (f", {share:.3%})" if share is not None else ")"),
        "latency from intended time (ms): " + ", ".join(f"{name} {_ms(lat[name])}" for name in
                                                          ("p50", "p90", "p99", "p99.9", "max")),
        "answers: " + ", ".join(f"{name} {count:,}" for name, count in summary["statuses"].items()),
        f"requests: {req['intended']:,} due, {req['sent']:,} sent, {req['late']:,} late, "
        f"{req['dropped']:,} dropped (backlog full), {req['answered']:,} answered",
    ]
    for check in summary["thresholds"]:
        measured = check["measured"]
        lines.append(f"threshold {check['threshold']}: {'ok' if check['ok'] else 'FAILED'} "
                     f"(measured {'nothing' if measured is None else f'{measured:,.4g}'})")
    for line in lines:
        console.print(escape(line), highlight=False, soft_wrap=True)
    if not summary["passed"]:
        errors.print(f"[bold red]thresholds failed[/]: exit {THRESHOLD_FAILED}", highlight=False)
    sys.stdout.flush()
