"""The synthetic world: built-in scenario files, the population generator and behaviour model.

Scenario files (``*.toml`` here) declare journeys and policies (compiled by ``actors``) and, for
simulation, the ``[population]``, ``[world]`` and ``[agents]`` tables read by ``scenarios.config``.
"""

from __future__ import annotations

from pathlib import Path

BUILT_IN_DIR = Path(__file__).parent


def built_in_names() -> list[str]:
    """Names of the scenarios shipped with Touchpoint (file stems)."""
    return sorted(p.stem for p in BUILT_IN_DIR.glob("*.toml"))
