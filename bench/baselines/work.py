"""The work one fired timer does in the baselines (see ``bench.baselines``)."""

from __future__ import annotations

QUIET_START, QUIET_END = 21 * 3600, 8 * 3600  # 21:00 to 08:00, local time
CAP, CAP_WINDOW = 2, 86400.0


class Customer:
    """What a baseline keeps per customer: a time zone and the times of the sends made."""

    __slots__ = ("tz", "sent")

    def __init__(self, tz: float) -> None:
        self.tz = tz
        self.sent: list[float] = []


def fire(customer: Customer, now: float, sends: list[tuple[Customer, float]]) -> None:
    """A wait came due: send unless quiet hours or the cap forbid it."""
    local = (now + customer.tz) % 86400.0
    if local >= QUIET_START or local < QUIET_END:
        return
    recent = [at for at in customer.sent if now - at < CAP_WINDOW]
    if len(recent) >= CAP:
        return
    recent.append(now)
    customer.sent = recent
    sends.append((customer, now))


def customers(count: int) -> list[Customer]:
    """``count`` customers over five time zones, none of them in quiet hours at noon UTC."""
    zones = tuple(hours * 3600.0 for hours in (-3, -1, 0, 1, 2))
    return [Customer(zones[i % len(zones)]) for i in range(count)]


NOON = 1_700_049_600.0  # 2023-11-15 12:00 UTC: the moment the waits come due
