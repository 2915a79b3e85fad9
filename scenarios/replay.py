"""A world that replays a fixed script of messages instead of simulating customers.

Each script line is ``(at, customer, message)``; the messages reach the customers' actors at
those times and nothing answers the sends (they are only recorded). The same script can be fed to
the real-time runtime, which is how the two runtimes are shown to produce one journey trace.
"""

from __future__ import annotations

from collections.abc import Sequence

from actors.messages import Message, Send
from scenarios.behaviour import Post, Wake, WorldWake
from scenarios.config import SimulationConfig
from scenarios.draws import Draws
from scenarios.population import Population

Script = Sequence[tuple[float, int, Message]]


class ScriptedWorld:
    """Replays ``script``; records every send as ``(at, customer, send)`` in ``sends``."""

    def __init__(self, script: Script, post: Post) -> None:
        self.script = script
        self.post = post
        self.sends: list[tuple[float, int, Send]] = []
        self.events_ignored = 0  # (a script's messages all go to the actors)

    @classmethod
    def factory(cls, script: Script) -> object:
        """A world factory for ``engine.runtime.simulation.Simulation(world=...)``."""

        def make(population: Population, config: SimulationConfig, draws: Draws, post: Post,
                 wake: Wake, ignored: frozenset[str]) -> ScriptedWorld:
            return cls(script, post)

        return make

    def start(self, horizon: float) -> None:
        """Schedule every scripted message."""
        for at, customer, message in self.script:
            if at <= horizon:
                self.post(at, customer, message)

    def on_wake(self, customer: int | None, what: WorldWake, now: float) -> None:
        """A scripted world schedules no wake-ups."""
        return None

    def on_send(self, customer: int, send: Send, now: float) -> None:
        """Record the send; a script does not answer."""
        self.sends.append((now, customer, send))
