"""Durations and times of day as scenario files write them.

A duration is one or more ``<integer><unit>`` parts with units ``w d h m s`` (``"90m"``, ``"1d12h"``);
a time of day is ``"HH:MM"`` in the customer's local time. Both become seconds (floats), the one unit
of time inside the core, once, when a scenario is read: a field typed ``Duration``, ``Delay`` or
``TimeOfDay`` is decoded by msgspec through ``decode_time``, and the compiler parses the rest (a
step's ``wait``, a duration or a table) as it compiles.
"""

from __future__ import annotations

import functools
import re
from datetime import datetime, timedelta
from datetime import time as dtime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from actors.errors import ScenarioError

UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"^(?:\d+[wdhms])+$")
_PART = re.compile(r"(\d+)([wdhms])")
_TIME_OF_DAY = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")

DURATION_HINT = 'a duration like "30m", "24h", "7d" or "1d12h" (units w, d, h, m, s; no spaces or signs)'
TIME_OF_DAY_HINT = 'a local time of day like "09:00" or "21:30" (24-hour HH:MM)'


class Duration(float):
    """Seconds, written in a file as a positive duration (``"90m"``)."""

    __slots__ = ()


class Delay(Duration):
    """Seconds, written in a file as a duration that may be zero (``"0s"``, ``"1d"``)."""

    __slots__ = ()


class TimeOfDay(float):
    """Seconds after local midnight, written in a file as ``"HH:MM"``."""

    __slots__ = ()


# msgspec's names of the types TOML gives, for a value that is not a string
_TOML_TYPES = {"dict": "object", "list": "array", "NoneType": "null"}


def decode_time(kind: type[Any], value: object) -> Any:
    """msgspec's ``dec_hook`` for ``Duration``, ``Delay`` and ``TimeOfDay`` fields.

    Raises:
        TypeError: ``value`` is not a string (msgspec locates it, as for any field).
        ValueError: it is not a duration or a time of day; the message says what would be valid.
        NotImplementedError: ``kind`` is none of the three.
    """
    if kind not in (Duration, Delay, TimeOfDay):
        raise NotImplementedError(f"no decoder for {kind}")
    if not isinstance(value, str):
        name = type(value).__name__
        raise TypeError(f"Expected `str`, got `{_TOML_TYPES.get(name, name)}`")
    try:
        if kind is TimeOfDay:
            return TimeOfDay(parse_time_of_day(value))
        return kind(parse_duration(value, allow_zero=kind is Delay))
    except ScenarioError as exc:
        raise ValueError(exc.message) from None


def parse_duration(text: object, *, allow_zero: bool = False) -> float:
    """Parse a duration into seconds.

    Args:
        text: the value found in the file.
        allow_zero: whether ``"0s"`` is acceptable.

    Returns:
        The duration in seconds.

    Raises:
        ScenarioError: the value is not a duration; the message says what would be valid.
    """
    if not isinstance(text, str) or not _DURATION.match(text):
        raise ScenarioError(f"{text!r} is not a duration: expected {DURATION_HINT}")
    seconds = float(sum(int(n) * UNIT_SECONDS[u] for n, u in _PART.findall(text)))
    if seconds == 0 and not allow_zero:
        raise ScenarioError(f"{text!r} is zero: expected a positive {DURATION_HINT}")
    return seconds


def parse_time_of_day(text: object) -> float:
    """Parse ``"HH:MM"`` into seconds after local midnight.

    Raises:
        ScenarioError: the value is not a time of day.
    """
    match = _TIME_OF_DAY.match(text) if isinstance(text, str) else None
    if match is None:
        raise ScenarioError(f"{text!r} is not a time of day: expected {TIME_OF_DAY_HINT}")
    return float(int(match.group(1)) * 3600 + int(match.group(2)) * 60)


Zone = float | str  # a fixed offset from UTC in seconds, or an IANA time zone name


def next_local_time(now: float, zone: Zone, time_of_day: float) -> float:
    """The first instant at or after ``now`` when the local clock reads ``time_of_day``.

    Args:
        now: the current time, seconds since the epoch (UTC).
        zone: the customer's offset from UTC in seconds, or an IANA name (``Asia/Tokyo``),
            whose offset at each moment follows its daylight saving rules.
        time_of_day: seconds after local midnight.
    """
    if isinstance(zone, str):
        return _next_in_zone(now, zone_info(zone), time_of_day)
    local = now + zone
    midnight = local - (local % 86400.0)
    target = midnight + time_of_day
    if target < local:
        target += 86400.0
    return target - zone


def local_time_of_day(now: float, zone: Zone) -> float:
    """Seconds after local midnight at ``now`` for a customer in ``zone``."""
    if isinstance(zone, str):
        local = datetime.fromtimestamp(now, zone_info(zone))
        return local.hour * 3600.0 + local.minute * 60.0 + local.second + local.microsecond / 1e6
    return (now + zone) % 86400.0


@functools.lru_cache(maxsize=512)
def zone_info(name: str) -> ZoneInfo:
    """The IANA zone ``name`` (its rules are data shipped with Python or the tzdata package).

    Raises:
        ValueError: no zone of that name.
    """
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"no time zone {name!r}") from None


def known_zone(name: str) -> bool:
    """Whether ``name`` is an IANA time zone this machine has the rules of."""
    try:
        zone_info(name)
    except ValueError:
        return False
    return True


def _next_in_zone(now: float, zone: ZoneInfo, time_of_day: float) -> float:
    hours, rest = divmod(int(time_of_day), 3600)
    clock = dtime(hours % 24, rest // 60, rest % 60)
    day = datetime.fromtimestamp(now, zone).date()
    for _ in range(3):  # today, or tomorrow (a day that skips the hour gives its nearest instant)
        target = datetime.combine(day, clock, tzinfo=zone).timestamp()
        if target >= now:
            return target
        day += timedelta(days=1)
    return now  # (unreachable: a local time of day recurs within two days)
