"""Send policies, channel choice and every step kind, through ``Actor.handle`` on a manual clock.

Each test builds a small scenario, drives one actor and asserts on the effects: a policy that
blocks a send must say so with its reason code (``Suppressed.rule``) and, when it defers, with
the time it will try again. The scenario is the test's ``[policy]`` and journey designs: files
of tests/journeys/ (``journey_text``), or, where the test varies them, the journeys that
``one_send`` and ``two_sends`` write.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from harness import DAY, HOUR, T0, ManualClock, compile_toml, journey_text, make_actor

from actors.messages import (
    Advanced,
    Cancel,
    Converted,
    DeliveryReceipt,
    Entered,
    Escalated,
    Event,
    Exited,
    Identified,
    Schedule,
    Send,
    Suppressed,
)

C = "c-1"


def program(policy: str, *journeys: str):
    """Compile a scenario from a [policy] body and journey tables (dedented)."""
    parts = ["[policy]", textwrap.dedent(policy)]
    parts += [textwrap.dedent(j) for j in journeys]
    return compile_toml("\n".join(parts), "policies.toml")


def one_send(
    jid: str = "j",
    *,
    entry: str = "go",
    message: str = "promo",
    channel: str = "email",
    priority: int = 0,
    extra: str = "",
    transactional: bool = False,
) -> str:
    """A journey that sends once, right on entry, then ends."""
    flag = ", transactional = true" if transactional else ""
    return f"""
        [[journeys]]
        id = "{jid}"
        entry = {{ event = "{entry}" }}
        priority = {priority}
        start = "send"
        {extra}

        [journeys.steps.send]
        send = {{ message = "{message}", channel = "{channel}"{flag} }}
        next = "end"

        [journeys.steps.end]
        end = true
    """


def two_sends(first: str, second: str, *, gap: str = "1h", messages=("m1", "m2")) -> str:
    """A journey that sends on ``first``, waits ``gap``, then sends on ``second``."""
    return f"""
        [[journeys]]
        id = "j"
        entry = {{ event = "go" }}
        start = "a"

        [journeys.steps.a]
        send = {{ message = "{messages[0]}", channel = "{first}" }}
        next = "pause"

        [journeys.steps.pause]
        wait = "{gap}"
        next = "b"

        [journeys.steps.b]
        send = {{ message = "{messages[1]}", channel = "{second}" }}
        next = "end"

        [journeys.steps.end]
        end = true
    """


def send_of(jid: str, step: str, channel: str, message: str, n: int = 1, entry: int = 1, **kw):
    return Send(C, jid, entry, step, channel, message, f"{C}:{jid}:{entry}:{step}:{n}", **kw)


# -- quiet hours ---------------------------------------------------------------------------------

IST = 5 * HOUR + 30 * 60  # UTC+05:30: T0 (10:00 UTC) is 15:30 local


def test_quiet_hours_defer_to_the_end_of_the_quiet_period_in_local_time():
    prog = program('quiet_hours = { start = "21:00", end = "08:00" }', one_send())
    clock = ManualClock(make_actor(prog, C, tz_offset=IST))
    at = T0 + 6 * HOUR  # 16:00 UTC = 21:30 local: quiet
    morning = T0 + 16 * HOUR + 30 * 60  # next day 08:00 local = 02:30 UTC
    assert clock.handle(Event("go"), at) == [
        Entered("j", 1, False),
        Advanced("j", "send"),
        Suppressed("j", "send", "email", "promo", "quiet_hours", morning),
        Schedule(morning, "j", 1, 0),
    ]
    assert clock.advance_to(morning - 1) == []
    assert clock.advance_to(morning) == [
        send_of("j", "send", "email", "promo"),
        Advanced("j", "end"),
        Exited("j", "end"),
    ]


def test_quiet_hours_do_not_apply_outside_the_local_quiet_period():
    prog = program('quiet_hours = { start = "21:00", end = "08:00" }', one_send())
    # 16:00 UTC is 21:30 in India but 11:00 in New York (UTC-5): not quiet there
    clock = ManualClock(make_actor(prog, C, tz_offset=-5 * HOUR))
    effects = clock.handle(Event("go"), T0 + 6 * HOUR)
    assert send_of("j", "send", "email", "promo") in effects


def test_quiet_hours_may_skip_when_the_scenario_says_so():
    prog = program(
        """
        quiet_hours = { start = "21:00", end = "08:00" }
        on_block = { quiet_hours = "skip" }
        """,
        one_send(),
    )
    clock = ManualClock(make_actor(prog, C, tz_offset=IST))
    effects = clock.handle(Event("go"), T0 + 6 * HOUR)
    assert Suppressed("j", "send", "email", "promo", "quiet_hours", None) in effects
    assert effects[-1] == Exited("j", "end")
    assert clock.run_until_idle() == []


# -- caps ----------------------------------------------------------------------------------------


def test_frequency_cap_skips_by_default():
    prog = program('caps = [{ max = 1, per = "24h" }]', two_sends("email", "sms"))
    clock = ManualClock(make_actor(prog))
    clock.handle(Event("go"), T0)
    assert clock.advance_to(T0 + HOUR) == [
        Advanced("j", "b"),
        Suppressed("j", "b", "sms", "m2", "frequency_cap", None),
        Advanced("j", "end"),
        Exited("j", "end"),
    ]
    assert [s.message for _, s in clock.sends()] == ["m1"]


def test_frequency_cap_defers_and_retries_when_a_slot_frees_up():
    prog = program(
        """
        caps = [{ max = 2, per = "24h" }]
        on_block = { frequency_cap = "defer" }
        """,
        one_send("first", entry="warmup", message="hello", channel="push"),
        two_sends("email", "sms"),
    )
    clock = ManualClock(make_actor(prog))
    clock.handle(Event("warmup"), T0 - 2 * HOUR)  # one slot of the two used 2h before
    clock.handle(Event("go"), T0)  # m1 takes the second slot
    slot_frees = T0 - 2 * HOUR + DAY  # the warm-up send leaves the rolling window
    assert clock.advance_to(T0 + HOUR) == [
        Advanced("j", "b"),
        Suppressed("j", "b", "sms", "m2", "frequency_cap", slot_frees),
        Schedule(slot_frees, "j", 2, 0),
    ]
    assert clock.advance_to(slot_frees - 1) == []
    assert clock.advance_to(slot_frees) == [
        send_of("j", "b", "sms", "m2", n=2),
        Advanced("j", "end"),
        Exited("j", "end"),
    ]


def test_channel_cap_counts_one_channel_only():
    prog = program(
        'caps = [{ max = 1, per = "7d", channel = "sms" }]', journey_text("channel_cap_sms_email_sms")
    )
    clock = ManualClock(make_actor(prog))
    clock.handle(Event("go"), T0)
    clock.run_until_idle()
    assert [(s.channel, s.message) for _, s in clock.sends()] == [("sms", "m1"), ("email", "m2")]
    assert clock.of_type(Suppressed) == [Suppressed("j", "c", "sms", "m3", "channel_cap", None)]


# -- cool-down after conversion -------------------------------------------------------------------


def test_after_conversion_cooldown_blocks_marketing_after_a_purchase():
    prog = program('after_conversion = "72h"', journey_text("promo_an_hour_after_entry"))
    clock = ManualClock(make_actor(prog))
    clock.handle(Event("go"), T0)
    clock.handle(Event("purchase", {"value": 10}), T0 + 30 * 60)
    assert clock.advance_to(T0 + HOUR) == [
        Advanced("j", "send"),
        Suppressed("j", "send", "email", "promo", "after_conversion", None),
        Advanced("j", "end"),
        Exited("j", "end"),
    ]
    assert clock.sends() == []


def test_after_conversion_cooldown_can_defer_until_it_is_over():
    prog = program(
        """
        after_conversion = "72h"
        on_block = { after_conversion = "defer" }
        """,
        journey_text("promo_an_hour_after_entry"),
    )
    clock = ManualClock(make_actor(prog))
    clock.handle(Event("go"), T0)
    bought = T0 + 30 * 60
    clock.handle(Event("purchase", {"value": 10}), bought)
    effects = clock.advance_to(T0 + HOUR)
    assert Suppressed("j", "send", "email", "promo", "after_conversion", bought + 3 * DAY) in effects
    clock.run_until_idle()
    assert clock.sends() == [(bought + 3 * DAY, send_of("j", "send", "email", "promo"))]


def test_without_a_purchase_the_cooldown_does_not_apply():
    prog = program('after_conversion = "72h"', journey_text("promo_an_hour_after_entry"))
    clock = ManualClock(make_actor(prog))
    clock.handle(Event("go"), T0)
    clock.run_until_idle()
    assert clock.sends() == [(T0 + HOUR, send_of("j", "send", "email", "promo"))]


# -- the same message on two channels -----------------------------------------------------------


def test_same_message_on_a_second_channel_within_the_window_is_suppressed():
    prog = program(
        'same_message_window = "24h"',
        one_send("by_email", message="promo", channel="email", priority=2),
        one_send("by_sms", message="promo", channel="sms", priority=1),
        one_send("other", message="news", channel="sms", priority=0),
    )
    clock = ManualClock(make_actor(prog))
    effects = clock.handle(Event("go"), T0)
    assert [e for e in effects if isinstance(e, Send)] == [
        send_of("by_email", "send", "email", "promo"),
        send_of("other", "send", "sms", "news"),
    ]
    assert [e for e in effects if isinstance(e, Suppressed)] == [
        Suppressed("by_sms", "send", "sms", "promo", "same_message", None),
    ]


def test_same_message_is_allowed_again_once_the_window_has_passed():
    prog = program(
        """
        same_message_window = "24h"
        on_block = { same_message = "defer" }
        """,
        one_send("a", entry="first", message="promo", channel="email"),
        one_send("b", entry="second", message="promo", channel="sms"),
    )
    clock = ManualClock(make_actor(prog))
    clock.handle(Event("first"), T0)
    effects = clock.handle(Event("second"), T0 + HOUR)
    assert Suppressed("b", "send", "sms", "promo", "same_message", T0 + DAY) in effects
    clock.run_until_idle()
    assert [(at, s.journey) for at, s in clock.sends()] == [(T0, "a"), (T0 + DAY, "b")]


# -- reachability and consent --------------------------------------------------------------------


def test_unreachable_is_always_skipped_even_where_other_rules_defer():
    prog = program(
        """
        quiet_hours = { start = "21:00", end = "08:00" }
        on_block = { quiet_hours = "defer", frequency_cap = "defer" }
        """,
        one_send(channel="sms"),
    )
    clock = ManualClock(make_actor(prog, channels=("email",)))
    effects = clock.handle(Event("go"), T0 + 12 * HOUR)  # 22:00 UTC: quiet too
    assert effects == [
        Entered("j", 1, False),
        Advanced("j", "send"),
        Suppressed("j", "send", "sms", "promo", "unreachable", None),
        Advanced("j", "end"),
        Exited("j", "end"),
    ]


def test_unsubscribed_channel_is_never_used_again():
    prog = program(
        "",
        one_send("a", entry="first", message="m1", channel="email"),
        one_send("b", entry="second", message="m2", channel="email"),
        one_send("c", entry="second", message="m3", channel="email", transactional=True),
    )
    clock = ManualClock(make_actor(prog))
    clock.handle(Event("first"), T0)
    clock.handle(DeliveryReceipt("a", 1, "email", "m1", "unsubscribed"), T0 + HOUR)
    effects = clock.handle(Event("second"), T0 + 2 * HOUR)
    assert [e for e in effects if isinstance(e, (Send, Suppressed))] == [
        Suppressed("b", "send", "email", "m2", "no_consent", None),
        Suppressed("c", "send", "email", "m3", "no_consent", None),  # even transactional
    ]


def test_regaining_one_channel_does_not_restore_consent_on_another():
    prog = program(
        "",
        one_send("a", entry="first", message="m1", channel="email"),
        one_send("b", entry="second", message="m2", channel="email"),
    )
    clock = ManualClock(make_actor(prog, channels=("email",)))
    clock.handle(Event("first"), T0)
    clock.handle(DeliveryReceipt("a", 1, "email", "m1", "unsubscribed"), T0 + HOUR)
    clock.handle(Identified(reachable={"sms": True}), T0 + 2 * HOUR)  # a new phone number
    effects = clock.handle(Event("second"), T0 + 3 * HOUR)
    assert Suppressed("b", "send", "email", "m2", "no_consent", None) in effects
    assert [s.journey for _, s in clock.sends()] == ["a"]


def test_a_repeated_address_does_not_resubscribe_only_explicit_consent_does():
    prog = program(
        "",
        one_send("a", entry="first", message="m1", channel="email"),
        one_send("b", entry="second", message="m2", channel="email"),
        one_send("c", entry="third", message="m3", channel="email"),
    )
    clock = ManualClock(make_actor(prog, channels=("email",)))
    clock.handle(Event("first"), T0)
    clock.handle(DeliveryReceipt("a", 1, "email", "m1", "unsubscribed"), T0 + HOUR)
    clock.handle(Identified(reachable={"email": True}), T0 + 2 * HOUR)  # a routine identify
    effects = clock.handle(Event("second"), T0 + 3 * HOUR)
    assert Suppressed("b", "send", "email", "m2", "no_consent", None) in effects
    clock.handle(Identified(consent={"email": True}), T0 + 4 * HOUR)  # an explicit opt-in
    clock.handle(Event("third"), T0 + 5 * HOUR)
    assert [s.journey for _, s in clock.sends()] == ["a", "c"]


def test_a_bounce_makes_the_channel_unreachable():
    prog = program(
        "",
        one_send("a", entry="first", message="m1", channel="email"),
        one_send("b", entry="second", message="m2", channel="email"),
    )
    clock = ManualClock(make_actor(prog))
    clock.handle(Event("first"), T0)
    clock.handle(DeliveryReceipt("a", 1, "email", "m1", "bounced"), T0 + HOUR)
    effects = clock.handle(Event("second"), T0 + 2 * HOUR)
    assert Suppressed("b", "send", "email", "m2", "unreachable", None) in effects


# -- transactional -------------------------------------------------------------------------------


def test_transactional_sends_are_exempt_from_caps_quiet_hours_and_cooldown():
    prog = program(
        """
        caps = [{ max = 1, per = "24h" }, { max = 1, per = "24h", channel = "email" }]
        quiet_hours = { start = "21:00", end = "08:00" }
        after_conversion = "72h"
        same_message_window = "24h"
        """,
        one_send("promo", entry="go", message="receipt", channel="email"),
        one_send("receipt", entry="purchase", message="receipt", channel="email",
                 transactional=True),
    )
    clock = ManualClock(make_actor(prog))
    clock.handle(Event("go"), T0)  # the marketing send fills both caps
    late = T0 + 12 * HOUR  # 22:00 UTC: quiet hours, caps full, just bought, same message
    effects = clock.handle(Event("purchase", {"value": 5}), late)
    assert send_of("receipt", "send", "email", "receipt", transactional=True) in effects
    assert not [e for e in effects if isinstance(e, Suppressed)]


def test_transactional_sends_do_not_use_up_the_marketing_budget():
    prog = program(
        'caps = [{ max = 1, per = "24h" }]',
        one_send("receipt", entry="purchase", message="receipt", transactional=True),
        one_send("promo", entry="go", message="promo"),
    )
    clock = ManualClock(make_actor(prog))
    clock.handle(Event("purchase"), T0)
    effects = clock.handle(Event("go"), T0 + HOUR)
    assert send_of("promo", "send", "email", "promo") in effects


# -- journey priority ----------------------------------------------------------------------------


def test_priority_decides_who_gets_the_last_slot_on_the_same_event():
    # the low-priority journey comes first in the file: priority, not file order, decides
    prog = program(
        'caps = [{ max = 1, per = "24h" }]',
        one_send("low", message="low_msg", priority=1),
        one_send("high", message="high_msg", priority=9),
    )
    clock = ManualClock(make_actor(prog))
    effects = clock.handle(Event("go"), T0)
    assert [e for e in effects if isinstance(e, (Send, Suppressed))] == [
        send_of("high", "send", "email", "high_msg"),
        Suppressed("low", "send", "email", "low_msg", "frequency_cap", None),
    ]


def test_priority_breaks_ties_between_timers_due_at_the_same_time():
    def delayed(jid: str, priority: int) -> str:
        return f"""
            [[journeys]]
            id = "{jid}"
            entry = {{ event = "go" }}
            priority = {priority}
            start = "pause"
            [journeys.steps.pause]
            wait = "1h"
            next = "send"
            [journeys.steps.send]
            send = {{ message = "{jid}_msg", channel = "push" }}
            next = "end"
            [journeys.steps.end]
            end = true
        """

    prog = program('caps = [{ max = 1, per = "24h" }]', delayed("low", 1), delayed("high", 9))
    clock = ManualClock(make_actor(prog))
    schedules = [e for e in clock.handle(Event("go"), T0) if isinstance(e, Schedule)]
    assert schedules == [Schedule(T0 + HOUR, "high", 1, 9), Schedule(T0 + HOUR, "low", 1, 1)]
    clock.run_until_idle()
    assert [s.journey for _, s in clock.sends()] == ["high"]
    assert clock.of_type(Suppressed) == [
        Suppressed("low", "send", "push", "low_msg", "frequency_cap", None)
    ]


# -- channel choice ------------------------------------------------------------------------------

BEST = journey_text("best_channel_push_or_email")


def _engage(clock: ManualClock, channel: str, times: int, clicked: bool, at: float) -> None:
    for _ in range(times):
        clock.handle(DeliveryReceipt("old", 1, channel, "old", "delivered"), at)
        if clicked:
            clock.handle(DeliveryReceipt("old", 1, channel, "old", "clicked"), at)


def test_best_channel_for_a_new_customer_follows_the_priors():
    clock = ManualClock(make_actor(program("", BEST)))
    effects = clock.handle(Event("go"), T0)
    assert send_of("j", "send", "push", "promo") in effects


def test_best_channel_follows_observed_engagement():
    clock = ManualClock(make_actor(program("", BEST)))
    _engage(clock, "email", 3, clicked=True, at=T0 - DAY)
    _engage(clock, "push", 3, clicked=False, at=T0 - DAY)
    effects = clock.handle(Event("go"), T0)
    assert send_of("j", "send", "email", "promo") in effects


def test_best_channel_skips_unreachable_candidates():
    clock = ManualClock(make_actor(program("", BEST), channels=("email",)))
    effects = clock.handle(Event("go"), T0)
    assert send_of("j", "send", "email", "promo") in effects
    assert not [e for e in effects if isinstance(e, Suppressed)]


def test_best_channel_reports_the_rule_of_a_reachable_candidate():
    prog = program('quiet_hours = { start = "21:00", end = "08:00" }', BEST)
    clock = ManualClock(make_actor(prog, channels=("email",)))
    night = T0 + 12 * HOUR  # 22:00 UTC
    morning = T0 + 22 * HOUR  # 08:00 UTC next day
    effects = clock.handle(Event("go"), night)
    assert Suppressed("j", "send", "email", "promo", "quiet_hours", morning) in effects
    clock.run_until_idle()
    assert clock.sends() == [(morning, send_of("j", "send", "email", "promo"))]


def test_best_channel_with_no_reachable_candidate_is_unreachable():
    clock = ManualClock(make_actor(program("", BEST), channels=("sms",)))
    effects = clock.handle(Event("go"), T0)
    assert Suppressed("j", "send", "push", "promo", "unreachable", None) in effects
    assert clock.sends() == []


# -- wait, wait_for ------------------------------------------------------------------------------


def test_wait_until_a_local_time_of_day():
    prog = program("", journey_text("wait_until_nine_local"))
    clock = ManualClock(make_actor(prog, tz_offset=IST))
    # T0 is 15:30 local: the next 09:00 local is tomorrow, 03:30 UTC
    effects = clock.handle(Event("go"), T0)
    assert effects[-1] == Schedule(T0 + 17 * HOUR + 30 * 60, "j", 1, 0)
    clock.run_until_idle()
    # 07:00 local (01:30 UTC): 09:00 local is the same day, two hours later
    other = ManualClock(make_actor(prog, "c-2", tz_offset=IST))
    early = T0 + 15 * HOUR  # 01:00 UTC next day = 06:30 local
    assert other.handle(Event("go"), early)[-1] == Schedule(early + 2.5 * HOUR, "j", 1, 0)


WAIT_FOR_BIG_CART = journey_text("wait_for_a_big_cart")


def test_wait_for_an_event_that_matches_the_filter():
    clock = ManualClock(make_actor(program("", WAIT_FOR_BIG_CART)))
    clock.handle(Event("visit"), T0)
    assert clock.handle(Event("cart_add", {"value": 99}), T0 + 60) == []
    assert clock.handle(Event("cart_add", {"value": 150}), T0 + 120) == [
        Cancel("j", 1),
        Advanced("j", "big"),
        Exited("j", "end"),
    ]
    assert clock.run_until_idle() == []


def test_wait_for_times_out_when_nothing_matches():
    clock = ManualClock(make_actor(program("", WAIT_FOR_BIG_CART)))
    clock.handle(Event("visit"), T0)
    clock.handle(Event("cart_add", {"value": 5}), T0 + 60)
    assert clock.advance_to(T0 + 2 * HOUR) == [Advanced("j", "small"), Exited("j", "end")]


# -- branch, split, update, escalate -------------------------------------------------------------

BRANCHY = journey_text("branch_on_event_profile_engagement_traits")


def _route(prepare, props=None) -> str:
    clock = ManualClock(make_actor(program("", BRANCHY)))
    prepare(clock)
    effects = clock.handle(Event("go", props or {}), T0)
    steps = [e.step for e in effects if isinstance(e, Advanced)]
    assert steps[0] == "route"
    return steps[1]


def test_branch_on_event_profile_engagement_and_traits():
    def nothing(clock):
        pass

    def buy_twice(clock):
        clock.handle(Event("purchase", {"value": 1}), T0 - 2 * DAY)
        clock.handle(Event("purchase", {"value": 1}), T0 - DAY)

    def click_email(clock):
        _engage(clock, "email", 1, clicked=True, at=T0 - DAY)

    def gold(clock):
        clock.handle(Identified(traits={"tier": "gold"}), T0 - DAY)

    assert _route(nothing, {"value": 101}) == "big_cart"
    assert _route(nothing, {"value": 100}) == "other"
    assert _route(buy_twice) == "loyal"
    assert _route(click_email) == "engaged"
    assert _route(gold) == "gold"
    assert _route(nothing) == "other"


SPLIT = journey_text("split_one_to_three")

ARM_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from harness import T0, journey_program, make_actor
from actors.messages import Advanced, Event
prog = journey_program("split_one_to_three")
for i in range(40):
    effects = make_actor(prog, f"cust-{{i}}").handle(Event("go"), T0)
    print([e.step for e in effects if isinstance(e, Advanced)][1], end=" ")
"""


