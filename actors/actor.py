"""The actor: one customer's profile and journey runs, as a pure state machine.

Theory of operation. ``Actor.handle(message, now)`` is the only way in. It updates the profile,
then walks every journey the message concerns, in journey priority order (highest first):

    Event            goals reached -> Converted; exit events -> Exited (+ Cancel);
                     a wait_for satisfied -> on_event; entry events -> Entered, then walk
    TimerFired       stale version: nothing. Otherwise the step the run waits on decides:
                     wait -> next; wait_for -> on_timeout; a deferred send -> try it again
                     (``scheduled:<journey>``: a scheduled entry, as an event would enter)
    DeliveryReceipt  engagement counters and timeline; ``message_<status>`` may satisfy the
                     journey's wait_for
    Identified       traits and reachability
    Scored           the predictive scores (``actors.scores``)

After each (and, for an event, before its journeys too) the live segments are re-read
(``actors.segments``): a change walks the journeys as ``entered:<id>`` or ``left:<id>``.

``absorb`` folds another actor of the same person into this one (an identity merge): a
runtime applies a ``Merged`` message with it, since that needs both actors.

A walk runs instant steps (send, branch, split, update, escalate) until the run stops on a step
that waits (wait, wait_for, or a send deferred by policy), or ends. So an active run always has
exactly one live timer, whose version is ``run.version``; older timers are ignored when they fire.
Scenario validation forbids wait-free cycles, so a walk always stops.
"""

from __future__ import annotations

import math

from actors.conditions import choose_arm, choose_branch
from actors.errors import EngineInternalError
from actors.events import translate
from actors.invariants import invariant_problems
from actors.journey import (
    BranchStep,
    EndStep,
    EscalateStep,
    Journey,
    Program,
    SendStep,
    SplitStep,
    UpdateStep,
    WaitForStep,
    WaitStep,
    properties_match,
    stable_fraction,
)
from actors.messages import (
    BROWSING_EVENTS,
    Advanced,
    Bought,
    Cancel,
    Converted,
    DeliveryReceipt,
    Effect,
    Entered,
    Event,
    Exited,
    Identified,
    Message,
    Properties,
    Recorded,
    Schedule,
    Scored,
    Send,
    Suppressed,
    Timed,
    TimerFired,
    number,
)
from actors.policy import wait_until
from actors.profile import Profile
from actors.runs import JourneyRun, active_elsewhere, merge_runs, run_timers
from actors.segments import SCHEDULED, SEGMENT_TIMER, SegmentState, fired, in_segment, regroup, stale
from actors.segments import slots as segment_slots
from actors.sending import deliver, escalation, note, still_relevant, take_receipt, try_send

_NO_CONTEXT: Properties = {}  # shared by runs whose journey never reads its trigger; never mutated


