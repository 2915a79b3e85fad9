"""The exception hierarchy, for people first.

    TouchpointError
    ├── ScenarioError        a bad scenario file: names the file, journey, step and field,
    │                        and says what would be valid
    ├── IngestError          a bad event at the edge: answered with a 4xx naming field and reason
    ├── ProviderError        a channel failed: retried, then dead-lettered, never dropped silently
    └── EngineInternalError  our bug: an invariant of the core did not hold

The storage's error, ``StorageError`` (a data folder damaged, or that cannot be written: it names
the file, the offset or the cause, and what to do), is a ``TouchpointError`` too, but lives in
``engine.storage.errors``, where it is raised: the pure core does no I/O.

Boundaries translate foreign exceptions into these with ``raise ... from None``; nothing is
swallowed.
"""

from __future__ import annotations


class TouchpointError(Exception):
    """Base of every error Touchpoint raises on purpose."""


class ScenarioError(TouchpointError):
    """A scenario file is invalid.

    Args:
        message: what is wrong and what would be valid.
        source: the file (or other origin) of the scenario.
        journey: the journey id, when the problem is inside one.
        step: the step id, when the problem is inside one.
        field: the field name, when one field is at fault.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str = "<scenario>",
        journey: str | None = None,
        step: str | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.source = source
        self.journey = journey
        self.step = step
        self.field = field
        super().__init__(str(self))

    def located(self, **where: str | None) -> ScenarioError:
        """Return a copy with the missing location parts filled in from ``where``."""
        parts = {k: getattr(self, k) for k in ("source", "journey", "step", "field")}
        for key, value in where.items():
            if parts.get(key) in (None, "<scenario>") and value is not None:
                parts[key] = value
        return ScenarioError(self.message, **parts)

    def with_prefix(self, prefix: str) -> ScenarioError:
        """Return a copy whose field is qualified by ``prefix`` (``policy`` + ``caps[0].per``)."""
        field = f"{prefix}.{self.field}" if self.field else prefix
        return ScenarioError(
            self.message, source=self.source, journey=self.journey, step=self.step, field=field
        )

    def __str__(self) -> str:
        where = [self.source]
        if self.journey is not None:
            where.append(f"journey {self.journey!r}")
        if self.step is not None:
            where.append(f"step {self.step!r}")
        if self.field is not None:
            where.append(f"field {self.field!r}")
        return f"{', '.join(where)}: {self.message}"


class IngestError(TouchpointError):
    """An incoming event is invalid; nothing of it was applied."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class ProviderError(TouchpointError):
    """A channel provider failed to take a send.

    Args:
        message: what the provider said.
        retry_after: seconds the provider asked to wait before trying again, if it said.
        permanent: True when trying again cannot help (a 4xx other than 408/429).
    """

    def __init__(self, message: str, *, retry_after: float | None = None, permanent: bool = False) -> None:
        self.retry_after = retry_after
        self.permanent = permanent
        super().__init__(message)


class EngineInternalError(TouchpointError):
    """An invariant of the engine did not hold: a bug in Touchpoint, please report it."""