def _arm(prog, customer: str) -> str:
    effects = make_actor(prog, customer).handle(Event("go"), T0)
    return [e.step for e in effects if isinstance(e, Advanced)][1]


def test_split_is_deterministic_and_pinned():
    prog = program("", SPLIT)
    assert [_arm(prog, f"cust-{i}") for i in range(1, 9)] == [
        "b", "b", "b", "a", "b", "a", "b", "b"
    ]
    assert _arm(prog, "cust-4") == _arm(prog, "cust-4")


def test_split_is_stable_across_processes_with_different_hash_seeds():
    here = os.path.dirname(__file__)
    script = ARM_SCRIPT.format(tests=here)
    outputs = set()
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        done = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        outputs.add(done.stdout)
    prog = program("", SPLIT)
    here_arms = " ".join(_arm(prog, f"cust-{i}") for i in range(40)) + " "
    assert outputs == {here_arms}


def test_split_follows_the_weights_over_many_customers():
    prog = program("", SPLIT)
    arms = [_arm(prog, f"customer-{i:05d}") for i in range(4000)]
    share_a = arms.count("a") / len(arms)
    assert 0.22 < share_a < 0.28  # weight 1 of 4; 4000 draws give a standard error of 0.007


def test_update_sets_traits_that_later_steps_can_read():
    prog = program("", journey_text("update_traits_then_branch"))
    actor = make_actor(prog)
    actor.handle(Identified(traits={"name": "Ada", "tier": "silver"}), T0 - 1)
    effects = actor.handle(Event("go"), T0)
    assert [e.step for e in effects if isinstance(e, Advanced)] == ["tag", "route", "gold"]
    assert actor.profile.traits == {"name": "Ada", "tier": "gold", "score": 3}


