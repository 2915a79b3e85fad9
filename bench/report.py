"""How every harness in bench/ prints and saves its results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def report(result: dict[str, Any], json_out: Path | None = None) -> None:
    """Print one aligned line per figure; also write them as JSON when ``json_out`` is given."""
    for key, value in result.items():
        if isinstance(value, float):
            text = f"{value:,.3f}"
        elif isinstance(value, int):
            text = f"{value:,}"
        else:
            text = str(value)
        print(f"{key:34} {text}")
    if json_out is not None:
        json_out.write_text(json.dumps(result, indent=2) + "\n")
