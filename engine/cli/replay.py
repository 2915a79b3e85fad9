"""``touchpoint replay``: a design against a recorded Segment log, and two designs over the same
history."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from actors import ScenarioError
from actors.durations import parse_duration
from engine.cli.output import console, errors, refuse_scenario
from engine.scenario_files import Scenario, load_scenario

AUTO_SHARDS_BYTES = 20_000_000  # a log past this is shared among the cores by default
MAX_AFTER = 3650 * 86400.0  # ten years: --after and --reorder


def replay(
    events: Annotated[Path, typer.Argument(
        help="A recorded Segment log, newline-delimited JSON: one call per line (track, identify, page, "
             "screen, group, alias), or one /v1/batch body per line.")],
    scenario: Annotated[str, typer.Option(help="The design: a scenario file or a built-in name.")],
    compare: Annotated[list[str] | None, typer.Option(
        help="Another design to replay over the same history (repeat for more).")] = None,
    out: Annotated[Path | None, typer.Option(
        help="Output folder (default: runs/replay-<scenario>).")] = None,
    after: Annotated[str | None, typer.Option(
        help="How long journeys go on after the log's last call, e.g. 7d or 12h (default: the "
             "longest goal window).")] = None,
    reorder: Annotated[str, typer.Option(
        help="Calls out of time order by less than this are put back in order (an archive is ordered only "
             "roughly); one further out is applied late, as the service applies a late event.")] = "1h",
    malformed: Annotated[str, typer.Option(
        help="A malformed line: 'skip' it (each is reported by its number) or 'refuse' the log (exit 2 at "
             "the first).")] = "skip",
    workers: Annotated[int | None, typer.Option(
        min=1, help="Processes sharing the customers (default: one per core for a log over 20 MB, else "
                    "one); the results are the same.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or table.")] = False,
) -> None:
    """Replay EVENTS through a design in simulated time, at the events' own timestamps.

    What the design would have sent, to whom, when and on which channel, and what each rule
    suppressed. Nothing answers the sends (no behaviour model): only receipts the log holds
    (Segment's "Email Opened" and the like) reach the journeys. Calls are validated as
    `touchpoint serve` validates them and applied as it applies them. The log is read a line at a
    time, in bounded memory.

    DIR/sends.csv and DIR/suppressed.csv list each send and each blocked send, DIR/conversions.csv
    each conversion with its touches (sends, opens and clicks since the entry); DIR/metrics.json
    and DIR/report.html give the counts (entrants, conversions, messages by channel, suppressions
    by rule, and the log's own: lines, malformed lines by number, duplicates, late calls). With
    --compare, each design's bundle goes into DIR/<design>/ and DIR/report.html compares them.
    """
    from engine.edge.archive import LogError
    from engine.lab.replay import compare_replays, replay_log
    from reports.bundle import write_bundle

    if malformed not in ("skip", "refuse"):
        _refuse(f"--malformed must be 'skip' or 'refuse', not {malformed!r}")
    try:
        designs = [load_scenario(s) for s in [scenario, *(compare or [])]]
    except ScenarioError as exc:
        raise refuse_scenario(exc) from None
    try:
        extra = None if after is None else parse_duration(after, allow_zero=True)
        window = parse_duration(reorder, allow_zero=True)
    except ScenarioError as exc:
        _refuse(f"--after or --reorder: {exc.message}")
    if (extra or 0.0) > MAX_AFTER or window > MAX_AFTER:
        _refuse(f"--after and --reorder are at most {MAX_AFTER / 86400:,.0f} days")
    if not events.is_file():
        _refuse(f"{events}: no such file")
    sources = [scenario, *(compare or [])]
    names = _names(designs, sources)
    folder = out or Path("runs") / f"replay-{names[0]}"
    size = events.stat().st_size
    if workers is None:
        workers = (os.cpu_count() or 1) if size > AUTO_SHARDS_BYTES else 1
    results = []
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=console, disable=quiet, transient=True) as progress:
        for name, design, source in zip(names, designs, sources, strict=True):
            task = progress.add_task(f"replay {name}", total=size)
            where = folder / name if len(designs) > 1 else folder
            try:
                result = replay_log(design, events, where, after=extra, on_error=malformed,  # type: ignore[arg-type]
                                    reorder=window, workers=workers, source=source,
                                    on_progress=lambda done, task=task: progress.update(task, completed=done))
            except LogError as exc:
                _refuse(f"{events}: {exc} (--malformed skip goes on past it)")
            except OSError as exc:
                _refuse(f"{exc.filename or events}: {exc.strerror or exc}")
            except RuntimeError as exc:  # (a worker process failed: our bug, reported whole)
                errors.print(f"[bold red]replay failed[/]: {escape(str(exc))}", highlight=False)
                raise typer.Exit(1) from None
            write_bundle(where, result.metrics)
            results.append(result)
    for error in results[0].metrics["log"]["malformed_lines"]:
        where = f"{escape(str(events))} line {error['line']:,}"
        errors.print(f"[yellow]skipped[/] {where}: {escape(error['reason'])}", highlight=False,
                     soft_wrap=True)
    if len(designs) > 1:
        comparison = compare_replays(names, results)
        write_bundle(folder, comparison)
        (folder / "comparison.json").write_text(json.dumps(comparison["differences"],
                                                           indent=2) + "\n")
    if not quiet:
        _print(names, [r.metrics for r in results], folder)


def _names(designs: list[Scenario], sources: list[str]) -> list[str]:
    """One folder-safe name per design: the scenario's, or its file's when two share one."""
    names = [d.name for d in designs]
    if len(set(names)) < len(names):
        names = [Path(s).stem for s in sources]
    if len(set(names)) < len(names):
        names = [f"{n}-{i + 1}" for i, n in enumerate(names)]
    return [re.sub(r"[^A-Za-z0-9_.-]", "_", n) for n in names]


def _print(names: list[str], runs: list[dict[str, Any]], folder: Path) -> None:
    log = runs[0]["log"]
    console.print(f"{log['lines']:,} lines, {log['calls']:,} calls from {log['first']} to {log['until']} "
                  f"({log['malformed']:,} malformed, {log['duplicates']:,} duplicates, "
                  f"{log['late']:,} late); {runs[0]['customers']:,} customers", highlight=False)
    table = Table(title_justify="left")
    table.add_column("")
    for name in names:
        table.add_column(escape(name), justify="right")
    rows: dict[str, list[str]] = {"entrants": [], "conversions": [], "messages": []}
    channels = sorted({c for m in runs for c in m["messages"]["by_channel"]})
    rules = sorted({r for m in runs for r in m["suppressed"]["by_rule"]})
    for m in runs:
        journeys = m["journeys"].values()
        rows["entrants"].append(f"{sum(j['entrants'] for j in journeys):,}")
        converted = sum(j["treated"]["conversions"] + j["holdout"]["conversions"] for j in journeys)
        rows["conversions"].append(f"{converted:,}")
        rows["messages"].append(f"{m['messages']['total']:,}")
        for channel in channels:
            rows.setdefault(f"  {channel}", []).append(f"{m['messages']['by_channel'].get(channel, 0):,}")
        reached = m["messages"]["per_customer"]["customers_reached"]
        rows.setdefault("customers messaged", []).append(f"{reached:,}")
        for rule in rules:
            rows.setdefault(f"suppressed: {rule}", []).append(f"{m['suppressed']['by_rule'].get(rule, 0):,}")
    for label, cells in rows.items():
        table.add_row(escape(label), *cells)
    console.print(table)
    console.print(f"wrote {folder / 'report.html'}", highlight=False)


def _refuse(message: str) -> None:
    errors.print(f"[bold red]replay[/]: {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)
