"""Compiling ``[segments]`` and ``[scores]`` (``actors.segments`` keeps them at run time): the
tables' shape, their meaning checked, and every segment a journey names known.

The compiler (``actors.compiler``) calls ``compile_segments`` with its own condition reader, then
``check_segment_references`` for each journey, and ``compile_scoring``.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from actors.durations import parse_duration
from actors.errors import ScenarioError
from actors.journey import BranchStep, Journey, WaitForStep
from actors.segments import ENTERED, LEFT, Behaviour, Segment
from actors.specs import ConditionSpec, ScoresSpec
from actors.validation import constraint, convert_part

# -- the tables' shape ------------------------------------------------------------------------------


class BehaviourSpec(msgspec.Struct, forbid_unknown_fields=True):
    event: str
    where: list[ConditionSpec] = []
    count: Annotated[int, constraint("a count is at least 1", ge=1)] = 1
    sessions: Annotated[int, constraint("a count of sessions is at least 1", ge=1)] | None = None
    same: str | None = None
    within: str = "session"
    without: str | None = None


class SegmentSpec(msgspec.Struct, forbid_unknown_fields=True):
    where: list[ConditionSpec] = []
    behaviour: list[BehaviourSpec] = []
    description: str = ""


def check_behaviour_event(name: str, field: str) -> None:
    """A window may not watch the segments' own events (membership would feed on itself)."""
    if name.startswith((ENTERED, LEFT)):
        raise ScenarioError(f"{name!r}: a segment's window cannot watch segment changes", field=field)


# -- compiling ---------------------------------------------------------------------------------------

Conditions = Any  # the compiler's condition reader: (specs, field) -> tuple[Condition, ...]
_TIMELESS = "profile.days_since_purchase"  # changes with time alone: a window says it instead


def compile_segments(raw: object, conditions: Conditions) -> tuple[Segment, ...]:
    """``[segments]``: each segment's conditions compiled, its windows given slots.

    Raises:
        ScenarioError: a malformed segment, naming it and the field.
    """
    tables = convert_part(raw, dict[str, SegmentSpec], "segments")
    segments, slot = [], 0
    for index, (segment_id, spec) in enumerate(tables.items()):
        where = f"segments.{segment_id}"
        if ":" in segment_id or not segment_id:
            raise ScenarioError(f"{segment_id!r}: a segment id is not empty and holds no ':'", field=where)
        for i, cond in enumerate(spec.where):
            name = cond.field
            if (name.startswith(("event.", "segment.")) or name == _TIMELESS):
                hint = ('say "purchased within 3 days" as behaviour = [{ event = "purchase", within = "3d" }]'
                        if name == _TIMELESS else "a segment reads traits, profile, engagement and scores")
                raise ScenarioError(f"{name!r}: {hint}", field=f"{where}.where[{i}].field")
        behaviours = []
        for i, b in enumerate(spec.behaviour):
            field = f"{where}.behaviour[{i}]"
            check_behaviour_event(b.event, f"{field}.event")
            window = None if b.within == "session" else _window(b.within, f"{field}.within")
            behaviours.append(Behaviour(
                b.event, slot, b.sessions or b.count, b.sessions is not None, b.same, window, b.without,
                conditions(b.where, f"{field}.where", True),
            ))
            slot += 1
        segments.append(Segment(segment_id, index, conditions(spec.where, f"{where}.where", False),
                                tuple(behaviours)))
    if len(segments) > 62:
        raise ScenarioError("at most 62 segments", field="segments")
    return tuple(segments)


def _window(text: str, field: str) -> float:
    try:
        return parse_duration(text)
    except ScenarioError:
        raise ScenarioError(f"{text!r}: expected \"session\" or a duration such as \"72h\" or \"30d\"",
                            field=field) from None


def check_segment_references(journey: Journey, segments: tuple[Segment, ...]) -> None:
    """Every segment a journey names (in a branch's ``segment.<id>``, or an ``entered:<id>`` or
    ``left:<id>`` event) is declared.

    Raises:
        ScenarioError: naming the step or field and the segments there are.
    """
    known = {s.id for s in segments}

    def check(segment_id: str, step: str | None, field: str) -> None:
        if segment_id not in known:
            raise ScenarioError(f"unknown segment {segment_id!r}; the scenario's segments are "
                                f"{sorted(known)}", step=step, field=field)

    events: list[tuple[str, str | None, str]] = [
        (journey.entry_event, None, "entry.event"), (journey.goal_event, None, "goal.event"),
        *((e, None, "exit.events") for e in journey.exit_events)]
    for step in journey.steps.values():
        if isinstance(step, WaitForStep):
            events.append((step.event, step.id, "wait_for.event"))
        if isinstance(step, BranchStep):
            for i, (conditions, _) in enumerate(step.rules):
                for cond in conditions:
                    if cond.source == "segment":
                        check(cond.path[0], step.id, f"branch[{i}].if")
    for name, step_id, field in events:
        for prefix in (ENTERED, LEFT):
            if name.startswith(prefix):
                check(name[len(prefix):], step_id, field)


def compile_scoring(raw: object, segments: tuple[Segment, ...],
                    journeys: list[Journey]) -> tuple[float, float, float, float] | None:
    """``[scores]`` as ``(every, refit, horizon, churn_below)``: its defaults when the table is
    absent but a segment or a branch reads a score; None when nothing does."""
    reads = any(c.source == "scores" for s in segments for c in s.where) or any(
        c.source == "scores" for j in journeys for step in j.steps.values() if isinstance(step, BranchStep)
        for conditions, _ in step.rules for c in conditions)
    if raw is None and not reads:
        return None
    spec = convert_part({} if raw is None else raw, ScoresSpec, "scores")
    return float(spec.every), float(spec.refit), float(spec.horizon), spec.churn_below
