"""The one effect router: where each effect an actor returns goes, in both runtimes.

    Schedule          -> the scheduler, as a ``TimerFired`` due at its time, with its priority
    Send              -> ``send``: the channel adapter (real time) or the world (simulation)
    Escalated         -> ``escalate``: the channel adapter (real time) or the agent desk's SimPy
                         queues (simulation: a real difference, agents are simulated there)
    all of them       -> ``observe`` (the tallies, with their time) and the trace, when one is kept

A runtime makes one router with its own destinations and calls ``route`` with each actor's
effects (``engine.runtime.realtime``, ``engine.runtime.simulation``). Recovery routes nothing:
it replays the log through the core and keeps only the sends (``engine.storage.recovery``).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from actors.messages import Effect, Escalated, Schedule, Send, TimerFired

K = TypeVar("K", bound=Hashable)

Push = Callable[[float, K, TimerFired, int], None]  # (at, customer, fired, priority): TimerQueue.push
Trace = list[tuple[float, str, Effect]]  # (at, customer_id, effect), in the order produced


class EffectRouter(Generic[K]):
    """Route the effects of a runtime's actors.

    Args:
        push: schedules a timer (``TimerQueue.push``).
        send: takes a send, ``(customer, send, now)``.
        escalate: takes an escalation, ``(customer, escalated, now)``.
        observe: folds an actor's effects into the metrics, ``(customer, effects, now)``.
        trace: when given, every effect is appended to it as ``(now, customer_id, effect)``.
        trace_id: the customer id a key stands for in the trace (default: the key itself).
    """

    __slots__ = ("route",)

    def __init__(
        self,
        push: Push[K],
        send: Callable[[K, Send, float], None],
        escalate: Callable[[K, Escalated, float], None],
        observe: Callable[[K, list[Effect], float], None],
        trace: Trace | None = None,
        trace_id: Callable[[K], str] = str,
    ) -> None:
        # ``route`` is a closure over the destinations, not a method: it runs once per message
        # that has effects, and reading a closure's cells is cheaper than reading attributes
        def route(customer: K, effects: list[Effect], now: float) -> None:
            """Hand each of one actor's ``effects``, produced at ``now``, to where it goes."""
            for effect in effects:
                if type(effect) is Schedule:
                    push(effect.at, customer, TimerFired(effect.journey, effect.version), effect.priority)
                elif type(effect) is Send:
                    send(customer, effect, now)
                elif type(effect) is Escalated:
                    escalate(customer, effect, now)
            observe(customer, effects, now)
            if trace is not None:
                customer_id = trace_id(customer)
                trace.extend((now, customer_id, effect) for effect in effects)

        self.route: Callable[[K, list[Effect], float], None] = route