def test_escalate_hands_over_the_timeline_the_step_and_the_event_that_started_the_journey():
    prog = program("", journey_text("escalate_after_an_email"))
    clock = ManualClock(make_actor(prog))
    clock.handle(Event("page_view"), T0 - 2 * HOUR)  # browsing noise stays off the timeline
    clock.handle(Event("purchase", {"value": 30}), T0 - HOUR)
    effects = clock.handle(Event("complaint", {"order": "A-17"}), T0)
    assert clock.of_type(Escalated) == [
        Escalated(
            C,
            "j",
            "care",
            (
                (T0 - HOUR, "event", "", "purchase"),
                (T0, "event", "", "complaint"),
                (T0, "sent", "email", "sorry"),
                (T0, "escalated", "agent", "care"),
            ),
            "handoff",
            "complaint",
            {"order": "A-17"},  # (kept for an agent, though no branch of the journey reads it)
        )
    ]
    assert effects[-1] == Exited("j", "end")


# -- in-app, re-entry, exit ----------------------------------------------------------------------


def test_in_app_send_waits_for_the_next_session():
    prog = program(
        'quiet_hours = { start = "21:00", end = "08:00" }', one_send(channel="in_app")
    )
    clock = ManualClock(make_actor(prog))
    night = T0 + 12 * HOUR  # quiet hours do not apply in-app
    effects = clock.handle(Event("go"), night)
    assert not [e for e in effects if isinstance(e, (Send, Suppressed))]
    assert clock.handle(Event("page_view"), night + HOUR) == []
    assert clock.handle(Event("session_start"), night + 2 * HOUR) == [
        send_of("j", "send", "in_app", "promo")
    ]
    assert clock.handle(Event("session_start"), night + 3 * HOUR) == []


