"""A replay shared among processes, a shard of the customers each (``replay --workers N``).

Customers are independent in a replay but for identity: an identify with both ids, or an alias,
merges one id's history into another's. So each worker first finds the ids the log joins
(``engine.edge.archive.identity_links``, a quick pass) and takes the calls of the customers
whose joined identity hashes to its shard (``Shard``); every worker reads the whole log, and
only its shard's calls are turned into messages and replayed. A malformed line is reported once
(by the shard of its customer, or shard 0 for a fault of the line itself).

The journeys go on after the log's last call, which each worker learns only at its end: a
worker reports the time of its shard's last call, the parent answers with the last of all, and
every worker goes on to that time plus ``after``, so the timers fire exactly as in one process.
Each worker writes its tables into a folder of its own; the parent merges them in time order
and adds the tallies up (``merge_states``). The results are those of a replay in one process
(a test shows it), the tables' rows of one instant perhaps in another order.
"""

from __future__ import annotations

import csv
import heapq
import math
import multiprocessing
import shutil
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.edge.archive import KEPT_ERRORS, LogError, OnError, Shard, identity_links
from engine.lab.replay import TABLES, Tally, replay_shard
from engine.scenario_files import load_scenario


def replay_in_shards(source: str, log_file: Path, folder: Path, workers: int, after: float, on_error: OnError,
                     reorder: float, on_progress: Callable[[int], None] | None) -> Tally:
    """Replay ``log_file`` through the design ``source`` on ``workers`` processes; the tables go
    into ``folder``; return the tallies of all.

    Raises:
        LogError: a malformed line, when ``on_error`` is ``refuse``.
        RuntimeError: a worker failed (its traceback in the message).
    """
    context = multiprocessing.get_context("spawn")
    pipes, processes = [], []
    for number in range(workers):
        ours, theirs = context.Pipe()
        process = context.Process(target=_worker, args=(source, log_file, folder / f".shard-{number}", number,
                                                        workers, on_error, reorder, theirs), daemon=True)
        process.start()
        theirs.close()
        pipes.append(ours)
        processes.append(process)
    try:
        last = [_answer(pipe, on_progress) for pipe in pipes]  # (each shard's last call)
        ends = [at for at in last if math.isfinite(at)]
        until = max(ends) + after if ends else -math.inf
        for pipe in pipes:
            pipe.send(until)
        tallies: list[Tally] = [_answer(pipe, on_progress) for pipe in pipes]
        for pipe, tables in zip(pipes, _shares(folder, workers), strict=True):
            pipe.send(tables)  # each worker merges its share of the tables: in parallel
        for pipe in pipes:
            _answer(pipe, None)
    finally:
        for pipe in pipes:
            pipe.close()  # (a worker still waiting for a word from here is told there is none)
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
    for number in range(workers):
        shutil.rmtree(folder / f".shard-{number}", ignore_errors=True)
    return _added(tallies, until)


def _worker(source: str, log_file: Path, folder: Path, number: int, of: int, on_error: OnError,
            reorder: float, pipe: Any) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with log_file.open("rb") as stream:
            links = identity_links(stream)

        def until_of(last: float) -> float:
            pipe.send(("last", last))
            until: float = pipe.recv()
            return until

        def progress(done: int) -> None:
            pipe.send(("progress", done))

        shard = Shard(number, of, links)
        tally = replay_shard(load_scenario(source), log_file, folder, on_error, reorder, shard, until_of,
                             progress if number == 0 else None)
        pipe.send(("tally", tally))
        for name in pipe.recv():  # (the tables the parent gives this worker to merge)
            _merge_table([folder.parent / f".shard-{n}" / name for n in range(of)], folder.parent / name)
        pipe.send(("merged", None))
    except LogError as exc:
        _tell(pipe, ("refused", (exc.number, exc.reason)))
    except (EOFError, BrokenPipeError):
        return  # the parent stopped listening (another worker refused the log): nothing to say
    except BaseException:  # (reported to the parent, which raises it: nothing is lost silently)
        _tell(pipe, ("failed", traceback.format_exc()))


def _tell(pipe: Any, message: tuple[str, Any]) -> None:
    """Send ``message`` to the parent, unless it has stopped listening."""
    try:
        pipe.send(message)
    except OSError:
        pass


