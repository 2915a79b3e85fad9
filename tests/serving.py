"""The engine served for the tests, three ways.

``start`` runs a real ``touchpoint serve`` process on an ephemeral port of 127.0.0.1 with the
repository's own code (stopped by a signal with ``stop``). ``run_against_server`` serves a
runtime's HTTP edge from this process with hypercorn on a loopback port: for what is about real
HTTP (bodies arriving in pieces, kept-alive connections, answers given before a body is read).
``run_against_app`` and ``app_client`` hand the requests to the same ASGI app in-process, through
httpx's ASGI transport, with no socket: for what is about the app's answers. Each accepts the
write key ``KEY``, the admin token ``ADMIN`` and the agent token ``AGENT``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from harness import ROOT, T0, load_program
from hypercorn.config import Config
from hypercorn.trio import serve

from actors.journey import Program
from actors.profile import Profile
from engine.cli.serve import announced_url
from engine.edge.archive import Archive
from engine.edge.http import create_app
from engine.runtime.channels import MockChannel
from engine.runtime.desk import Desk
from engine.runtime.realtime import RealtimeRuntime
from engine.storage.wal import WriteAheadLog

KEY = "wk_service"
ADMIN = "admin-secret"
AGENT = "agent-secret"

ClientScript = Callable[[httpx.AsyncClient, RealtimeRuntime], Awaitable[None]]


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
    url = announced_url(process.stdout)
    if url is not None:
        return process, url
    process.kill()
    process.wait()  # (reaped: no zombie left to later tests)
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


# -- the HTTP edge of a runtime in this process --------------------------------------------------


async def start_server(nursery: trio.Nursery, runtime: RealtimeRuntime, stop: trio.Event,
                       archive: Archive | None = None) -> list[str]:
    """Serve the HTTP edge of ``runtime`` with hypercorn on an ephemeral loopback port until
    ``stop`` (appending the calls it accepts to ``archive``); return the URLs it is bound to."""
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    app = create_app(runtime, {KEY}, ADMIN, agent_token=AGENT, archive=archive)
    return await nursery.start(partial(serve, app, config, shutdown_trigger=stop.wait))


def app_client(runtime: RealtimeRuntime) -> httpx.AsyncClient:
    """A client whose requests go straight to the HTTP edge of ``runtime`` (httpx's ASGI
    transport): the app's answers, with no server and no socket in between."""
    transport = httpx.ASGITransport(app=create_app(runtime, {KEY}, ADMIN, agent_token=AGENT))
    return httpx.AsyncClient(transport=transport, base_url="http://engine", timeout=10)


def run_against_server(tmp_path: Path, client_script: ClientScript, **options: Any) -> RealtimeRuntime:
    """As ``run_against_app``, with its options, over real HTTP: the client talks to hypercorn on
    127.0.0.1."""
    return run_against_app(tmp_path, client_script, over_http=True, **options)


def run_against_app(
    tmp_path: Path,
    client_script: ClientScript,
    *,
    buffer: int = 1024,
    profiles: Callable[[str], Profile] = Profile,
    clock: trio.abc.Clock | None = None,
    over_http: bool = False,
    program: Program | None = None,
    desk: Desk | None = None,
    archive: Archive | None = None,
) -> RealtimeRuntime:
    """Start the engine, run ``client_script(client, runtime)`` with an ``app_client``, stop;
    return the runtime (its log closed).

    With a ``clock`` (trio's ``MockClock``, which stands still until the test jumps it) the
    engine runs on simulated time from ``T0`` and logs without fsync (no waits in a thread).
    ``program`` is the cart scenario's unless given; ``desk``, the agent desk (default: one
    with no queue declared); ``archive``, over HTTP: where the server appends what it accepts.
    """
    runtime = RealtimeRuntime(
        program or load_program(),
        MockChannel(),
        profiles=profiles,
        epoch=None if clock is None else T0,
        buffer=buffer,
        log=WriteAheadLog(tmp_path / "wal", fsync="batch" if clock is None else "none"),
        desk=desk,
    )
    connect = partial(_served, archive=archive) if over_http else _in_process

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(runtime.run)
            async with connect(nursery, runtime) as client:
                await client_script(client, runtime)
            runtime.close()

    trio.run(main, clock=clock)
    runtime.log.close()
    return runtime


@asynccontextmanager
async def _served(nursery: trio.Nursery, runtime: RealtimeRuntime,
                  archive: Archive | None = None) -> AsyncIterator[httpx.AsyncClient]:
    stop = trio.Event()
    binds = await start_server(nursery, runtime, stop, archive)
    try:
        async with httpx.AsyncClient(base_url=binds[0], timeout=10) as client:
            yield client
    finally:
        stop.set()


@asynccontextmanager
async def _in_process(nursery: trio.Nursery, runtime: RealtimeRuntime) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(runtime) as client:
        yield client