def test_in_app_send_is_dropped_if_consent_is_withdrawn_before_the_session():
    prog = program("", one_send(channel="in_app"))
    clock = ManualClock(make_actor(prog))
    clock.handle(Event("go"), T0)
    clock.handle(DeliveryReceipt("j", 1, "in_app", "promo", "unsubscribed"), T0 + HOUR)
    assert clock.handle(Event("session_start"), T0 + 2 * HOUR) == []
    assert clock.handle(Event("session_start"), T0 + 3 * HOUR) == []


REENTER = one_send(extra='reentry = "2d"')


def test_reentry_window_is_respected():
    clock = ManualClock(make_actor(program("", REENTER)))
    assert clock.handle(Event("go"), T0)[0] == Entered("j", 1, False)
    assert clock.handle(Event("go"), T0 + 2 * DAY - 1) == []
    again = clock.handle(Event("go"), T0 + 2 * DAY)
    assert again[0] == Entered("j", 2, False, ("email",))  # (the first entry's email converted nothing)
    assert send_of("j", "send", "email", "promo", entry=2) in again


def test_without_reentry_a_customer_enters_once():
    clock = ManualClock(make_actor(program("", one_send())))
    assert clock.handle(Event("go"), T0)[0] == Entered("j", 1, False)
    assert clock.handle(Event("go"), T0 + 300 * DAY) == []


