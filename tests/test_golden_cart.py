"""The golden trace of the built-in cart abandonment journey, effect by effect."""

from __future__ import annotations

from harness import DAY, HOUR, T0, ManualClock, make_actor

from actors.journey import stable_fraction
from actors.messages import (
    Advanced,
    Cancel,
    Converted,
    DeliveryReceipt,
    Entered,
    Event,
    Exited,
    Schedule,
    Send,
)

J = "cart_abandonment"
MEMBER = "cust-1"  # stable_fraction = 0.94: in the treated 90%
HELD_OUT = "cust-3"  # stable_fraction = 0.016: in the 10% holdout
TZ = 2 * HOUR  # local time = UTC + 2h: T0 is 12:00 local, far from 21:00-08:00


def test_customer_ids_fall_where_the_tests_assume(cart_program):
    holdout = cart_program.by_id[J].holdout
    assert holdout == 0.10
    assert stable_fraction(J, MEMBER) >= holdout
    assert stable_fraction(J, HELD_OUT) < holdout


def test_golden_trace_push_then_email_then_purchase_stops_everything(cart_program):
    clock = ManualClock(make_actor(cart_program, MEMBER, tz_offset=TZ), fire_cancelled=True)

    assert clock.handle(Event("cart_add", {"value": 50}), T0) == [
        Entered(J, 1, False),
        Advanced(J, "wait_1h"),
        Schedule(T0 + HOUR, J, 1, 0),
    ]
    assert clock.advance_to(T0 + HOUR) == [
        Advanced(J, "push"),
        Send(MEMBER, J, 1, "push", "push", "cart_reminder", f"{MEMBER}:{J}:1:push:1"),
        Advanced(J, "did_engage"),
        Schedule(T0 + HOUR + DAY, J, 2, 0),
    ]
    assert clock.advance_to(T0 + HOUR + DAY - 1) == []  # no click, nothing before the timeout
    assert clock.advance_to(T0 + HOUR + DAY) == [
        Advanced(J, "email"),
        Send(MEMBER, J, 1, "email", "email", "cart_reminder_email", f"{MEMBER}:{J}:1:email:2"),
        Advanced(J, "did_engage_email"),
        Schedule(T0 + HOUR + 3 * DAY, J, 3, 0),
    ]
    bought = T0 + 2 * DAY
    assert clock.handle(Event("purchase", {"value": 50}), bought) == [
        Converted(J, 1, False, 50.0, 2 * DAY, ("wait_1h", "push", "did_engage", "email", "did_engage_email"),
                  ("push", "email"),  # (its path: the push, then the email; its touches: when, which)
                  ((T0 + HOUR, "sent", "push", "cart_reminder", J),
                   (T0 + HOUR + DAY, "sent", "email", "cart_reminder_email", J))),
        Cancel(J, 3),
        Exited(J, "purchase"),
    ]
    # the SMS timer is still queued (fired anyway, fire_cancelled=True): it must do nothing
    assert clock.advance_to(T0 + 60 * DAY) == []
    assert [s.channel for _, s in clock.sends()] == ["push", "email"]
    assert not clock.pending


def test_without_purchase_the_journey_ends_with_the_sms(cart_program):
    clock = ManualClock(make_actor(cart_program, MEMBER, tz_offset=TZ))
    clock.handle(Event("cart_add", {"value": 50}), T0)
    clock.run_until_idle()
    assert [(at - T0, s.channel, s.message) for at, s in clock.sends()] == [
        (HOUR, "push", "cart_reminder"),
        (HOUR + DAY, "email", "cart_reminder_email"),
        (HOUR + 3 * DAY, "sms", "cart_last_call"),
    ]
    assert clock.effects()[-2:] == [Advanced(J, "end"), Exited(J, "end")]


def test_a_click_on_the_push_ends_the_journey_early(cart_program):
    clock = ManualClock(make_actor(cart_program, MEMBER, tz_offset=TZ))
    clock.handle(Event("cart_add", {"value": 50}), T0)
    clock.advance_to(T0 + HOUR)
    clicked = DeliveryReceipt(J, 1, "push", "cart_reminder", "clicked")
    assert clock.handle(clicked, T0 + 2 * HOUR) == [
        Cancel(J, 2),
        Advanced(J, "end"),
        Exited(J, "end"),
    ]
    clock.run_until_idle()
    assert [s.channel for _, s in clock.sends()] == ["push"]


def test_a_small_cart_does_not_enter(cart_program):
    clock = ManualClock(make_actor(cart_program, MEMBER, tz_offset=TZ))
    assert clock.handle(Event("cart_add", {"value": 20}), T0) == []  # entry needs value > 20
    assert clock.run_until_idle() == []


def test_holdout_customer_gets_no_sends_but_conversion_still_counts(cart_program):
    clock = ManualClock(make_actor(cart_program, HELD_OUT, tz_offset=TZ))
    assert clock.handle(Event("cart_add", {"value": 50}), T0) == [
        Entered(J, 1, True),
        Exited(J, "holdout"),
    ]
    assert clock.advance_to(T0 + 3 * DAY) == []
    assert clock.handle(Event("purchase", {"value": 80}), T0 + 6 * DAY) == [
        Converted(J, 1, True, 80.0, 6 * DAY),
    ]
    assert clock.run_until_idle() == []
    assert clock.sends() == []


def test_holdout_purchase_after_the_goal_window_is_not_a_conversion(cart_program):
    clock = ManualClock(make_actor(cart_program, HELD_OUT, tz_offset=TZ))
    clock.handle(Event("cart_add", {"value": 50}), T0)
    assert clock.handle(Event("purchase", {"value": 80}), T0 + 7 * DAY + 1) == []
