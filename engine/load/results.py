"""What a load run measured: latencies in HDR histograms, answers by status, each second's
figures, thresholds in k6's style, and the files of ``--out``.

Latency is kept in microseconds in an HDR histogram (``hdrh``: 1 us to 10 min, three significant
digits): fixed memory whatever the run's length, percentiles to within 0.1%. A threshold is
``METRIC OP VALUE[UNIT]``: ``p50``, ``p90``, ``p99``, ``p99.9``, ``max`` or ``mean`` of the latency
(``us``, ``ms`` (the default) or ``s``), ``acked`` (the share of offered events acknowledged) or
``errors`` (the share of requests not answered 2xx), with ``<``, ``<=``, ``>`` or ``>=``; a share
as a fraction or with ``%``: ``p99<50ms``, ``acked>=99.9%``, ``errors<0.001``.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from hdrh.histogram import HdrHistogram

STATUSES = ("2xx", "4xx", "429", "5xx", "errors")
PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9))
_HIGHEST_US = 600_000_000  # 10 minutes
_THRESHOLD = re.compile(r"\s*(p\d+(?:\.\d+)?|max|mean|acked|errors)\s*(<=|>=|<|>)\s*([0-9]*\.?[0-9]+)"
                        r"\s*(us|ms|s|%)?\s*")
_OPS: dict[str, Callable[[float, float], bool]] = {"<": operator.lt, "<=": operator.le, ">": operator.gt,
                                                   ">=": operator.ge}
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, None: 1.0}  # to milliseconds


def histogram() -> HdrHistogram:
    return HdrHistogram(1, _HIGHEST_US, 3)


def status_of(code: int | None) -> str:
    """An answer's bucket: ``2xx``, ``4xx`` (but 429), ``429``, ``5xx``, or ``errors`` (no answer)."""
    if code is None:
        return "errors"
    if code == 429:
        return "429"
    if 200 <= code < 300:
        return "2xx"
    return "4xx" if 400 <= code < 500 else "5xx"


def latencies_ms(h: HdrHistogram) -> dict[str, float | None]:
    """Percentiles, max and mean of a histogram, in milliseconds (None when it is empty)."""
    if h.get_total_count() == 0:
        return {**{name: None for name, _ in PERCENTILES}, "max": None, "mean": None}
    out: dict[str, float | None] = {name: h.get_value_at_percentile(q) / 1000.0 for name, q in PERCENTILES}
    out["max"] = h.get_max_value() / 1000.0
    out["mean"] = h.get_mean_value() / 1000.0
    return out


@dataclass
class Tally:
    """Counts and latencies over a span (the whole run, or one second of it)."""

    intended: int = 0  # requests due in the span
    sent: int = 0
    late: int = 0  # sent more than ``LATE`` after their intended time (no connection was free)
    dropped: int = 0  # never sent: the backlog of requests waiting for a connection was full
    offered_events: int = 0
    acked_events: int = 0
    statuses: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    latency: HdrHistogram = field(default_factory=histogram)

    def answered(self, status: str, events: int, latency_s: float) -> None:
        self.statuses[status] += 1
        if status == "2xx":
            self.acked_events += events
        self.latency.record_value(max(1, round(latency_s * 1e6)))

    def figures(self, seconds: float) -> dict[str, Any]:
        """The span's figures as plain data (``seconds``: its length, for the rates)."""
        answered = sum(self.statuses.values())
        return {
            "requests": {"intended": self.intended, "sent": self.sent, "late": self.late,
                         "dropped": self.dropped, "answered": answered},
            "events": {"offered": self.offered_events, "acknowledged": self.acked_events,
                       "acknowledged_share": self.acked_events / self.offered_events
                       if self.offered_events else None},
            "throughput_eps": {"offered": self.offered_events / seconds if seconds else 0.0,
                               "acknowledged": self.acked_events / seconds if seconds else 0.0},
            "statuses": dict(self.statuses),
            "latency_ms": latencies_ms(self.latency),
        }


@dataclass(frozen=True)
class Threshold:
    """One ``METRIC OP VALUE`` condition (``text``: as given)."""

    text: str
    metric: str
    op: str
    value: float  # milliseconds for a latency, a fraction for a share

    def holds(self, summary: dict[str, Any]) -> tuple[bool, float | None]:
        """Whether the run's summary meets it, and the measured value (None: nothing measured,
        which fails)."""
        measured = _measured(self.metric, summary)
        return (measured is not None and _OPS[self.op](measured, self.value)), measured


def parse_threshold(text: str) -> Threshold:
    """Read ``p99<50ms``, ``acked>=99.9%``, ...

    Raises:
        ValueError: not such a condition (the message says what is expected).
    """
    found = _THRESHOLD.fullmatch(text)
    if found is None:
        raise ValueError(f"threshold {text!r}: expected METRIC OP VALUE, such as p99<50ms or acked>=99.9% "
                         "(metrics: p50 p90 p99 p99.9 max mean acked errors)")
    metric, op, number, unit = found.groups()
    value = float(number)
    share = metric in ("acked", "errors")
    if metric.startswith("p") and metric not in dict(PERCENTILES):
        raise ValueError(f"threshold {text!r}: percentiles are {', '.join(n for n, _ in PERCENTILES)}")
    if share and unit not in ("%", None) or not share and unit == "%":
        raise ValueError(f"threshold {text!r}: {metric} is {'a share' if share else 'a latency'}")
    if unit == "%":
        value /= 100.0
    elif not share:
        value *= _UNITS[unit]
    return Threshold(text, metric, op, value)


def _measured(metric: str, summary: dict[str, Any]) -> float | None:
    if metric == "acked":
        return summary["events"]["acknowledged_share"]  # type: ignore[no-any-return]
    if metric == "errors":
        requests = summary["requests"]["answered"]
        return (requests - summary["statuses"]["2xx"]) / requests if requests else None
    return summary["latency_ms"][metric]  # type: ignore[no-any-return]


def judge(thresholds: list[Threshold], summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Each threshold with the value measured and whether it holds."""
    out = []
    for threshold in thresholds:
        ok, measured = threshold.holds(summary)
        out.append({"threshold": threshold.text, "measured": measured, "ok": ok})
    return out


class SecondsFile:
    """Each second's figures as one JSON line (``seconds.jsonl``), written as the run goes."""

    def __init__(self, path: Path | None) -> None:
        self._file: TextIO | None = open(path, "w", encoding="utf-8") if path is not None else None  # noqa: SIM115
        self.lines: list[dict[str, Any]] = []  # (kept for the figure: one small dict a second)

    def write(self, line: dict[str, Any]) -> None:
        self.lines.append(line)
        if self._file is not None:
            self._file.write(json.dumps(line) + "\n")
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def draw(lines: list[dict[str, Any]], path: Path, title: str) -> None:
    """Events per second offered and acknowledged, and latency per second (p50, p99, max)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seconds = [line["second"] for line in lines]
    figure, (rate, latency) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    rate.plot(seconds, [line["throughput_eps"]["offered"] for line in lines], label="offered")
    rate.plot(seconds, [line["throughput_eps"]["acknowledged"] for line in lines], label="acknowledged")
    rate.set_ylabel("events per second")
    rate.legend(loc="lower right")
    rate.set_title(title)
    for name, style in (("p50", "-"), ("p99", "--"), ("max", ":")):
        values = [line["latency_ms"][name] for line in lines]
        latency.plot(seconds, [v if v is not None else float("nan") for v in values], style, label=name)
    latency.set_yscale("log")
    latency.set_ylabel("latency from intended time (ms)")
    latency.set_xlabel("second of the run")
    latency.legend(loc="upper right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