def test_an_active_run_is_not_entered_twice():
    prog = program(
        "",
        journey_text("promo_an_hour_after_entry").replace(
            'entry = { event = "go" }', 'entry = { event = "go" }\nreentry = "1s"'
        ),
    )
    clock = ManualClock(make_actor(prog))
    clock.handle(Event("go"), T0)
    assert clock.handle(Event("go"), T0 + 60) == []  # still waiting in the first entry
    clock.run_until_idle()
    assert len(clock.sends()) == 1


def test_exit_events_cancel_the_run():
    prog = program(
        "",
        journey_text("promo_an_hour_after_entry").replace(
            'entry = { event = "go" }', 'entry = { event = "go" }\nexit = { events = ["opt_out"] }'
        ),
    )
    clock = ManualClock(make_actor(prog))
    clock.handle(Event("go"), T0)
    assert clock.handle(Event("opt_out"), T0 + 60) == [Cancel("j", 1), Exited("j", "opt_out")]
    assert clock.run_until_idle() == []
    assert clock.sends() == []


def test_goal_is_reported_even_after_the_journey_ended():
    clock = ManualClock(make_actor(program("", one_send())))
    clock.handle(Event("go"), T0)
    assert clock.handle(Event("purchase", {"value": 12.5}), T0 + DAY) == [
        # its steps, its path, and its touches: the send, when, its message and journey
        Converted("j", 1, False, 12.5, DAY, ("send", "end"), ("email",),
                  ((T0, "sent", "email", "promo", "j"),))
    ]
    assert clock.handle(Event("purchase", {"value": 12.5}), T0 + 2 * DAY) == []  # once per entry


