"""Shared fixtures: the built-in cart scenario, compiled once per session, and the garbage
collector put back as each test found it."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from harness import load_program

from actors import Program


@pytest.fixture(scope="session")
def cart_program() -> Program:
    """The real scenarios/cart_abandonment.toml, compiled."""
    return load_program()


@pytest.fixture(autouse=True)
def collector_as_found() -> Iterator[None]:
    """After each test, the garbage collector as it was before: nothing frozen, the same
    thresholds, on or off as it was.

    A restore freezes what it loaded (``gc.freeze`` in ``engine.storage.snapshots``) and
    ``engine.runtime.memory.freeze_long_lived`` raises the thresholds too; left behind, they
    would keep a test's actors out of every later collection and change when later tests collect.
    """
    threshold = gc.get_threshold()
    enabled = gc.isenabled()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)
    if enabled:
        gc.enable()
    else:
        gc.disable()
