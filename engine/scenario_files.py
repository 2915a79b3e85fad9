"""Reading scenario files: a path or a built-in name in, a validated scenario out.

TOML syntax errors, unknown files and invalid content all become ``ScenarioError`` naming the
file. A scenario file's top-level tables are shared out here: the core compiles its own
(``CORE_TABLES``: the journeys and the policy), ``scenarios.config`` validates the simulator's
(``SIMULATOR_TABLES``: population, world, agent desk), and ``[variants]`` is read here; any
other table is an error.

Designs. A scenario may declare named variants of itself, for ``touchpoint compare``::

    [variants.email_first]
    description = "Email first"
    journeys.cart_abandonment.steps.push = { send = { message = "m", channel = "email" }, next = "x" }

    [variants.no_sms]
    policy.caps = [{ max = 3, per = "24h" }]
    journeys.cart_abandonment.remove_steps = ["sms"]
    journeys.cart_abandonment.steps.did_engage_email = { wait = "1d", next = "end" }

A variant changes the design, never the customers: it may touch ``policy``, ``journeys`` and
``agents`` (staffing is a design choice), not ``population`` or ``world``. Its tables merge over
the file's (a list, such as ``policy.caps``, is replaced whole); under ``journeys`` a journey is
named by its id; a step given replaces that step whole (or adds it), and ``remove_steps`` removes
steps. Every variant is compiled when the file is loaded, so ``touchpoint validate`` checks them.

``with_settings`` sets single values by a dotted path, as ``touchpoint sweep --set`` does
(``policy.caps.0.max``, ``journeys.cart_abandonment.steps.wait_1h.wait``): a number in the path
indexes a list, and a journey is named by its id.
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actors import Program, ScenarioError, compile_scenario
from actors.compiler import CORE_TABLES
from scenarios import BUILT_IN_DIR, built_in_names
from scenarios.config import SIMULATOR_TABLES, SimulationConfig, load_simulation_config

DEFAULT_SCENARIO = "cart_abandonment"
VARIANTS = "variants"
_DESIGN_TABLES = ("policy", "journeys", "agents", "description")  # what a variant may change


@dataclass(frozen=True)
class Scenario:
    """A loaded scenario: its name, where it came from, the program and the simulator config."""

    name: str
    source: str
    program: Program
    simulation: SimulationConfig
    document: dict[str, Any]  # as read, without its variants
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> its tables

    def variant(self, name: str) -> Scenario:
        """This scenario with the variant ``name`` applied (its name becomes ``name``).

        Raises:
            ScenarioError: no variant of that name.
        """
        if name not in self.variants:
            known = ", ".join(sorted(self.variants)) or "none"
            raise ScenarioError(f"no variant {name!r}; this scenario's variants: {known}",
                                source=self.source, field=VARIANTS)
        document = apply_variant(self.document, self.variants[name], self.source, name)
        return scenario_from_document(document, self.source, name=name)

    def with_settings(self, settings: Mapping[str, Any], name: str | None = None) -> Scenario:
        """This scenario with values set by dotted paths (``{"policy.caps.0.max": 2}``).

        Raises:
            ScenarioError: a path that leads nowhere, or a value the scenario refuses.
        """
        document = copy.deepcopy(self.document)
        for path, value in settings.items():
            set_path(document, path, value, self.source)
        return scenario_from_document(document, self.source, name=name or self.name)


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
    document: dict[str, Any],
    source: str,
    overrides: dict[str, Any] | None = None,
    name: str | None = None,
) -> Scenario:
    """Validate and compile an already parsed scenario document, and each of its variants.

    Args:
        name: the scenario's name (default: the document's ``name``, else the file's stem).
    """
    document = _merge(document, overrides or {})
    variants = document.pop(VARIANTS, {})
    known = CORE_TABLES + SIMULATOR_TABLES + (VARIANTS,)
    for key in document:
        if key not in known:
            expected = f"unknown top-level table; expected one of {sorted(known)}"
            raise ScenarioError(expected, source=source, field=key)
    program = compile_scenario({k: v for k, v in document.items() if k in CORE_TABLES}, source)
    simulation = load_simulation_config(document, source)
    if not isinstance(variants, dict):
        raise ScenarioError("expected a table of named variants", source=source, field=VARIANTS)
    for variant, tables in variants.items():  # each compiled now, so a bad one is found at load
        compile_scenario(
            {k: v for k, v in apply_variant(document, tables, source, variant).items() if k in CORE_TABLES},
            f"{source} (variant {variant})",
        )
    title = name or str(document.get("name", Path(source).stem))
    return Scenario(title, source, program, simulation, document, variants)


def apply_variant(document: dict[str, Any], tables: object, source: str, name: str) -> dict[str, Any]:
    """The document with one variant's tables applied (see the module's docstring).

    Raises:
        ScenarioError: a variant that is not a table, touches the customers, or names a journey
            or step the scenario lacks.
    """
    where = f"{VARIANTS}.{name}"
    if not isinstance(tables, dict):
        raise ScenarioError("a variant is a table of changes", source=source, field=where)
    changed = copy.deepcopy(document)
    for key, value in tables.items():
        if key not in _DESIGN_TABLES:
            raise ScenarioError(
                f"a variant changes the design ({', '.join(_DESIGN_TABLES)}), not {key!r}: "
                "every design runs on the same customers",
                source=source, field=f"{where}.{key}",
            )
        if key == "journeys":
            _patch_journeys(changed, value, source, f"{where}.journeys")
        elif isinstance(value, dict) and isinstance(changed.get(key), dict):
            changed[key] = _merge(changed[key], value)
        else:
            changed[key] = value
    return changed


def _patch_journeys(document: dict[str, Any], patches: object, source: str, where: str) -> None:
    if not isinstance(patches, dict):
        raise ScenarioError("expected a table of journeys by id", source=source, field=where)
    for journey_id, patch in patches.items():
        journey = _journey(document, journey_id, source, where)
        if not isinstance(patch, dict):
            raise ScenarioError("expected a table", source=source, field=f"{where}.{journey_id}")
        patch = dict(patch)
        removed = patch.pop("remove_steps", [])
        steps = patch.pop("steps", {})
        journey.update(_merge(journey, patch))
        for step in removed:
            if step not in journey.get("steps", {}):
                raise ScenarioError(f"no step {step!r} to remove", source=source,
                                    field=f"{where}.{journey_id}.remove_steps")
            del journey["steps"][step]
        journey.setdefault("steps", {}).update(steps)  # a step given replaces it whole


def _journey(document: dict[str, Any], journey_id: str, source: str, where: str) -> dict[str, Any]:
    for journey in document.get("journeys", []):
        if isinstance(journey, dict) and journey.get("id") == journey_id:
            return journey
    ids = [j.get("id") for j in document.get("journeys", []) if isinstance(j, dict)]
    raise ScenarioError(f"no journey {journey_id!r}; the scenario's journeys are {ids}",
                        source=source, field=f"{where}.{journey_id}")


def set_path(document: dict[str, Any], path: str, value: Any, source: str = "<scenario>") -> None:
    """Set one value of a document by a dotted path (see the module's docstring), in place.

    Raises:
        ScenarioError: a path that does not lead to a value the document has or could have.
    """
    parts = path.split(".")
    node: Any = document
    for index, part in enumerate(parts[:-1]):
        if index == 1 and parts[0] == "journeys":
            node = _journey(document, part, source, "journeys")
        elif isinstance(node, list):
            node = node[_index(node, part, path, source)]
        elif isinstance(node, dict):
            node = node.setdefault(part, {})
        else:
            raise ScenarioError(f"{'.'.join(parts[:index])} is a value, not a table", source=source,
                                field=path)
    last = parts[-1]
    if isinstance(node, list):
        node[_index(node, last, path, source)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ScenarioError(f"{'.'.join(parts[:-1])} is a value, not a table", source=source, field=path)


def _index(items: list[Any], part: str, path: str, source: str) -> int:
    if not part.isdigit() or int(part) >= len(items):
        raise ScenarioError(f"{part!r} is not an index of a list of {len(items)}", source=source,
                            field=path)
    return int(part)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged
