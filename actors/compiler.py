"""From a parsed scenario document to a ``Program``, or a ``ScenarioError`` a person can act on.

Two passes. The shape pass converts each part with msgspec into the typed specs of ``actors.specs``
(unknown fields, wrong types, values out of range and malformed durations are caught there, with
the path of the field). The meaning pass, here, checks what types cannot: step references, channel
names, conditions, and that every cycle in a journey passes through a step that waits. Every error
names the source, journey, step and field, and says what would be valid. Durations are seconds in
the compiled ``Program``: the core never parses one. A scenario file holds other tables too (the
simulator's); the loader, ``engine.scenario_files``, hands the core only its own, ``CORE_TABLES``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from actors.durations import parse_duration
from actors.errors import ScenarioError
from actors.events import event_names
from actors.journey import (
    INSTANT_STEPS,
    OPERATORS,
    BranchStep,
    Cap,
    Condition,
    Cooldown,
    EndStep,
    EscalateStep,
    Journey,
    Policy,
    Program,
    SendStep,
    SplitStep,
    Step,
    UpdateStep,
    WaitForStep,
    WaitStep,
    build_program,
    successors,
)
from actors.messages import CHANNELS, Scalar
from actors.policy import rank_channels
from actors.profile import Profile
from actors.scores import SCORE_NAMES
from actors.segment_compiler import check_segment_references, compile_scoring, compile_segments
from actors.segments import SCHEDULED, Segment
from actors.specs import (
    ConditionSpec,
    EventName,
    JourneySpec,
    PolicySpec,
    SplitArmSpec,
    StepSpec,
    WaitUntilSpec,
)
from actors.validation import convert_part

STEP_KINDS = ("wait", "wait_for", "send", "branch", "split", "update", "escalate", "end")
SOURCES = {
    "event": None,
    "traits": None,
    "profile": ("purchases", "revenue", "days_since_purchase"),
    "engagement": ("sends", "delivered", "opened", "clicked", "click_rate"),
    "scores": SCORE_NAMES,
    "segment": None,  # membership of a segment, by its id: true or false
}
RULES = ("quiet_hours", "same_message", "channel_cap", "frequency_cap", "after_conversion")
# what the core reads of a scenario
CORE_TABLES = ("name", "description", "policy", "journeys", "events", "segments", "scores")


def compile_scenario(document: dict[str, Any], source: str = "<scenario>") -> Program:
    """Validate a parsed scenario document and compile it.

    Args:
        document: the scenario's ``CORE_TABLES`` as parsed from TOML (the loader checks the rest).
        source: the file name, for error messages.

    Returns:
        The immutable ``Program`` the actors walk.

    Raises:
        ScenarioError: the first problem found, with its location and what would be valid.
    """
    try:
        return _compile(document, source)
    except ScenarioError as exc:
        raise exc.located(source=source) from None


def _compile(document: dict[str, Any], source: str) -> Program:
    if not isinstance(document, dict):
        raise ScenarioError("a scenario is a TOML table")
    raw_journeys = document.get("journeys")
    if not isinstance(raw_journeys, list) or not raw_journeys:
        raise ScenarioError("a scenario needs at least one [[journeys]] table", field="journeys")
    policy = _compile_policy(document.get("policy", {}))
    segments = compile_segments(document.get("segments", {}), _conditions)
    journeys: list[Journey] = []
    for index, raw in enumerate(raw_journeys):
        name = raw.get("id") if isinstance(raw, dict) else None
        label = name if isinstance(name, str) else f"#{index + 1}"
        try:
            journey = _compile_journey(raw, segments)
        except ScenarioError as exc:
            raise exc.located(journey=label) from None
        if any(j.id == journey.id for j in journeys):
            raise ScenarioError("journey ids must be unique", journey=journey.id, field="id")
        for step_id, step in journey.steps.items():  # (the graph is not shared yet)
            if isinstance(step, SendStep) and step.best:  # how a customer without history ranks
                order = rank_channels(policy, Profile(""), step.channels)
                journey.steps[step_id] = msgspec.structs.replace(step, by_prior=order)
        journeys.append(journey)
    if not any(j.enabled for j in journeys):
        raise ScenarioError("every journey is switched off (enabled = false)", field="journeys")
    name = document.get("name", source)
    return build_program(str(name), journeys, policy, _compile_events(document.get("events", {})), segments,
                         compile_scoring(document.get("scores"), segments, journeys))


def _compile_events(raw: object) -> dict[str, str]:
    """``[events]``: incoming names to the journey vocabulary, over the e-commerce defaults."""
    declared = convert_part(raw, dict[EventName, EventName], "events")
    return event_names(declared)


def _compile_policy(raw: object) -> Policy:
    try:
        spec = convert_part(raw, PolicySpec)
        caps = []
        for i, cap in enumerate(spec.caps):
            if cap.channel is not None:
                _check_channel(cap.channel, f"caps[{i}].channel")
            caps.append(Cap(cap.max, float(cap.per), cap.channel))
        cooldowns = []
        if spec.after_conversion is not None:
            cooldowns.append(Cooldown("after_conversion", "purchase", float(spec.after_conversion)))
        for i, cd in enumerate(spec.cooldowns):
            where = f"cooldowns[{i}]"
            rule = cd.name or f"cooldown_{cd.event}"
            conditions = _conditions(cd.where, f"{where}.where", event_only=True)
            cooldowns.append(Cooldown(rule, cd.event, float(cd.duration), conditions))
        rules = set(RULES) | {c.rule for c in cooldowns}
        for rule, action in spec.on_block.items():
            if rule not in rules:
                expected = f"unknown rule; expected one of {sorted(rules)}"
                raise ScenarioError(expected, field=f"on_block.{rule}")
            if action not in ("defer", "skip"):
                raise ScenarioError(f"{action!r}: expected 'defer' or 'skip'", field=f"on_block.{rule}")
        for channel in spec.channel_priors:
            _check_channel(channel, f"channel_priors.{channel}")
        quiet = spec.quiet_hours
        return Policy(
            caps=tuple(caps),
            quiet_start=float(quiet.start) if quiet else None,
            quiet_end=float(quiet.end) if quiet else None,
            cooldowns=tuple(cooldowns),
            same_message_window=_seconds(spec.same_message_window),
            on_block=dict(spec.on_block),
            channel_priors=dict(spec.channel_priors),
            prior_weight=spec.prior_weight,
            global_holdout=spec.global_holdout,
            best_hour=(float((best := spec.best_hour).within), float(best.default), best.min_history),
        )
    except ScenarioError as exc:
        raise exc.with_prefix("policy") from None


def _compile_journey(raw: object, segments: tuple[Segment, ...]) -> Journey:
    spec = convert_part(raw, JourneySpec)
    for name, field in ((spec.id, "id"), *((step_id, f"steps.{step_id}") for step_id in spec.steps)):
        if ":" in name:  # send keys are "customer:journey:entry:step:n", read from the right
            raise ScenarioError(f"{name!r} contains ':', which idempotency keys reserve", field=field)
    steps: dict[str, Step] = {}
    for step_id, raw_step in spec.steps.items():
        try:
            steps[step_id] = _compile_step(step_id, raw_step)
        except ScenarioError as exc:
            raise exc.located(step=step_id) from None
    if spec.start not in steps:
        raise ScenarioError(f"unknown step {spec.start!r}; steps are {sorted(steps)}", field="start")
    for step in steps.values():
        for field, target in _references(step):
            if target not in steps:
                raise ScenarioError(
                    f"unknown step {target!r}; steps are {sorted(steps)}", step=step.id, field=field
                )
    _check_no_wait_free_cycle(steps)
    entry = spec.entry
    if (entry.event is None) == (entry.schedule is None):
        raise ScenarioError("an entry has an event or a schedule (one of them)", field="entry")
    schedule = None if entry.schedule is None else (
        float(entry.schedule.every), float(entry.schedule.first), float(entry.schedule.at))
    journey = Journey(
        id=spec.id,
        entry_event=entry.event or SCHEDULED + spec.id,
        entry_where=_conditions(spec.entry.where, "entry.where", event_only=True),
        start=spec.start,
        steps=steps,
        exit_events=tuple(spec.exit.events),
        reentry=_seconds(spec.reentry),
        holdout=spec.holdout,
        priority=spec.priority,
        goal_event=spec.goal.event,
        goal_within=float(spec.goal.within),
        entry_segment=_segment_index(entry.segment, segments, "entry.segment"),
        schedule=schedule,
        skip_active=entry.skip_active,
        enabled=spec.enabled,
    )
    check_segment_references(journey, segments)
    return journey


def _segment_index(segment_id: str | None, segments: tuple[Segment, ...], field: str) -> int:
    if segment_id is None:
        return -1
    for segment in segments:
        if segment.id == segment_id:
            return segment.index
    known = [s.id for s in segments]
    raise ScenarioError(f"unknown segment {segment_id!r}; the scenario's segments are {known}", field=field)


def _compile_step(step_id: str, raw: object) -> Step:
    spec = convert_part(raw, StepSpec)
    kinds = [k for k in STEP_KINDS if getattr(spec, k) is not None]
    if len(kinds) != 1:
        found = f"found {kinds}" if kinds else "found none"
        raise ScenarioError(
            f"a step has exactly one kind of {list(STEP_KINDS)}; {found}",
            field=kinds[1] if len(kinds) > 1 else None,
        )
    kind = kinds[0]
    if kind == "wait":
        if spec.wait == "best_hour":  # the hour the customer most often engages at
            return WaitStep(step_id, _need(spec.next, "next"), best_hour=True)
        if isinstance(spec.wait, str):
            return WaitStep(step_id, _need(spec.next, "next"), seconds=_duration(spec.wait, "wait"))
        assert isinstance(spec.wait, WaitUntilSpec)
        return WaitStep(step_id, _need(spec.next, "next"), until=float(spec.wait.until))
    if kind == "wait_for":
        wf = spec.wait_for
        assert wf is not None
        return WaitForStep(
            step_id,
            wf.event,
            float(wf.timeout),
            _need(spec.on_event, "on_event"),
            _need(spec.on_timeout, "on_timeout"),
            _conditions(wf.where, "wait_for.where", event_only=True),
        )
    if kind == "send":
        return _compile_send(step_id, spec)
    if kind == "branch":
        assert spec.branch is not None
        rules = tuple(
            (_conditions(rule.if_, f"branch[{i}].if"), rule.next) for i, rule in enumerate(spec.branch)
        )
        return BranchStep(step_id, rules, _need(spec.else_, "else"))
    if kind == "split":
        assert spec.split is not None
        return _compile_split(step_id, spec.split)
    if kind == "update":
        assert spec.update is not None
        return UpdateStep(step_id, dict(spec.update), _need(spec.next, "next"))
    if kind == "escalate":
        assert spec.escalate is not None
        return EscalateStep(step_id, spec.escalate.queue, _need(spec.next, "next"))
    return EndStep(step_id)


def _compile_send(step_id: str, spec: StepSpec) -> SendStep:
    send = spec.send
    assert send is not None
    if send.channel == "best":
        if not send.candidates:
            raise ScenarioError(
                'channel "best" chooses among candidates: give candidates = ["push", "email"]',
                field="send.candidates",
            )
        for i, channel in enumerate(send.candidates):
            _check_channel(channel, f"send.candidates[{i}]")
        channels, best = tuple(send.candidates), True
    else:
        _check_channel(send.channel, "send.channel", allow_best=True)
        channels, best = (send.channel,), False
    return SendStep(step_id, send.message, channels, best, _need(spec.next, "next"), send.transactional)


def _compile_split(step_id: str, arms: list[SplitArmSpec]) -> SplitStep:
    if not arms or any(arm.weight <= 0 for arm in arms):
        raise ScenarioError("a split has arms with positive weights", field="split")
    total = sum(arm.weight for arm in arms)
    cumulative, acc = [], 0.0
    for arm in arms:
        acc += arm.weight
        cumulative.append((acc / total, arm.next))
    return SplitStep(step_id, tuple(cumulative))


def _conditions(specs: list[ConditionSpec], field: str, event_only: bool = False) -> tuple[Condition, ...]:
    out = []
    for i, spec in enumerate(specs):
        where = f"{field}[{i}]"
        source, _, rest = spec.field.partition(".")
        if event_only and source != "event":
            source, rest = "event", spec.field  # entry filters speak of the event alone
        if source not in SOURCES or not rest:
            raise ScenarioError(
                f"{spec.field!r}: expected <source>.<name> with source one of {sorted(SOURCES)}"
                ' (e.g. "event.value", "engagement.email.clicked", "profile.purchases")',
                field=f"{where}.field",
            )
        path = tuple(rest.split("."))
        allowed = SOURCES[source]
        name = path[-1] if source == "engagement" else path[0]
        if source == "engagement" and (len(path) != 2 or path[0] not in CHANNELS):
            raise ScenarioError(
                f"{spec.field!r}: expected engagement.<channel>.<counter>, channels {list(CHANNELS)}",
                field=f"{where}.field",
            )
        if allowed is not None and name not in allowed:
            raise ScenarioError(f"{spec.field!r}: expected one of {list(allowed)}", field=f"{where}.field")
        if spec.op not in OPERATORS:
            raise ScenarioError(f"{spec.op!r}: expected one of {list(OPERATORS)}", field=f"{where}.op")
        value: Scalar | tuple[Scalar, ...]
        if spec.op in ("in", "not_in"):
            if not isinstance(spec.value, list):
                raise ScenarioError(f"{spec.op!r} needs a list value", field=f"{where}.value")
            value = tuple(spec.value)
        elif isinstance(spec.value, list):
            raise ScenarioError(f"{spec.op!r} needs a single value", field=f"{where}.value")
        else:
            value = spec.value
        out.append(Condition(source, path, spec.op, value))
    return tuple(out)


def _references(step: Step) -> list[tuple[str, str]]:
    if isinstance(step, WaitForStep):
        return [("on_event", step.on_event), ("on_timeout", step.on_timeout)]
    if isinstance(step, BranchStep):
        return [(f"branch[{i}].next", t) for i, (_, t) in enumerate(step.rules)] + [("else", step.otherwise)]
    if isinstance(step, SplitStep):
        return [(f"split[{i}].next", t) for i, (_, t) in enumerate(step.arms)]
    return [("next", t) for t in successors(step)]


def _check_no_wait_free_cycle(steps: dict[str, Step]) -> None:
    """Every cycle must pass through a wait or wait_for step, or a walk would never stop."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(step_id: str, path: list[str]) -> None:
        state[step_id] = 1
        path.append(step_id)
        step = steps[step_id]
        if isinstance(step, INSTANT_STEPS):
            for target in successors(step):
                if state.get(target) == 1:
                    cycle = path[path.index(target):] + [target]
                    raise ScenarioError(
                        f"wait-free cycle {' -> '.join(cycle)}: put a wait or wait_for step on it",
                        step=target,
                        field="next",
                    )
                if state.get(target) is None:
                    visit(target, path)
        path.pop()
        state[step_id] = 2

    for step_id in steps:
        if step_id not in state:
            visit(step_id, [])


def _check_channel(channel: str, field: str, allow_best: bool = False) -> None:
    if channel not in CHANNELS:
        extra = ' or "best" with candidates' if allow_best else ""
        expected = f"unknown channel {channel!r}; expected one of {list(CHANNELS)}{extra}"
        raise ScenarioError(expected, field=field)


def _duration(text: object, field: str) -> float:
    try:
        return parse_duration(text)
    except ScenarioError as exc:
        raise exc.located(field=field) from None


def _seconds(duration: float | None) -> float | None:
    """A decoded duration as a plain float (None stays)."""
    return None if duration is None else float(duration)


def _need(target: str | None, field: str) -> str:
    if target is None:
        raise ScenarioError(f"this step needs {field!r} (the id of the step that follows)", field=field)
    return target