@pytest.mark.parametrize("status", ["delivered", "opened", "clicked"])
def test_receipts_resume_a_wait_for_on_message_status(status):
    prog = program(
        "",
        f"""
        [[journeys]]
        id = "j"
        entry = {{ event = "go" }}
        start = "mail"
        [journeys.steps.mail]
        send = {{ message = "m", channel = "email" }}
        next = "watch"
        [journeys.steps.watch]
        wait_for = {{ event = "message_{status}", timeout = "1d" }}
        on_event = "yes"
        on_timeout = "no"
        [journeys.steps.yes]
        end = true
        [journeys.steps.no]
        end = true
        """,
    )
    clock = ManualClock(make_actor(prog))
    clock.handle(Event("go"), T0)
    # a receipt for an older entry of the journey does not count
    assert clock.handle(DeliveryReceipt("j", 0, "email", "m", status), T0 + 1) == []
    assert clock.handle(DeliveryReceipt("j", 1, "email", "m", status), T0 + 2) == [
        Cancel("j", 1),
        Advanced("j", "yes"),
        Exited("j", "end"),
    ]


def test_a_deferral_onto_the_present_instant_still_moves_time_forward():
    # at + 1 day rounds to at or before `now` although `at` is still inside the window ending now:
    # a retry "when the slot frees up" would then be now, again and again
    at, now = 1033381.2602311192, 1119781.260231119
    assert at > now - DAY and at + DAY <= now
    prog = program(
        """
        caps = [{ max = 1, per = "1d" }]
        on_block = { frequency_cap = "defer" }
        """,
        one_send("a", entry="first", message="m1"),
        one_send("b", entry="second", message="m2"),
    )
    clock = ManualClock(make_actor(prog), at)
    clock.handle(Event("first"), at)
    clock.handle(Event("second"), now)
    clock.advance_to(now + 1.0)
    assert [s.journey for _, s in clock.sends()] == ["a", "b"]
    retries = [e for _, e in clock.trace if isinstance(e, Suppressed) and e.journey == "b"]
    assert 1 <= len(retries) < 5 and all(e.deferred_until > now for e in retries)


