"""Where the commands print: results on standard output, refusals on standard error.

A refusal is one line (no traceback) and an exit status: a bad scenario exits 2 naming the file,
journey, step and field.
"""

from __future__ import annotations

import os
import sys

import typer
from rich.console import Console

from actors import ScenarioError

# A terminal gives its own width; into a file or a pipe, tables of many columns get 140 (rich's 80
# would cut them to "conv.…"). COLUMNS still wins.
console = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 140)
errors = Console(stderr=True)


def refuse_scenario(exc: ScenarioError) -> typer.Exit:
    """Print ``invalid scenario`` and what ``exc`` says on stderr; returns the exit (2) to raise."""
    errors.print(f"[bold red]invalid scenario[/] {exc}", highlight=False, soft_wrap=True)
    return typer.Exit(2)
