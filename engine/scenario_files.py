"""Reading scenario files: a path or a built-in name in, a validated scenario out.

TOML syntax errors, unknown files and invalid content all become ``ScenarioError`` naming the
file. A scenario file's top-level tables are shared out here: the core compiles its own
(``CORE_TABLES``: the journeys and the policy), ``scenarios.config`` validates the simulator's
(``SIMULATOR_TABLES``: population, world, agent desk); any other table is an error.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actors import Program, ScenarioError, compile_scenario
from actors.compiler import CORE_TABLES
from scenarios import BUILT_IN_DIR, built_in_names
from scenarios.config import SIMULATOR_TABLES, SimulationConfig, load_simulation_config

DEFAULT_SCENARIO = "cart_abandonment"


@dataclass(frozen=True)
class Scenario:
    """A loaded scenario: its name, where it came from, the program and the simulator config."""

    name: str
    source: str
    program: Program
    simulation: SimulationConfig
    document: dict[str, Any]


def resolve(name_or_path: str) -> Path:
    """A file path, or the built-in scenario of that name.

    Raises:
        ScenarioError: neither a readable file nor a built-in name.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    built_in = BUILT_IN_DIR / f"{name_or_path}.toml"
    if built_in.is_file():
        return built_in
    raise ScenarioError(
        f"no such file, and not a built-in scenario; built-ins are {built_in_names()}",
        source=name_or_path,
    )


def load_scenario(name_or_path: str, overrides: dict[str, Any] | None = None) -> Scenario:
    """Load, validate and compile a scenario.

    Args:
        name_or_path: a file path or a built-in scenario name.
        overrides: top-level tables merged over the file's (tests and design comparisons).

    Raises:
        ScenarioError: anything wrong with the file, located and explained.
    """
    path = resolve(name_or_path)
    source = path.name if path.parent == BUILT_IN_DIR else str(path)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"not valid TOML: {exc}", source=source) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"cannot read: {exc}", source=source) from None
    return scenario_from_document(document, source, overrides)


def scenario_from_document(
    document: dict[str, Any], source: str, overrides: dict[str, Any] | None = None
) -> Scenario:
    """Validate and compile an already parsed scenario document."""
    document = _merge(document, overrides or {})
    known = CORE_TABLES + SIMULATOR_TABLES
    for key in document:
        if key not in known:
            expected = f"unknown top-level table; expected one of {sorted(known)}"
            raise ScenarioError(expected, source=source, field=key)
    program = compile_scenario({k: v for k, v in document.items() if k in CORE_TABLES}, source)
    simulation = load_simulation_config(document, source)
    return Scenario(str(document.get("name", Path(source).stem)), source, program, simulation, document)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged
