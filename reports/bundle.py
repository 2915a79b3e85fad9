"""A bundle: what a run, compare or sweep leaves in its ``--out`` folder.

    metrics.json   the results as plain data (``kind``: run, compare or sweep)
    paths-J.csv    a run's: journey J's conversion and null paths, as ChannelAttribution reads
                   them (``touchpoint attribute`` takes them; metrics.json's ``attribution``
                   has every model's credit on them); a compare's: paths-D-J.csv per design D
                   (its first replication's)
    *.png          the figures (``reports.figures``), drawn from metrics.json alone
    report.html    one self-contained page: tables, a plain reading, the figures inline

``touchpoint report DIR`` draws the figures and writes the page again from metrics.json.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reports.paths import path_table

if TYPE_CHECKING:
    from reports.figure_facts import Figures


def write_bundle(folder: Path, metrics: dict[str, Any]) -> Path:
    """Write metrics.json, the figures and report.html into ``folder``; return the page's path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    tables = [("", metrics.get("attribution", {}))]  # a run's; a compare's, each design's first run's
    tables += [(run["name"] + "-", run["metrics"].get("attribution", {})) for run in metrics.get("runs", [])]
    for prefix, attribution in tables:
        for journey, attributed in attribution.items():
            name = re.sub(r"[^A-Za-z0-9_.-]", "_", prefix + journey)
            (folder / f"paths-{name}.csv").write_text(path_table(attributed["paths"]), encoding="utf-8")
    return _draw(folder, metrics)


def rebuild(folder: Path) -> Path:
    """Draw the figures and write report.html again from ``folder``'s metrics.json.

    Raises:
        OSError: no readable metrics.json there.
        ValueError: metrics.json is not a bundle's.
    """
    metrics = json.loads((folder / "metrics.json").read_text())
    if not isinstance(metrics, dict) or "customers" not in metrics:
        raise ValueError("metrics.json is not a Touchpoint bundle's")
    return _draw(folder, metrics)


def figures_of(metrics: dict[str, Any]) -> Figures:
    """The figures of a bundle of any kind.

    (matplotlib is imported here, when something is drawn, not when the command line starts:
    it is 0.4 s of every command's start otherwise.)"""
    from reports.figures import run_figures
    from reports.lab_figures import compare_figures, sweep_figures
    from reports.replay_html import replay_compare_figures

    kind = metrics.get("kind", "run")
    if kind == "compare":
        return compare_figures(metrics)
    if kind == "sweep":
        return sweep_figures(metrics)
    if kind == "replay-compare":
        return replay_compare_figures(metrics)
    return run_figures(metrics)


def _draw(folder: Path, metrics: dict[str, Any]) -> Path:
    from reports.html import report_html

    figures = figures_of(metrics)
    for name, png in figures.items():
        (folder / name).write_bytes(png)
    page = folder / "report.html"
    page.write_text(report_html(metrics, figures), encoding="utf-8")
    return page
