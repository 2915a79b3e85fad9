"""``touchpoint attribute``: attribution models on a path table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from engine.cli.output import console, errors


def attribute(
    paths: Annotated[Path, typer.Argument(
        help="A path table: path;total_conversions;total_conversion_value;total_null, channels joined "
             "by ' > ' (ChannelAttribution's).")],
    model: Annotated[str, typer.Option(help="Models, comma-separated: first, last, linear, position, "
                                            "time_decay, markov, shapley.")] = ",".join(
        ("first", "last", "linear", "position", "time_decay", "markov", "shapley")),
    value: Annotated[bool, typer.Option(help="Credit conversion value instead of conversions.")] = False,
    order: Annotated[int, typer.Option(min=1, max=4, help="Markov: states of the last K channels.")] = 1,
    nulls: Annotated[bool, typer.Option(help="Markov: the null paths in the chain (--no-nulls: converting "
                                             "paths only).")] = True,
    out: Annotated[Path | None, typer.Option(help="Write {model: {channel: credit}} here as JSON.")] = None,
) -> None:
    """Credit each channel with conversions (or value) by each model.

    Heuristics (first, last, linear, position 40/20/40, time decay with a 7-day half-life and
    touches 7 days apart), the Markov removal effect solved exactly on the absorbing chain, and the
    Shapley value (exact: each path's conversions shared by its distinct channels). A bad table
    exits 2 naming the row and column.
    """
    from reports.attribution import MODELS, PathTableError, read_paths
    from reports.attribution import attribute as run_models

    chosen = [m.strip() for m in model.split(",") if m.strip()]
    unknown = [m for m in chosen if m not in MODELS]
    if unknown or not chosen:
        _refuse(f"unknown model {unknown[0]!r}; the models: {', '.join(MODELS)}" if unknown else "no model")
    try:
        rows = read_paths(paths)
    except OSError as exc:
        _refuse(f"{paths}: {exc.strerror or exc}")
    except PathTableError as exc:
        _refuse(f"{paths}: {exc}")
    except UnicodeDecodeError:
        _refuse(f"{paths}: not UTF-8 text")
    result = run_models(rows, chosen, value=value, order=order, nulls=nulls)
    what = "conversion value" if value else "conversions"
    table = Table(title=f"{what} credited, {len(rows):,} distinct paths", title_justify="left")
    table.add_column("channel")
    for name in chosen:
        table.add_column(name, justify="right")
    channels = sorted({c for credits in result.values() for c in credits})
    for channel in channels:
        table.add_row(escape(channel), *(f"{result[m][channel]:,.2f}" for m in chosen))
    table.add_row("total", *(f"{sum(result[m].values()):,.2f}" for m in chosen), style="bold")
    console.print(table)
    if out is not None:
        out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


def _refuse(message: str) -> None:
    errors.print(f"[bold red]attribute[/]: {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)
