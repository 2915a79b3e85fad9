"""The core is pure: actors/ reads no clock, does no I/O, draws no hidden randomness.

Two independent guards: an AST walk over every module of actors/ (imports, clock reads, dynamic
imports), and ruff with the TID251 banned-api rule configured in pyproject.toml.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ACTORS = ROOT / "actors"
RUFF = Path(sys.executable).parent / "ruff"

BANNED_MODULES = {
    "time", "random", "os", "socket", "trio", "anyio", "simpy", "numpy", "asyncio",
    "threading", "subprocess", "secrets", "uuid", "select", "selectors",
    "engine", "scenarios", "reports", "bench",  # dependencies point one way: into actors/
}
CLOCK_READS = {"now", "utcnow", "today", "monotonic", "perf_counter", "time_ns"}
DYNAMIC_IMPORTS = {"__import__", "import_module", "open", "exec", "eval"}


def impurities(source: str) -> list[str]:
    """What in ``source`` breaks purity: banned imports, clock reads, dynamic imports, I/O."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""] if node.level == 0 else []
            if node.module == "datetime":
                names += [f"datetime.{a.name}" for a in node.names if a.name in CLOCK_READS]
        else:
            names = []
        found += [f"line {node.lineno}: import {n}" for n in names
                  if n.split(".")[0] in BANNED_MODULES or n.startswith("datetime.")]
        if isinstance(node, ast.Attribute) and node.attr in CLOCK_READS:
            found.append(f"line {node.lineno}: clock read .{node.attr}")
        if isinstance(node, ast.Call):
            callee = node.func
            name = callee.id if isinstance(callee, ast.Name) else getattr(callee, "attr", "")
            if name in DYNAMIC_IMPORTS:
                found.append(f"line {node.lineno}: call {name}()")
    return found


MODULES = sorted(ACTORS.glob("*.py"))


def test_there_is_a_core_to_check():
    names = {path.name for path in MODULES}
    assert {"actor.py", "policy.py", "compiler.py", "codec.py", "journey.py"} <= names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_core_module_is_pure(path):
    assert impurities(path.read_text()) == []


@pytest.mark.parametrize(
    "source",
    [
        "import time",
        "import os.path",
        "from random import Random",
        "import numpy as np",
        "from numpy.random import default_rng",
        "import trio",
        "from anyio import sleep",
        "import simpy",
        "import socket",
        "from engine.runtime.scheduler import TimerQueue",
        "from datetime import datetime\nx = datetime.now()",
        "import datetime\nx = datetime.datetime.utcnow()",
        "from datetime import date\nx = date.today()",
        "m = __import__('time')",
        "import importlib\nm = importlib.import_module('random')",
        "with open('log.txt') as f:\n    pass",
    ],
)
def test_the_purity_check_catches(source):
    assert impurities(source) != []


def test_the_purity_check_allows_what_the_core_uses():
    allowed = "import hashlib\nimport math\nimport re\nimport msgspec\nimport msgpack\n" \
              "from datetime import timedelta\nfrom actors.journey import Program\n"
    assert impurities(allowed) == []


def test_importing_the_core_loads_no_runtime():
    code = (
        "import sys, actors, actors.codec, actors.compiler\n"
        "print(sorted(m for m in ('trio', 'anyio', 'simpy', 'numpy', 'engine', 'scenarios',"
        " 'reports', 'bench') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def _ruff(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RUFF), "check", "--no-cache", "--output-format", "concise", *args],
        cwd=ROOT, input=stdin, capture_output=True, text=True,
    )


def test_ruff_passes_on_the_core():
    done = _ruff("actors")
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_bans_clock_randomness_and_runtimes_in_the_core():
    # the TID251 rule from pyproject.toml must apply to a file under actors/
    probe = (
        "from datetime import datetime\n"
        "import random\nimport time\n\nimport anyio\nimport numpy.random\nimport simpy\n"
        "import trio\n\n"
        "print(datetime.now(), time, random, anyio, simpy, trio, numpy.random)\n"
    )
    done = _ruff("--stdin-filename", "actors/_probe.py", "-", stdin=probe)
    banned = {line.split("`")[1] for line in done.stdout.splitlines() if "TID251" in line}
    assert banned == {
        "datetime.datetime.now", "random", "time", "anyio", "numpy.random", "simpy", "trio"
    }, done.stdout


def test_ruff_allows_the_same_imports_outside_the_core():
    done = _ruff("--stdin-filename", "engine/_probe.py", "-", stdin="import time\n\nprint(time)\n")
    assert "TID251" not in done.stdout, done.stdout
