"""``python -m engine`` is the ``touchpoint`` command."""

from engine.cli import app

app(prog_name="touchpoint")
