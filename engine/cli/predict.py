"""``touchpoint predict``: buy-till-you-die models fitted on a transaction log a user already has."""

from __future__ import annotations

import json
import math
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from engine.cli.output import console, errors


def predict(
    transactions: Annotated[Path, typer.Argument(
        help="A CSV file with a header row and one purchase per row: a customer, a date (YYYY-MM-DD), "
             "optionally a value.")],
    customer: Annotated[str, typer.Option(help="The customer column.")] = "customer_id",
    date_column: Annotated[str, typer.Option("--date", help="The date column.")] = "date",
    value: Annotated[str | None, typer.Option(
        help="The value column: fits Gamma-Gamma too, for each customer's expected value.")] = None,
    until: Annotated[str | None, typer.Option(
        help="The end of the calibration period, YYYY-MM-DD (default: the last date in the file).")] = None,
    period: Annotated[str, typer.Option(help="The unit of time: day or week.")] = "week",
    horizon: Annotated[float, typer.Option(min=0.0, help="Predict over this many periods.")] = 52.0,
    out: Annotated[Path | None, typer.Option(help="Write the parameters and each customer's "
                                                   "predictions here as JSON.")] = None,
) -> None:
    """Fit BG/NBD (and Gamma-Gamma with --value) and predict each customer's next HORIZON periods.

    Prints the parameters. --out writes {"bgnbd": {"r", "alpha", "a", "b"}, "gamma_gamma": {"p",
    "q", "v"}, "customers": [...]}, each customer with their history (frequency: repeat purchase
    days; recency and T in periods), the probability they are still a customer, their expected
    purchases over the horizon, the probability they buy in it, their RFM quintile scores (1-5,
    5 best; M with --value), and with --value their expected value per purchase and over the
    horizon. Purchases on one day count as one. A bad file exits 2
    naming the row and column.
    """
    from engine.lab.clv import fit_bgnbd, fit_gamma_gamma
    from engine.lab.rfm import rfm_scores
    from engine.lab.transactions import PERIOD_DAYS, TransactionError, read_transactions, summarise

    if period not in PERIOD_DAYS:
        _refuse(f"--period must be day or week, not {period!r}")
    try:
        end = None if until is None else date.fromisoformat(until)
    except ValueError:
        _refuse(f"--until: {until!r} is not a date (YYYY-MM-DD)")
    try:
        rows = read_transactions(transactions, customer, date_column, value)
    except TransactionError as exc:
        _refuse(f"{transactions}: {exc}")
    except OSError as exc:
        _refuse(f"{transactions}: {exc.strerror or exc}")
    except UnicodeDecodeError:
        _refuse(f"{transactions}: not UTF-8 text")
    history = summarise(rows, end, period)
    if not history.customers:
        _refuse(f"{transactions}: no purchase on or before {history.until}")
    try:
        model = fit_bgnbd(history.x, history.t_x, history.T)
        spend = fit_gamma_gamma(history.x, history.m) if value is not None else None
    except ValueError as exc:
        _refuse(f"{transactions}: {exc}")
    x, t_x, big_t = history.x, history.t_x, history.T
    alive = model.p_alive(x, t_x, big_t)
    expected = model.expected_purchases(horizon, x, t_x, big_t)
    buys = model.p_purchase(horizon, x, t_x, big_t)
    per_purchase = spend.expected_value(x, history.m) if spend is not None else None
    total = history.m * x + history.first_value  # (each customer's whole spend in the period)
    scores = rfm_scores(big_t - t_x, x + 1, total)
    result: dict[str, object] = {
        "bgnbd": {"r": model.r, "alpha": model.alpha, "a": model.a, "b": model.b},
        "period": period, "until": history.until.isoformat(), "horizon": horizon,
        "customers_after_until": history.after_until,
    }
    if spend is not None:
        result["gamma_gamma"] = {"p": spend.p, "q": spend.q, "v": spend.v}
    customers = []
    for i, who in enumerate(history.customers):
        row: dict[str, object] = {
            "customer": who, "frequency": int(x[i]), "recency": float(t_x[i]), "T": float(big_t[i]),
            "p_alive": float(alive[i]), "expected_purchases": float(expected[i]),
            "p_purchase": float(buys[i]),
            "rfm": [int(s[i]) for s in scores[:3 if value is not None else 2]],
        }
        if per_purchase is not None:
            row["expected_value_per_purchase"] = float(per_purchase[i])
            row["expected_value"] = float(per_purchase[i] * expected[i])
        customers.append(row)
    if not all(math.isfinite(float(v)) for row in customers for v in row.values() if isinstance(v, float)):
        _refuse(f"{transactions}: the fitted parameters give no finite prediction for some customers")
    result["customers"] = customers
    _print(result, len(rows))
    if out is not None:
        out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        console.print(f"wrote {out}", highlight=False)


def _print(result: dict[str, object], rows: int) -> None:
    customers = result["customers"]
    assert isinstance(customers, list)
    console.print(f"{rows:,} purchases in the file; {len(customers):,} customers with a history up to "
                  f"{result['until']} (in {result['period']}s)", highlight=False)
    table = Table(title="parameters", title_justify="left")
    table.add_column("model")
    table.add_column("parameters")
    for name in ("bgnbd", "gamma_gamma"):
        params = result.get(name)
        if isinstance(params, dict):
            table.add_row(name, ", ".join(f"{k} {v:.4f}" for k, v in params.items()))
    console.print(table)
    mean = sum(c["expected_purchases"] for c in customers) / len(customers)
    alive = sum(c["p_alive"] for c in customers) / len(customers)
    console.print(f"over the next {result['horizon']:g} {result['period']}s: {mean:.3f} purchases per "
                  f"customer expected; {100 * alive:.1f}% of customers still customers on average",
                  highlight=False)


def _refuse(message: str) -> None:
    errors.print(f"[bold red]predict[/]: {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)
