"""A real ``touchpoint serve`` process for the end-to-end tests: started on an ephemeral port of
127.0.0.1 with the repository's own code, stopped by a signal."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

import pytest
from harness import ROOT

KEY = "wk_service"


def start(
    data,
    *extra: str,
    scenario: str = "cart_abandonment",
    port: int = 0,
    entry: tuple[str, ...] = ("-m", "engine"),
    **popen: Any,
) -> tuple[subprocess.Popen[str], str]:
    """Start ``touchpoint serve SCENARIO`` on ``data`` and ``port`` (0: any free one) with the write
    key ``KEY`` and the options ``extra``; return the process and the URL it serves, once it serves.

    The process runs ``python ENTRY`` (``-m engine``, or a script taking the same arguments) with
    the ``engine`` of the repository this file lives in (its working directory and the head of
    its ``PYTHONPATH``), so another worktree's tests run that worktree's code; ``popen`` goes to
    ``subprocess.Popen``. Its output, stderr included, is the process's ``stdout`` pipe, left for
    the caller to read.
    """
    process = subprocess.Popen(
        [sys.executable, *entry, "serve", scenario, "--data", str(data), "--port", str(port),
         "--write-key", KEY, *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **_own_code(), **popen,
    )
    assert process.stdout is not None
    for line in process.stdout:
        found = re.search(r"serving (http://127\.0\.0\.1:\d+)", line)
        if found:
            return process, found.group(1)
    process.kill()
    pytest.fail("the service did not start")


def stop(process: subprocess.Popen[str], how: int) -> str:
    """Send the signal ``how``, wait up to 30 s for the exit, assert it is status 0; return the
    process's output since ``start``."""
    process.send_signal(how)
    out, _ = process.communicate(timeout=30)
    assert process.returncode == 0, out
    return out


def run_engine(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m engine *args`` (the repository's own code, as ``start``) to completion;
    raise ``CalledProcessError`` if it fails."""
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True, check=True,
                          **_own_code())


def _own_code() -> dict[str, Any]:
    """``subprocess`` options that make ``python -m engine`` import this repository's engine."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {"cwd": ROOT, "env": {**os.environ, "PYTHONPATH": path}}
