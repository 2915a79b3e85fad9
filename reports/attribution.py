"""Attribution models on path tables (REFERENCE.md section 3).

A path table (the ChannelAttribution convention) has, per distinct path, the channels touched in
order (``"email > push > sms"``), the conversions and their value, and the journeys that ended
without one (``total_null``). Each model gives every channel its credit, in conversions (or in
conversion value, ``value=True``); every model credits the table's whole total.

- ``first``, ``last``, ``linear``: all to the first touch, all to the last, equal shares.
- ``position``: 40% to the first touch, 40% to the last, 20% shared by those between (a single
  touch takes all; two take half each).
- ``time_decay``: a touch's weight halves every ``half_life`` days before the last one; a path
  table has no times, so consecutive touches are taken ``spacing`` days apart (7 and 7 by
  default: weights 1/15, 2/15, 4/15, 8/15 on four touches, the toy check of REFERENCE.md).
- ``markov``: the removal effect (Anderl et al. 2016), computed exactly. The paths, consecutive
  repeats collapsed, make an absorbing chain from ``(start)`` through states of the last ``order``
  channels to ``(conversion)`` or ``(null)``; ``P`` is the probability of reaching conversion, one
  linear solve; removing channel ``c`` sends every transition into a state holding ``c`` to
  ``(null)``: one solve per channel. ``RE_c = 1 - P_without_c / P``, and the credit is
  ``RE_c / sum(RE)`` of the total. ``nulls=False`` builds the chain from the converting paths'
  conversions alone.
- ``shapley``: with ``v(S)`` the conversions of the paths whose set of channels lies within
  ``S``, the Shapley value is exact and takes one pass over the paths: each path's conversions
  shared equally by its distinct channels (Zhao, Mahboobi & Bagheri 2018; ``shapley_by_subsets``
  is the textbook sum over subsets, for the tests to check it against).
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np

MODELS = ("first", "last", "linear", "position", "time_decay", "markov", "shapley")
SEPARATOR = " > "
COLUMNS = ("path", "total_conversions", "total_conversion_value", "total_null")


class PathTableError(ValueError):
    """A path table that cannot be read: the message names the row and the column."""


@dataclass(frozen=True)
class PathRow:
    """One distinct path: its channels in order, conversions, their value, and null journeys."""

    channels: tuple[str, ...]
    conversions: float
    value: float = 0.0
    nulls: float = 0.0


def read_paths(path: Path) -> list[PathRow]:
    """A ChannelAttribution path table (``;``-separated, with a header naming ``COLUMNS``).

    Raises:
        PathTableError: a missing column, an empty path or channel, a count that is not a
            number of zero or more (the message: ``row N, column C: ...``, rows counted from the
            header's 1).
    """
    with open(path, newline="", encoding="utf-8") as file:
        rows = csv.reader(file, delimiter=";")
        header = next(rows, None)
        if header is None:
            raise PathTableError("row 1: the file is empty (expected a header: " + ";".join(COLUMNS) + ")")
        names = [name.strip() for name in header]
        missing = [c for c in ("path", "total_conversions") if c not in names]  # (the others: 0)
        if missing:
            raise PathTableError(f"row 1, column {missing[0]}: missing (the header is {';'.join(names)})")
        where = {c: names.index(c) for c in COLUMNS if c in names}
        return _read_rows(rows, where)


def _read_rows(rows: Iterable[list[str]], where: dict[str, int]) -> list[PathRow]:
    """The rows, identical paths summed as they are read (a table of a million rows holds far
    fewer distinct paths); a row that does not read at once is read again by ``_row``, which
    says what is wrong with it."""
    path_at, conversions_at = where["path"], where["total_conversions"]
    value_at, nulls_at = where.get("total_conversion_value"), where.get("total_null")
    sums: dict[str, list[float]] = {}
    infinity = math.inf
    for number, row in enumerate(rows, start=2):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        try:
            text = row[path_at]
            conversions = float(row[conversions_at])
            value = float(row[value_at]) if value_at is not None else 0.0
            nulls = float(row[nulls_at]) if nulls_at is not None else 0.0
            readable = 0.0 <= conversions < infinity and 0.0 <= value < infinity and 0.0 <= nulls < infinity
        except (IndexError, ValueError):
            readable = False
        if not readable:
            _row(number, row, where)  # (raises, naming the row and the column)
            raise PathTableError(f"row {number}: cannot be read")  # (not reached)
        total = sums.get(text)
        if total is None:
            _row(number, row, where)  # (a path not seen yet: checked once)
            total = sums[text] = [0.0, 0.0, 0.0]
        total[0] += conversions
        total[1] += value
        total[2] += nulls
    return [PathRow(tuple(part.strip() for part in text.split(">")), *total) for text, total in sums.items()]


def _row(number: int, row: list[str], where: dict[str, int]) -> PathRow:
    def cell(column: str) -> str:
        index = where.get(column)
        if index is None:
            return "0"
        if index >= len(row):
            raise PathTableError(f"row {number}, column {column}: missing")
        return row[index].strip()

    channels = tuple(part.strip() for part in cell("path").split(">"))
    if not channels or any(not c for c in channels):
        raise PathTableError(f"row {number}, column path: {cell('path')!r} is not channels joined by ' > '")
    counts = []
    for column in COLUMNS[1:]:
        text = cell(column)
        try:
            value = float(text)
        except ValueError:
            raise PathTableError(f"row {number}, column {column}: {text!r} is not a number") from None
        if not math.isfinite(value) or value < 0:
            raise PathTableError(f"row {number}, column {column}: {text!r} is not a number of 0 or more")
        counts.append(value)
    return PathRow(channels, *counts)


def aggregate(rows: Iterable[PathRow]) -> list[PathRow]:
    """Identical paths summed (a table may list a path more than once)."""
    sums: dict[tuple[str, ...], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for row in rows:
        total = sums[row.channels]
        total[0] += row.conversions
        total[1] += row.value
        total[2] += row.nulls
    return [PathRow(channels, *total) for channels, total in sums.items()]


# -- the heuristics ------------------------------------------------------------------------------


def _by_weights(rows: Iterable[PathRow], weights: Callable[[int], list[float]],
                value: bool) -> dict[str, float]:
    credit: dict[str, float] = defaultdict(float)
    for row in rows:
        amount = row.value if value else row.conversions
        if not amount:
            continue
        for channel, weight in zip(row.channels, weights(len(row.channels)), strict=True):
            credit[channel] += amount * weight
    return dict(credit)


def first_touch(rows: Iterable[PathRow], value: bool = False) -> dict[str, float]:
    return _by_weights(rows, lambda n: [1.0] + [0.0] * (n - 1), value)


def last_touch(rows: Iterable[PathRow], value: bool = False) -> dict[str, float]:
    return _by_weights(rows, lambda n: [0.0] * (n - 1) + [1.0], value)


def linear(rows: Iterable[PathRow], value: bool = False) -> dict[str, float]:
    return _by_weights(rows, lambda n: [1.0 / n] * n, value)


def position_weights(n: int) -> list[float]:
    """40% first, 40% last, 20% over the middle; one touch 100%, two 50/50."""
    if n == 1:
        return [1.0]
    if n == 2:
        return [0.5, 0.5]
    return [0.4] + [0.2 / (n - 2)] * (n - 2) + [0.4]


def position_based(rows: Iterable[PathRow], value: bool = False) -> dict[str, float]:
    return _by_weights(rows, position_weights, value)


def decay_weights(ages_days: list[float], half_life: float = 7.0) -> list[float]:
    """Weights ``2^(-age / half_life)`` normalised to 1 (``ages_days``: before the conversion)."""
    raw = [2.0 ** (-age / half_life) for age in ages_days]
    total = sum(raw)
    return [w / total for w in raw]


def time_decay(rows: Iterable[PathRow], value: bool = False, half_life: float = 7.0,
               spacing: float = 7.0) -> dict[str, float]:
    return _by_weights(rows, lambda n: decay_weights([spacing * (n - 1 - i) for i in range(n)], half_life),
                       value)


# -- Markov, exactly -------------------------------------------------------------------------------


def collapse(channels: tuple[str, ...]) -> tuple[str, ...]:
    """Consecutive repeats of a channel as one touch (the chain has no self-loops)."""
    return tuple(c for i, c in enumerate(channels) if i == 0 or channels[i - 1] != c)


def markov(rows: Iterable[PathRow], value: bool = False, order: int = 1,
           nulls: bool = True) -> dict[str, float]:
    """Credit by the removal effect on the exact absorbing chain (see the module's text)."""
    rows = [row for row in rows if row.conversions or (nulls and row.nulls)]
    total = sum(row.value if value else row.conversions for row in rows)
    states: dict[tuple[str, ...], int] = {(): 0}  # () is (start)
    edges: dict[tuple[int, int], float] = defaultdict(float)  # (from, to): weight; to -1 conv, -2 null
    for row in rows:
        weight_conv, weight_null = row.conversions, row.nulls if nulls else 0.0
        through = weight_conv + weight_null
        if not through:
            continue
        touches = collapse(row.channels)
        here = 0
        for i in range(len(touches)):
            state = touches[max(0, i + 1 - order): i + 1]
            there = states.setdefault(state, len(states))
            edges[(here, there)] += through
            here = there
        if weight_conv:
            edges[(here, -1)] += weight_conv
        if weight_null:
            edges[(here, -2)] += weight_null
    channels = sorted({c for state in states for c in state})
    if not total or not channels:
        return dict.fromkeys(channels, 0.0)
    size = len(states)
    out_weight = np.zeros(size)
    for (here, _), weight in edges.items():
        out_weight[here] += weight
    q = np.zeros((size, size))
    r = np.zeros(size)
    for (here, there), weight in edges.items():
        if there >= 0:
            q[here, there] += weight / out_weight[here]
        elif there == -1:
            r[here] += weight / out_weight[here]

    def p_conversion(removed: np.ndarray) -> float:
        keep = ~removed  # states holding the removed channel absorb to (null): their value is 0
        solved = np.linalg.solve(np.eye(int(keep.sum())) - q[np.ix_(keep, keep)], r[keep])
        return float(solved[0])

    holding = {c: np.array([c in state for state in states], dtype=bool) for c in channels}
    base = p_conversion(np.zeros(size, dtype=bool))
    effects = {c: 1.0 - p_conversion(holding[c]) / base if base > 0 else 0.0 for c in channels}
    summed = sum(effects.values())
    return {c: (effect / summed * total if summed > 0 else 0.0) for c, effect in effects.items()}


# -- Shapley ---------------------------------------------------------------------------------------


def shapley(rows: Iterable[PathRow], value: bool = False) -> dict[str, float]:
    """Each path's conversions shared equally by its distinct channels: the exact Shapley value
    for ``v(S)`` = the conversions of the paths whose channels all lie in ``S``."""
    return _by_sets(rows, value, lambda s: {c: 1.0 / len(s) for c in s})


def shapley_by_subsets(rows: Iterable[PathRow], value: bool = False) -> dict[str, float]:
    """The textbook Shapley sum over every coalition (exponential: for checking, on a few channels)."""
    worth: dict[frozenset[str], float] = defaultdict(float)
    for row in rows:
        worth[frozenset(row.channels)] += row.value if value else row.conversions
    players = sorted({c for s in worth for c in s})
    n = len(players)

    def v(coalition: frozenset[str]) -> float:
        return sum(amount for s, amount in worth.items() if s <= coalition)

    phi = dict.fromkeys(players, 0.0)
    for player in players:
        others = [p for p in players if p != player]
        for size in range(n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for coalition in combinations(others, size):
                s = frozenset(coalition)
                phi[player] += weight * (v(s | {player}) - v(s))
    return phi


def _by_sets(rows: Iterable[PathRow], value: bool, shares: Callable[[frozenset[str]], dict[str, float]]
             ) -> dict[str, float]:
    credit: dict[str, float] = defaultdict(float)
    for row in rows:
        amount = row.value if value else row.conversions
        if amount:
            for channel, share in shares(frozenset(row.channels)).items():
                credit[channel] += amount * share
    return dict(credit)


def attribute(rows: list[PathRow], models: Iterable[str] = MODELS, value: bool = False, order: int = 1,
              nulls: bool = True) -> dict[str, dict[str, float]]:
    """Every model's credit by channel (``{model: {channel: credit}}``), each over every channel."""
    rows = aggregate(rows)
    channels = sorted({c for row in rows for c in row.channels})
    runs: dict[str, Callable[[], dict[str, float]]] = {
        "first": lambda: first_touch(rows, value), "last": lambda: last_touch(rows, value),
        "linear": lambda: linear(rows, value), "position": lambda: position_based(rows, value),
        "time_decay": lambda: time_decay(rows, value), "markov": lambda: markov(rows, value, order, nulls),
        "shapley": lambda: shapley(rows, value),
    }
    out = {}
    for model in models:
        credit = runs[model]()
        out[model] = {channel: credit.get(channel, 0.0) for channel in channels}
    return out
