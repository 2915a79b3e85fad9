"""Shared fixtures: the built-in cart scenario, compiled once per session."""

from __future__ import annotations

import pytest
from harness import load_program

from actors import Program


@pytest.fixture(scope="session")
def cart_program() -> Program:
    """The real scenarios/cart_abandonment.toml, compiled."""
    return load_program()
