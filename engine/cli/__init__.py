"""The ``touchpoint`` command line: a module per command group, wired here.

    touchpoint run [SCENARIO]      simulate a scenario against a synthetic population
    touchpoint compare SCENARIO    compare journey designs on the same customers
    touchpoint sweep SCENARIO      run a grid of settings and draw the frontier
    touchpoint report DIR          draw a bundle's figures and report.html again
    touchpoint validate SCENARIO   check a scenario file
    touchpoint serve [SCENARIO]    run the engine as a service: HTTP ingestion, wall-clock journeys
    touchpoint export              print every profile of a service's state folder
    touchpoint scenarios           list the built-in scenarios
    touchpoint load URL            an open-loop load of a scenario's world on a Segment endpoint
    touchpoint bench all|sim|...   the benchmarks of bench/, one markdown table
    touchpoint attribute PATHS     attribution models on a path table
    touchpoint replay EVENTS       a design against a recorded Segment log
    touchpoint predict TRANSACTIONS   BG/NBD and Gamma-Gamma on a transaction log

``engine.cli.simulate`` holds run, validate and scenarios; ``engine.cli.lab`` compare, sweep
and report; ``engine.cli.serve`` serve and export,
with serve's config file in ``engine.cli.serve_config``; ``engine.cli.output`` where they print.
A bad scenario exits with status 2 and one message naming the file, journey, step and field; so
does a bad setting of ``serve`` (naming its config file and key) or a data folder it cannot write.
"""

from __future__ import annotations

import sys

import typer

from engine.cli import bench, lab, serve, simulate
from engine.cli.attribute import attribute
from engine.cli.load import load
from engine.cli.predict import predict
from engine.cli.replay import replay

app = typer.Typer(
    help="Touchpoint: cross-channel customer journeys, and a laboratory to test them before launch.",
    no_args_is_help=True,
    add_completion=False,
)
app.command()(simulate.run)
app.command()(lab.compare)
app.command()(lab.sweep)
app.command()(lab.report)
app.command()(simulate.validate)
app.command()(serve.serve)
app.command()(serve.export)
app.command()(simulate.scenarios)
app.command()(load)
app.command()(attribute)
app.command()(replay)
app.command()(predict)
app.add_typer(bench.app, name="bench")


def main() -> None:  # pragma: no cover - console script entry
    sys.exit(app())