def test_a_busy_timeline_still_remembers_the_sends_a_cap_counts():
    # the timeline keeps 8 interactions, but never forgets a marketing send inside the horizon
    prog = program(
        'caps = [{ max = 2, per = "7d" }]',
        one_send("a", entry="first", message="m1"),
        one_send("b", entry="second", message="m2"),
        one_send("c", entry="third", message="m3"),
    )
    clock = ManualClock(make_actor(prog))
    clock.handle(Event("first"), T0)
    clock.handle(Event("second"), T0 + HOUR)
    for i in range(30):  # a flood of interactions pushes everything else off the timeline
        clock.handle(Event("wishlist_add", {"n": i}), T0 + 2 * HOUR + i)
    effects = clock.handle(Event("third"), T0 + DAY)
    assert Suppressed("c", "send", "email", "m3", "frequency_cap", None) in effects
    timeline = clock.actor.profile.timeline()
    assert len(timeline) == 8  # the limit holds: the two sends kept their slots
    assert [entry[1] for entry in timeline[:2]] == ["sent", "sent"]
    assert [entry[3] for entry in timeline[2:]] == ["wishlist_add"] * 4 + ["third", "m3:frequency_cap"]
    assert timeline[-1][1:3] == ("suppressed", "email")  # the profile shows why nothing was sent
    clock.handle(Event("wishlist_add"), T0 + 8 * DAY)  # the window has passed: sends may go
    timeline = clock.actor.profile.timeline()
    assert len(timeline) == 8 and [entry[1] for entry in timeline[:2]] == ["sent", "event"]