class Actor:
    """One customer: the unified profile plus a run per journey.

    Args:
        program: the compiled scenario, shared by all actors.
        profile: the customer's profile.
    """

    __slots__ = ("program", "profile", "runs", "in_app", "segments")

    def __init__(self, program: Program, profile: Profile) -> None:
        self.program = program
        self.profile = profile
        self.runs: list[JourneyRun | None] | None = None  # by ``Journey.index``
        self.in_app: list[Send] | None = None  # shown at the customer's next session
        self.segments: SegmentState | None = None  # live segments (``actors.segments``)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Actor):
            return NotImplemented
        return (self.profile == other.profile and self.runs_by_id() == other.runs_by_id()
                and (self.in_app or []) == (other.in_app or []) and self.segments == other.segments)

    __hash__ = None  # type: ignore[assignment]

    def runs_by_id(self) -> dict[str, JourneyRun]:
        """The customer's journey runs by journey id (journeys never entered are left out)."""
        pairs = zip(self.program.journeys, self.runs or (), strict=False)
        return {journey.id: run for journey, run in pairs if run is not None}

    def live_timers(self) -> list[Schedule]:
        """The one live timer of each active run, and the segment timer, as the ``Schedule`` that
        asked for it: a runtime restoring the actor re-arms these (overdue: fired at restart)."""
        timers = run_timers(self.program.journeys, self.runs)
        if self.segments is not None and self.segments.due < math.inf:
            timers.append(self.segments.timer())
        return timers

    def _run_of(self, journey_id: str) -> tuple[Journey | None, JourneyRun | None]:
        """The journey of that id and the customer's run in it (None where there is none)."""
        journey = self.program.by_id.get(journey_id)
        if journey is None or self.runs is None:
            return journey, None
        return journey, self.runs[journey.index]

    @property
    def customer_id(self) -> str:
        """The customer's identity."""
        return self.profile.customer_id

    # -- the one way in --------------------------------------------------------------------------

    def handle(self, message: Message, now: float) -> list[Effect]:
        """Apply one message at time ``now`` and return the effects, in order.

        Raises:
            EngineInternalError: the message is of no known kind.
        """
        effects: list[Effect] = []
        read = 0  # how many effects there were once the segments were current
        times = self.profile.timeline_at
        if times and now < times[-1]:  # an event stamped earlier than the customer's latest
            now = times[-1]  # interaction (real time): their history stays in order
        if isinstance(message, Event):
            target = self.program.event_names.get(message.name)
            if target is not None:  # (a tracking plan's name for something journeys know)
                message = translate(message, target)
            read = self._on_event(message.name, message.properties, now, effects)
        elif isinstance(message, TimerFired):
            if message.journey == SEGMENT_TIMER:  # a window lets an event go: re-read membership
                if not fired(self.segments, message.version):
                    return effects
            else:
                self._on_timer(message, now, effects)
        elif isinstance(message, DeliveryReceipt):
            self._on_receipt(message, now, effects)
        elif isinstance(message, Identified):
            self.profile.identify(message.traits, message.reachable, message.consent)
        elif isinstance(message, Recorded):  # (too old to act on: counted, nothing else)
            target = self.program.event_names.get(message.name, message.name)
            self.profile.record_late(translate(Event(message.name, message.properties), target))
        elif isinstance(message, Scored):
            self.profile.scores, self.profile.scored_at = message.values, message.at
        else:  # (a Merged message needs the other actor: runtimes apply it with ``absorb``)
            raise EngineInternalError(f"actor {self.customer_id!r}: unknown message {message!r}")
        if self.program.segments and stale(self.program, self.segments, message, read, len(effects)):
            self._regroup(now, effects)
        return effects

    # -- messages --------------------------------------------------------------------------------

    def _on_event(self, name: str, props: Properties, now: float, effects: list[Effect]) -> int:
        """Apply an event; returns how many effects there were once its segments were current."""
        program, profile = self.program, self.profile
        if name == "purchase":
            profile.record_purchase(value := number(props.get("value")), now)
            if (policy := program.policy).global_holdout:  # (the program's lift: buyers in and out)
                effects.append(Bought(value, profile.purchases == 1, policy.holds_out(self.customer_id)))
        if name in program.cooldown_events:
            for index, cooldown in enumerate(program.policy.cooldowns):
                if cooldown.event == name and properties_match(cooldown.where, props):
                    profile.start_cooldown(index, now)
        if name not in BROWSING_EVENTS:
            note(self.program, self.profile, now, "event", "", name)
        if name == "session_start" and self.in_app:
            if profile.can_reach("in_app") and profile.has_consent("in_app"):  # may be withdrawn
                effects.extend(send for send in self.in_app if still_relevant(self, send))
            self.in_app = None
        if name in program.segment_events:  # membership first: what follows reads it as it now is
            if self.segments is None:
                self.segments = SegmentState(segment_slots(program.segments))
            self.segments.record(program.segments, name, props, now)
            self._regroup(now, effects)
        elif name == "purchase" and "profile" in program.segment_reads:  # (purchases, revenue)
            self._regroup(now, effects)
        read = len(effects)  # (no other event changes what a segment reads)
        self._journeys_on(name, props, now, effects)
        return read

    def _journeys_on(self, name: str, props: Properties, now: float, effects: list[Effect]) -> None:
        """What an event does to the journeys: goals, exits, waits, then entries."""
        program = self.program
        if name not in program.journey_events:
            return
        runs = self.runs
        if runs is not None:
            for journey in program.by_goal.get(name, ()):
                self._check_goal(journey, props, now, effects)
            for journey in program.by_exit.get(name, ()):
                run = runs[journey.index]
                if run is not None and run.step is not None:
                    self._stop(journey, run, name, effects)
            if name in program.wait_events:
                for journey in program.journeys:
                    run = runs[journey.index]
                    if run is not None and run.step is not None:
                        self._resume_on_event(journey, run, name, props, now, effects)
        for journey in program.by_entry.get(name, ()):
            if properties_match(journey.entry_where, props):
                self._enter(journey, props, now, effects)

    def _on_timer(self, timer: TimerFired, now: float, effects: list[Effect]) -> None:
        journey, run = self._run_of(timer.journey)
        if journey is None and timer.journey.startswith(SCHEDULED):  # a scheduled entry's moment
            self._journeys_on(timer.journey, {}, now, effects)
            return
        if journey is None or run is None or run.step is None or timer.version != run.version:
            return  # cancelled lazily: a newer timer, or the run is over
        step = journey.steps[run.step]
        if isinstance(step, WaitStep):
            self._walk(journey, run, step.next, now, effects)
        elif isinstance(step, WaitForStep):
            self._walk(journey, run, step.on_timeout, now, effects)
        else:  # a send deferred by policy: try it again, without announcing the step anew
            self._walk(journey, run, run.step, now, effects, announce=False)

    def _on_receipt(self, receipt: DeliveryReceipt, now: float, effects: list[Effect]) -> None:
        take_receipt(self.program, self.profile, receipt, now)
        journey, run = self._run_of(receipt.journey)
        if journey is not None and run is not None and run.step is not None and run.entry == receipt.entry:
            props: Properties = {"channel": receipt.channel, "message": receipt.message}
            self._resume_on_event(journey, run, "message_" + receipt.status, props, now, effects)

    def absorb(self, other: Actor, now: float) -> list[Effect]:
        """Take over the history of ``other``, found to be the same person (identify or alias).

        The profiles fold together (``Profile.absorb``), and the runs (``merge_runs``: this
        actor's active run stays, else ``other``'s moves over). Every active run afterwards gets
        a new timer version and is scheduled again at its due time, so the timers still queued
        for ``other`` (a runtime routes them here) are stale and ignored. Pending in-app
        messages join this actor's. ``other`` is not used again."""
        effects: list[Effect] = []
        self.profile.absorb(other.profile, keep_sends_after=now - self.program.send_horizon)
        self.runs = merge_runs(self.program.journeys, self.runs, other.runs, effects)
        for journey, run in zip(self.program.journeys, self.runs or (), strict=False):
            if run is not None and run.step is not None:
                self._schedule(journey, run, run.due_at, effects)
        if other.in_app:
            self.in_app = [*(self.in_app or ()), *other.in_app]
        if self.program.segments:  # (the survivor's windows stay; the merged profile is re-read)
            self._regroup(now, effects)
        return effects

    # -- journey transitions ---------------------------------------------------------------------

    def _enter(self, journey: Journey, props: Properties, now: float, effects: list[Effect]) -> None:
        if journey.marketing and self.program.policy.holds_out(self.customer_id):
            return  # the global holdout enters no marketing journey
        if journey.entry_segment >= 0 and not in_segment(self.segments, journey.entry_segment):
            return  # only the segment's members enter
        run = None if self.runs is None else self.runs[journey.index]
        if run is not None and (run.step is not None or journey.reentry is None
                                or now - run.entered_at < journey.reentry):
            return  # already in it, or re-entry not allowed (yet)
        if journey.skip_active and active_elsewhere(self.program.journeys, self.runs, journey):
            effects.append(Suppressed(journey.id, journey.start, "", "", "active_journey"))
            return  # a broadcast skips whom a triggered journey is talking to
        if self.runs is None:
            self.runs = [None] * len(self.program.journeys)
        if run is None:
            run = self.runs[journey.index] = JourneyRun()
        lapsed = run.null_path(self.profile, journey.goal_within)  # (the previous entry's)
        run.entry += 1
        run.entered_at = now
        run.converted = False
        run.context = props if journey.keeps_context else _NO_CONTEXT
        run.sends = 0
        run.passed = 0
        holdout = journey.holdout  # (no hash needed when there is no holdout)
        run.holdout = holdout > 0.0 and stable_fraction(journey.id, self.customer_id) < holdout
        effects.append(Entered(journey.id, run.entry, run.holdout, lapsed))
        if run.holdout:
            effects.append(Exited(journey.id, "holdout"))
            return
        self._walk(journey, run, journey.start, now, effects)

    def _check_goal(self, journey: Journey, props: Properties, now: float, effects: list[Effect]) -> None:
        run = self.runs[journey.index] if self.runs else None
        if run is None or run.entry == 0 or run.converted:
            return
        after = now - run.entered_at
        if after <= journey.goal_within:
            run.converted = True
            value = number(props.get("value"))
            steps = journey.steps_passed(run.passed)  # (the steps this entry reached)
            path, touches = self.profile.conversion_touches(run.entered_at)  # (the sends, in order)
            effects.append(Converted(journey.id, run.entry, run.holdout, value, after, steps, path, touches))

    def _stop(self, journey: Journey, run: JourneyRun, reason: str, effects: list[Effect]) -> None:
        effects.append(Cancel(journey.id, run.version))
        effects.append(Exited(journey.id, reason))
        run.step, run.due_at = None, 0.0  # no live timer (and no float kept alive)

    def _resume_on_event(
        self, journey: Journey, run: JourneyRun, name: str, props: Properties, now: float,
        effects: list[Effect],
    ) -> None:
        step = journey.steps[run.step] if run.step is not None else None
        if isinstance(step, WaitForStep) and step.event == name:
            if properties_match(step.where, props):
                effects.append(Cancel(journey.id, run.version))
                self._walk(journey, run, step.on_event, now, effects)

    def _walk(
        self,
        journey: Journey,
        run: JourneyRun,
        step_id: str,
        now: float,
        effects: list[Effect],
        announce: bool = True,
    ) -> None:
        """Run instant steps from ``step_id`` until the run waits or ends."""
        program, profile, steps = self.program, self.profile, journey.steps
        while True:
            step = steps[step_id]
            run.step = step_id
            if announce:
                effects.append(Advanced(journey.id, step_id))
                run.passed |= journey.step_bits[step_id]
            announce = True
            kind = type(step)  # exact types: the compiler makes no subclasses
            if kind is SendStep:
                send, retry_at = try_send(
                    program, profile, journey, run, step, now, effects  # type: ignore[arg-type]
                )
                if send is not None:
                    deliver(self, journey, run, send, effects)
                elif retry_at is not None:
                    self._schedule(journey, run, retry_at, effects)
                    return
                step_id = step.next  # type: ignore[union-attr]
            elif kind is WaitForStep:
                self._schedule(journey, run, now + step.timeout, effects)  # type: ignore[union-attr]
                return
            elif isinstance(step, WaitStep):
                at, own = wait_until(program.policy, profile, step, now)
                if own is not None:  # (a best_hour wait says whose hour it chose)
                    effects.append(Timed(journey.id, step_id, own))
                self._schedule(journey, run, at, effects)
                return
            elif kind is EndStep:
                run.step, run.due_at = None, 0.0
                effects.append(Exited(journey.id, "end"))
                return
            elif isinstance(step, BranchStep):
                members = self.segments.members if self.segments is not None else 0
                step_id = choose_branch(step, run, profile, now, members, program.segment_bits)
            elif isinstance(step, SplitStep):
                step_id = choose_arm(step, journey.id, self.customer_id)
            elif isinstance(step, UpdateStep):
                profile.update_traits(step.values)
                step_id = step.next
            elif isinstance(step, EscalateStep):
                note(self.program, self.profile, now, "escalated", "agent", step.queue)
                effects.append(escalation(profile, journey, run, step.id, step.queue))
                step_id = step.next

    def _schedule(self, journey: Journey, run: JourneyRun, at: float, effects: list[Effect]) -> None:
        run.version += 1
        run.due_at = at
        effects.append(Schedule(at, journey.id, run.version, journey.priority))

    def _regroup(self, now: float, effects: list[Effect]) -> None:
        """Re-read the segments; a change is said (``Segmented``) and walks the journeys as the
        event ``entered:<id>`` or ``left:<id>``."""
        self.segments, changed = regroup(self.program, self.profile, self.segments, now, effects)
        for name, segment in changed:
            self._journeys_on(name, {"segment": segment}, now, effects)

    # -- checking --------------------------------------------------------------------------------

    def check_invariants(self) -> None:
        """Raise ``EngineInternalError`` if the state is not one the core can produce."""
        problems = invariant_problems(self)
        if problems:
            raise EngineInternalError(f"actor {self.customer_id!r}: " + "; ".join(problems))
