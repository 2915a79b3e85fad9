"""``touchpoint serve`` with a fault injected, for the supervision test: the engine raises when it
applies an event named ``boom`` (after logging it, as a bug in the core would).

    python tests/faulty_serve.py serve SCENARIO --data DIR ...   (the arguments of touchpoint)
"""

from __future__ import annotations

import sys

from engine.cli import app
from engine.runtime.realtime import RealtimeRuntime

_apply = RealtimeRuntime._apply


def _failing_apply(self: RealtimeRuntime, work: list, now: float, triggers: list) -> None:  # type: ignore[type-arg]
    if any(getattr(message, "name", None) == "boom" for _, message, _ in work):
        raise RuntimeError("injected fault: the engine met 'boom'")
    _apply(self, work, now, triggers)


if __name__ == "__main__":
    RealtimeRuntime._apply = _failing_apply  # type: ignore[method-assign]
    sys.argv[0] = "touchpoint"
    app()
