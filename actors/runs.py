"""A customer's run through one journey: the state an actor keeps per journey."""

from __future__ import annotations

from collections.abc import Sequence

from actors.journey import Journey
from actors.messages import Effect, Exited, Properties, Schedule
from actors.profile import Profile


class JourneyRun:
    """A customer's state in one journey (kept after exit, for re-entry and goal windows).

    Attributes:
        entry: how many times the customer entered (1 for the first entry).
        entered_at: when the latest entry happened.
        holdout: whether the latest entry was held out (no sends).
        converted: whether the goal was reached for the latest entry.
        step: the step the run waits on, or None when the run is not active.
        version: the version of the run's live timer.
        due_at: when that timer is due (a runtime restoring state re-arms it from here).
        context: the properties of the event that triggered the latest entry.
        sends: sends made in the latest entry (part of each send's idempotency key).
        passed: the steps the latest entry has reached, one bit each (``Journey.step_bits``):
            a conversion names them (``Converted.steps``), for the funnel's converted-after.
    """

    __slots__ = (
        "entry", "entered_at", "holdout", "converted", "step", "version", "due_at", "context", "sends",
        "passed",
    )

    def __init__(self) -> None:
        self.entry = 0
        self.entered_at = 0.0
        self.holdout = False
        self.converted = False
        self.step: str | None = None
        self.version = 0
        self.due_at = 0.0
        self.context: Properties = {}
        self.sends = 0
        self.passed = 0

    @property
    def lapsed(self) -> bool:
        """Whether the latest entry is one that ended, or may yet end, without converting: it was
        entered, not held out, and has not converted (its null path, once it is over)."""
        return bool(self.entry) and not (self.converted or self.holdout)

    def null_path(self, profile: Profile, window: float) -> tuple[str, ...]:
        """The latest entry's null path when it ``lapsed``: the channels of the sends ``profile``
        got in its goal window of ``window`` seconds (else ())."""
        return profile.touches_since(self.entered_at, self.entered_at + window) if self.lapsed else ()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JourneyRun) and all(
            getattr(self, name) == getattr(other, name) for name in self.__slots__
        )

    __hash__ = None  # type: ignore[assignment]


Runs = list["JourneyRun | None"]


def merge_runs(journeys: Sequence[Journey], mine: Runs | None, theirs: Runs | None,
               effects: list[Effect]) -> Runs | None:
    """The runs of two actors of one person, merged (``Actor.absorb``): journey by journey,
    ``mine``'s active run stays; where it has none, ``theirs``'s active run moves over (numbered
    after ``mine``'s entries, so idempotency keys cannot repeat); ``theirs``'s runs that do not
    move end with reason ``merged`` (an ``Exited`` in ``effects``)."""
    if theirs is None:
        return mine
    runs: Runs = mine if mine is not None else [None] * len(journeys)
    for journey, other in zip(journeys, theirs, strict=True):
        own = runs[journey.index]
        if other is None or other.step is None:
            continue
        if own is not None and own.step is not None:
            effects.append(Exited(journey.id, "merged"))  # the other person's run ends
            own.version = max(own.version, other.version)
            continue
        if own is not None:
            other.entry = max(other.entry, own.entry + 1)
            other.version = max(other.version, own.version)
        runs[journey.index] = other
    return runs


def run_timers(journeys: Sequence[Journey], runs: Runs | None) -> list[Schedule]:
    """The live timer of each active run, as the ``Schedule`` that asked for it."""
    return [Schedule(run.due_at, journey.id, run.version, journey.priority)
            for journey, run in zip(journeys, runs or (), strict=False)
            if run is not None and run.step is not None]


def active_elsewhere(journeys: Sequence[Journey], runs: Runs | None, journey: Journey) -> bool:
    """Whether the customer is active in a marketing journey other than ``journey`` that no
    schedule starts (a consideration journey: a broadcast skips them)."""
    return any(run is not None and run.step is not None and other is not journey and other.marketing
               and other.schedule is None for other, run in zip(journeys, runs or (), strict=False))
