"""What an actor's state must satisfy whatever messages it took: the property tests check it
after every message (``Actor.check_invariants``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from actors.journey import SendStep, WaitForStep, WaitStep

if TYPE_CHECKING:
    from actors.actor import Actor


def invariant_problems(actor: Actor) -> list[str]:
    """Each way ``actor``'s state differs from one the core can produce (none when it is sound)."""
    timeline = actor.profile.timeline()
    sends = actor.profile.recent_sends()
    problems = []
    if any(a[0] > b[0] for a, b in zip(timeline, timeline[1:], strict=False)):
        problems.append("timeline out of order")
    if any(a[0] > b[0] for a, b in zip(sends, sends[1:], strict=False)):
        problems.append("send history out of order")
    if actor.runs is not None and len(actor.runs) != len(actor.program.journeys):
        problems.append("one run slot per journey expected")
    for journey_id, run in actor.runs_by_id().items():
        journey = actor.program.by_id.get(journey_id)
        if journey is None:
            problems.append(f"run of unknown journey {journey_id!r}")
        elif run.step is not None:
            step = journey.steps.get(run.step)
            if not isinstance(step, (WaitStep, WaitForStep, SendStep)):
                problems.append(f"{journey_id}: active run stopped on {run.step!r}")
            if run.holdout:
                problems.append(f"{journey_id}: a holdout run is active")
    return problems
