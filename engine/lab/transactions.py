"""A transaction log read for the buy-till-you-die models: one purchase per row of a CSV file
(customer, date, and optionally value), summarised per customer as ``engine.lab.clv`` needs.

Purchases on one calendar day count as one (their values add up), as in the literature's CDNOW
summaries. Times are in days, or weeks of seven days (``--period week``), from each customer's
first purchase; the calibration period ends at the end of ``until``'s day. A purchase after it is
left out of the history; a customer whose first purchase is after it has no history and is
left out (counted).

A bad file is refused at its first bad row: ``TransactionError`` names the row (the header is
row 1) and the column.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np

from engine.lab.clv import Floats

PERIOD_DAYS = {"day": 1.0, "week": 7.0}


class TransactionError(ValueError):
    """A transaction log that cannot be read: where and why."""


@dataclass(frozen=True)
class Histories:
    """Per customer (in ``customers`` order): repeat purchases ``x``, ``t_x``, ``T``, and the mean
    value ``m`` of the repeat purchases (0 without any, or without values)."""

    customers: list[str]
    x: Floats
    t_x: Floats
    T: Floats  # noqa: N815 (the literature's name)
    m: Floats
    first_value: Floats  # the value of the first purchase day
    until: date
    after_until: int  # customers left out: their first purchase came after ``until``


def read_transactions(path: Path, customer: str = "customer_id", when: str = "date",
                      value: str | None = None) -> list[tuple[str, date, float]]:
    """The rows of ``path`` as ``(customer, day, value)`` (value 0 without a value column).

    Raises:
        TransactionError: the file, a column or a row is not what is needed.
        OSError: the file cannot be read.
    """
    with path.open(newline="", encoding="utf-8-sig") as file:
        reader = csv.reader(file)
        header = next(reader, None)
        if header is None:
            raise TransactionError("the file is empty: expected a header row")
        columns = [c.strip() for c in header]
        wanted = [c for c in (customer, when, value) if c is not None]
        missing = [c for c in wanted if c not in columns]
        if missing:
            raise TransactionError(f"row 1: no column {missing[0]!r}; the columns: {', '.join(columns)}")
        at = {name: columns.index(name) for name in wanted}
        rows = []
        try:
            for number, row in enumerate(reader, start=2):
                if not row or all(not cell.strip() for cell in row):
                    continue
                rows.append(_row(number, row, at, customer, when, value))
        except csv.Error as exc:  # (a field beyond the reader's limit, a NUL byte...)
            raise TransactionError(f"row {reader.line_num}: {exc}") from None
    if not rows:
        raise TransactionError("no transaction after the header")
    return rows


def _row(number: int, row: list[str], at: dict[str, int], customer: str, when: str,
         value: str | None) -> tuple[str, date, float]:
    def cell(name: str) -> str:
        index = at[name]
        if index >= len(row):
            raise TransactionError(f"row {number}, column {name}: missing (the row has {len(row)} cells)")
        return row[index].strip()

    who = cell(customer)
    if not who:
        raise TransactionError(f"row {number}, column {customer}: empty")
    text = cell(when)
    try:
        day = datetime.fromisoformat(text).date() if "T" in text or " " in text else date.fromisoformat(text)
    except ValueError:
        raise TransactionError(f"row {number}, column {when}: {text!r} is not a date (YYYY-MM-DD)") from None
    amount = 0.0
    if value is not None:
        raw = cell(value)
        try:
            amount = float(raw)
        except ValueError:
            raise TransactionError(f"row {number}, column {value}: {raw!r} is not a number") from None
        if not math.isfinite(amount) or amount < 0:
            raise TransactionError(f"row {number}, column {value}: {raw!r} is not a value of 0 or more")
    return who, day, amount


def summarise(rows: list[tuple[str, date, float]], until: date | None = None,
              period: str = "week") -> Histories:
    """Each customer's history up to ``until`` (default: the last day in ``rows``), in ``period``s."""
    end = until or max(day for _, day, _ in rows)
    days: dict[str, dict[date, float]] = defaultdict(lambda: defaultdict(float))
    for who, day, amount in rows:
        if day <= end:
            days[who][day] += amount
    first_days = {who for who, _, _ in rows}
    unit = PERIOD_DAYS[period]
    customers = sorted(days)
    x, t_x, big_t, m, first_value = (np.zeros(len(customers)) for _ in range(5))
    for i, who in enumerate(customers):
        bought = sorted(days[who])
        first, last = bought[0], bought[-1]
        x[i] = len(bought) - 1
        t_x[i] = (last - first).days / unit
        big_t[i] = (end - first).days / unit
        repeats = [days[who][day] for day in bought[1:]]
        m[i] = sum(repeats) / len(repeats) if repeats else 0.0
        first_value[i] = days[who][first]
    return Histories(customers, x, t_x, big_t, m, first_value, end, len(first_days) - len(customers))