def _answer(pipe: Any, on_progress: Callable[[int], None] | None) -> Any:
    """The next answer of a worker, passing its progress reports on meanwhile."""
    while True:
        try:
            kind, value = pipe.recv()
        except EOFError:
            raise RuntimeError("a replay worker stopped without a word") from None
        if kind == "progress":
            if on_progress is not None:
                on_progress(value)
        elif kind == "refused":
            raise LogError(*value)
        elif kind == "failed":
            raise RuntimeError(f"a replay worker failed:\n{value}")
        else:
            return value


def _added(tallies: list[Tally], until: float) -> Tally:
    """The tallies of every shard as one."""
    firsts = [t.first for t in tallies if t.first is not None]
    errors = sorted(error for t in tallies for error in t.errors)
    messaged: Counter[str] = Counter()
    for t in tallies:
        messaged.update(t.messaged)
    return Tally(
        merge_states([t.state for t in tallies]), dict(messaged), sum(t.actors for t in tallies),
        min(firsts) if firsts else None, until, sum(t.pending for t in tallies), tallies[0].lines,
        sum(t.calls for t in tallies), sum(t.malformed for t in tallies), errors[:KEPT_ERRORS],
        sum(t.late for t in tallies), sum(t.duplicates for t in tallies), sum(t.receipts for t in tallies),
    )


def _shares(folder: Path, workers: int) -> list[list[str]]:
    """The tables each worker merges, the largest first to the least loaded (by bytes)."""
    sizes = {name: sum((folder / f".shard-{n}" / name).stat().st_size for n in range(workers))
             for name in TABLES}  # (each worker wrote each table, its header at least)
    shares: list[list[str]] = [[] for _ in range(workers)]
    loads = [0] * workers
    for name in sorted(TABLES, key=lambda name: -sizes[name]):
        least = loads.index(min(loads))
        shares[least].append(name)
        loads[least] += sizes[name]
    return shares


def _merge_table(parts: list[Path], into: Path) -> None:
    """The rows of ``parts`` (CSV files with one header, rows in time order) into one file, in
    time order."""
    files = [part.open(newline="", encoding="utf-8") for part in parts]
    try:
        readers = [csv.reader(file) for file in files]
        headers = [next(reader) for reader in readers]
        with into.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(headers[0])
            writer.writerows(heapq.merge(*readers, key=_when))
    finally:
        for file in files:
            file.close()


def _when(row: list[str]) -> str:
    """A row's time as text that sorts as the time does: ``iso`` leaves out a fraction of zero,
    which is put back (its times are all UTC, in the years 2000 to 2099, so of one width)."""
    at = row[0]
    return at if len(at) > 20 else at[:-1] + ".000000Z"


def merge_states(states: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``RunMetrics.state`` of tallies that counted what each of ``states`` counted, of
    customers apart: counts add up, times to convert are pooled (``restore`` keeps the latest, as
    a tally does), paths add up path by path."""
    merged: dict[str, Any] = {"journeys": {}, "receipts": {}, "escalations": {}, "program": {}, "paths": {},
                              "open_windows": []}
    for state in states:
        for jid, tally in state["journeys"].items():
            _add_journey(merged["journeys"].setdefault(jid, {}), tally)
        for status, counts in state["receipts"].items():
            merged["receipts"][status] = _counted(merged["receipts"].get(status, {}), counts)
        merged["escalations"] = _counted(merged["escalations"], state["escalations"])
        for name, values in (state.get("program") or {}).items():
            merged["program"][name] = _sum(merged["program"].get(name), values)
        for journey, rows in state["paths"].items():
            table = merged["paths"].setdefault(journey, {})
            for path, conversions, value, nulls in rows:
                counts = table.setdefault(tuple(path), [0, 0.0, 0])
                counts[0] += conversions
                counts[1] += value
                counts[2] += nulls
        merged["open_windows"] += state.get("open_windows", [])
    merged["paths"] = {journey: [[list(path), *counts] for path, counts in sorted(table.items())]
                       for journey, table in merged["paths"].items()}
    return merged


def _add_journey(into: dict[str, Any], tally: dict[str, Any]) -> None:
    for name, value in tally.items():
        if name == "to_convert":
            into[name] = [list(a) + list(b) for a, b in zip(into.get(name, [[], []]), value, strict=True)]
        elif isinstance(value, dict):
            into[name] = _counted(into.get(name, {}), value)
        else:
            into[name] = _sum(into.get(name), value)


def _counted(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    return {key: a.get(key, 0) + b.get(key, 0) for key in a.keys() | b.keys()}


def _sum(a: list[Any] | None, b: list[Any]) -> list[Any]:
    return list(b) if a is None else [x + y for x, y in zip(a, b, strict=True)]

