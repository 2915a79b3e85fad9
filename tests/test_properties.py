"""Invariants under any message script (hypothesis).

(a) No send ever breaks a policy. Every ``Send`` is re-checked here against the rules, written
    out again independently of ``actors.policy`` from the messages the actor was given: rolling
    caps across channels and per channel, quiet hours in the customer's local time, the
    same-message window, the cool-down after a purchase, reachability and consent. The actor's
    own ``check_invariants()`` runs after every message (in the harness).
(b) A snapshot restores the very same actor: ``decode(encode(actor)) == actor`` after every
    message, and the restored actor answers the rest of the script exactly as the original does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness import (
    DAY,
    HOUR,
    PROGRAM_WITH_IN_APP,
    SCRIPT_CHANNELS,
    SCRIPT_JOURNEYS,
    SCRIPT_MESSAGES,
    T0,
    ManualClock,
    customers,
    reaches,
    run_script,
    scripts,
    tz_offsets,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.codec import decode, encode
from actors.messages import (
    DeliveryReceipt,
    Event,
    Identified,
    Message,
    Send,
    Suppressed,
)

# the policy of tests/journeys/every_rule_and_step.toml, restated for the checker
CAPS = ((2, DAY, None), (1, 12 * HOUR, "sms"))
QUIET_START, QUIET_END = 21 * HOUR, 8 * HOUR
COOLDOWN = 3 * DAY
SAME_MESSAGE = DAY


# -- the scripts -----------------------------------------------------------------------------------

# (``scripts`` of any messages, and the rest, are in harness.py)
# channels coming and going: denser in what reachability and consent depend on
churn = st.one_of(
    st.sampled_from([Event("signup"), Event("session_start"), Event("cart_add", {"value": 150})]),
    st.builds(
        DeliveryReceipt,
        st.sampled_from(SCRIPT_JOURNEYS),
        st.integers(0, 2),
        st.sampled_from(SCRIPT_CHANNELS),
        st.sampled_from(SCRIPT_MESSAGES),
        st.sampled_from(("unsubscribed", "bounced", "clicked")),
    ),
    st.builds(
        Identified,
        st.just({}),
        st.dictionaries(st.sampled_from(SCRIPT_CHANNELS), st.booleans(), min_size=1, max_size=3),
        st.dictionaries(st.sampled_from(SCRIPT_CHANNELS), st.booleans(), max_size=2),
    ),
)
churn_scripts = st.lists(
    st.tuples(st.sampled_from([0.0, 60.0, HOUR, 13 * HOUR, DAY]), churn), min_size=3, max_size=25
)


# -- (a) the policy, restated --------------------------------------------------------------------


@dataclass
class CustomerModel:
    """What the rules need to know about a customer, kept from the messages alone."""

    tz: float
    reachable: set[str]
    unsubscribed: set[str] = field(default_factory=set)
    last_purchase: float | None = None
    marketing: list[tuple[float, str, str]] = field(default_factory=list)

    def observe(self, message: Message, at: float) -> None:
        if isinstance(message, Event) and message.name == "purchase":
            self.last_purchase = at
        elif isinstance(message, DeliveryReceipt):
            if message.status == "bounced":
                self.reachable.discard(message.channel)
            elif message.status == "unsubscribed":
                self.unsubscribed.add(message.channel)
        elif isinstance(message, Identified):
            for channel, reachable in message.reachable.items():
                if reachable:
                    self.reachable.add(channel)
                else:
                    self.reachable.discard(channel)
            for channel, granted in message.consent.items():
                if granted:  # only an explicit opt-in re-subscribes
                    self.unsubscribed.discard(channel)
                else:
                    self.unsubscribed.add(channel)

    def violations(self, send: Send, at: float) -> list[str]:
        found = []
        if send.channel not in self.reachable:
            found.append("unreachable")
        if send.channel in self.unsubscribed:
            found.append("no_consent")
        if send.transactional:
            return found
        if self.last_purchase is not None and at < self.last_purchase + COOLDOWN:
            found.append("after_conversion")
        local = (at + self.tz) % DAY
        if local >= QUIET_START or local < QUIET_END:
            found.append("quiet_hours")
        if any(t > at - SAME_MESSAGE and m == send.message for t, _, m in self.marketing):
            found.append("same_message")
        for limit, per, channel in CAPS:
            if channel not in (None, send.channel):
                continue  # a channel cap binds its own channel only
            recent = [t for t, ch, _ in self.marketing if t > at - per and channel in (None, ch)]
            if len(recent) >= limit:
                found.append(f"cap {limit}/{per:.0f}s {channel or 'all channels'}")
        return found

    def sent(self, send: Send, at: float) -> None:
        if not send.transactional:
            self.marketing.append((at, send.channel, send.message))


def policy_violations(clock: ManualClock, tz: float, reach: list[str]) -> list[str]:
    model = CustomerModel(tz, set(reach))
    problems = []
    for at, message, effects in clock.log:
        model.observe(message, at)
        for effect in effects:
            if isinstance(effect, Send):
                problems += [f"{effect} at {at}: {rule}" for rule in model.violations(effect, at)]
                model.sent(effect, at)
    return problems


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(customers, tz_offsets, reaches, scripts)
def test_no_send_ever_breaks_a_policy(customer, tz, reach, script):
    clock = run_script(customer, tz, reach, script)
    clock.advance_by(10 * DAY)  # deferred sends and timers still pending go out too
    assert policy_violations(clock, tz, reach) == []


@settings(max_examples=300, deadline=None)
@given(customers, tz_offsets, reaches, churn_scripts)
def test_no_send_breaks_reachability_or_consent_while_channels_churn(customer, tz, reach, script):
    clock = run_script(customer, tz, reach, script)
    clock.advance_by(3 * DAY)
    assert policy_violations(clock, tz, reach) == []


def test_the_policy_checker_catches_a_violation():
    # the checker itself must be able to fail: a send during quiet hours, over the caps
    model = CustomerModel(0.0, {"email"})
    send = Send("c", "j", 1, "s", "email", "promo", "k")
    model.sent(send, T0 - 60)
    model.sent(Send("c", "j", 1, "s", "email", "other", "k2"), T0 - 30)
    assert model.violations(send, T0 + 12 * HOUR) == [
        "quiet_hours",
        "same_message",
        "cap 2/86400s all channels",
    ]


def test_scripts_do_exercise_the_rules():
    # a script known to hit several rules: the property above is not vacuous
    script = [
        (0.0, Event("signup")),
        (0.0, Event("session_start")),
        (0.0, Event("cart_add", {"value": 150})),
        (12 * HOUR, Event("purchase", {"value": 150})),
    ]
    clock = run_script("cust-1", 0.0, list(SCRIPT_CHANNELS), script)
    clock.advance_by(10 * DAY)
    rules = {e.rule for e in clock.of_type(Suppressed)}
    assert {"frequency_cap", "same_message", "after_conversion"} <= rules
    assert any(s.transactional for _, s in clock.sends())
    assert policy_violations(clock, 0.0, list(SCRIPT_CHANNELS)) == []


# -- (b) snapshot and restore --------------------------------------------------------------------


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(customers, tz_offsets, reaches, scripts, scripts)
def test_snapshot_restore_is_the_identity(customer, tz, reach, before, after):
    clock = run_script(customer, tz, reach, before, program=PROGRAM_WITH_IN_APP)
    restored = decode(encode(clock.actor), PROGRAM_WITH_IN_APP)
    assert restored == clock.actor
    assert encode(restored) == encode(clock.actor)

    twin = clock.fork(restored)
    mark = len(clock.trace)
    at = clock.now
    for gap, message in after:
        at += gap
        assert twin.handle(message, at) == clock.handle(message, at)
        assert decode(encode(clock.actor), PROGRAM_WITH_IN_APP) == clock.actor
    twin.advance_by(10 * DAY)
    clock.advance_by(10 * DAY)
    assert twin.trace == clock.trace[mark:]
    assert twin.actor == clock.actor


def test_restore_equality_sees_a_difference():
    # the equality the property relies on is not trivially true
    script = [(0.0, Event("signup")), (0.0, Event("page_view"))]
    clock = run_script("cust-1", 0.0, ["email"], script, program=PROGRAM_WITH_IN_APP)
    assert clock.actor.in_app  # a queued in-app send is part of the state
    restored = decode(encode(clock.actor), PROGRAM_WITH_IN_APP)
    assert restored == clock.actor
    restored.handle(Event("session_start"), T0 + 1)  # shows the banner: in_app empties
    assert restored != clock.actor
    clock.handle(Event("session_start"), T0 + 1)
    assert restored == clock.actor
    restored.handle(Event("purchase", {"value": 1}), T0 + 2)
    assert restored != clock.actor