def test_a_send_on_the_agent_channel_is_queued_for_agents_with_the_timeline():
    prog = program("", one_send("call", entry="go", message="sales_call", channel="agent"))
    clock = ManualClock(make_actor(prog))
    effects = clock.handle(Event("go"), T0)
    assert clock.sends() == []
    assert clock.of_type(Escalated) == [
        Escalated(C, "call", "agent", ((T0, "event", "", "go"), (T0, "sent", "agent", "sales_call")),
                  "send", "go")
    ]
    assert effects[-1] == Exited("call", "end")


def test_a_conversions_touches_are_its_sends_and_the_opens_and_clicks_on_them_with_time_and_journey():
    clock = ManualClock(make_actor(program("", one_send())))
    clock.handle(Event("go"), T0)
    clock.handle(DeliveryReceipt("j", 1, "email", "promo", "delivered"), T0 + 60)  # (routine: no touch)
    clock.handle(DeliveryReceipt("j", 1, "email", "promo", "opened"), T0 + 600)
    clock.handle(DeliveryReceipt("j", 1, "email", "promo", "clicked"), T0 + 660)
    converted = clock.handle(Event("purchase", {"value": 5.0}), T0 + 900)[0]
    assert isinstance(converted, Converted) and converted.path == ("email",)  # (the path: sends only)
    assert converted.touches == ((T0, "sent", "email", "promo", "j"),
                                 (T0 + 600, "opened", "email", "promo", "j"),
                                 (T0 + 660, "clicked", "email", "promo", "j"))
