"""The pure actor core of Touchpoint.

Every customer is an actor: a profile plus the state of each journey the customer is in. An actor
is handed a message and the current time and answers with effects; it reads no clock, does no I/O
and draws no hidden randomness, so the simulation and the real-time runtimes drive the very same
code. Nothing here imports from engine/, scenarios/ or reports/.
"""

from __future__ import annotations

from actors.actor import Actor
from actors.compiler import compile_scenario
from actors.errors import (
    EngineInternalError,
    IngestError,
    ProviderError,
    ScenarioError,
    TouchpointError,
)
from actors.journey import Program

__all__ = [
    "Actor",
    "EngineInternalError",
    "IngestError",
    "Program",
    "ProviderError",
    "ScenarioError",
    "TouchpointError",
    "compile_scenario",
]
