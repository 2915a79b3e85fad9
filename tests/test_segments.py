"""Live segments in the core: membership kept as events arrive and as time passes, said as
``entered:``/``left:`` events that journeys use; and, whatever the events, the membership the
actor keeps equals the one recomputed from the whole history."""

from __future__ import annotations

import heapq

import pytest
from harness import DAY, HOUR, T0, ManualClock, compile_toml, make_actor
from hypothesis import given, settings
from hypothesis import strategies as st

from actors import Actor, ScenarioError, compile_scenario
from actors.codec import actor_from, decode, encode, encode_chunk, read_chunk, to_chunk
from actors.messages import (
    DeliveryReceipt,
    Event,
    Exited,
    Identified,
    Schedule,
    Scored,
    Segmented,
    Send,
    TimerFired,
)
from actors.scores import SCORE_NAMES
from actors.segments import SESSION_GAP

SEGMENTS = """
[segments.cart_open]
description = "added to a cart in the last 3 days and bought nothing since"
behaviour = [{ event = "cart_add", within = "3d", without = "purchase" }]

[segments.category_twice]
behaviour = [{ event = "product_viewed", count = 2, same = "category", within = "session" }]

[segments.loan_shopper]
behaviour = [{ event = "loan_compared", sessions = 3, within = "30d", without = "loan_applied" }]

[segments.recent_buyer]
behaviour = [{ event = "purchase", within = "72h" }]

[segments.likely_buyer]
where = [{ field = "scores.likelihood", op = ">", value = 0.4 }]
"""

JOURNEY = """
[[journeys]]
id = "cart_rescue"
entry = { event = "entered:cart_open" }
exit = { events = ["left:cart_open"] }
start = "wait"
[journeys.steps.wait]
wait = "1h"
next = "push"
[journeys.steps.push]
send = { message = "cart_reminder", channel = "push" }
next = "end"
[journeys.steps.end]
end = true
"""


def program(extra: str = ""):
    return compile_toml(SEGMENTS + JOURNEY + extra)


def changes(effects) -> list[tuple[str, bool]]:
    return [(e.segment, e.entered) for e in effects if isinstance(e, Segmented)]


def scored(likelihood: float, at: float) -> Scored:
    values = [0.0] * len(SCORE_NAMES)
    values[SCORE_NAMES.index("likelihood")] = likelihood
    return Scored(tuple(values), at)


def test_a_purchase_takes_the_customer_out_of_the_cart_segment_and_its_journey_at_once():
    clock = ManualClock(make_actor(program(), "ada"))
    entered = clock.handle(Event("cart_add", {"value": 40}), T0)
    assert ("cart_open", True) in changes(entered)
    assert any(isinstance(e, Schedule) and e.journey == "cart_rescue" for e in entered)

    left = clock.handle(Event("purchase", {"value": 40}), T0 + 30 * 60)

    assert ("cart_open", False) in changes(left) and ("recent_buyer", True) in changes(left)
    assert Exited("cart_rescue", "left:cart_open") in left
    clock.advance_to(T0 + 2 * HOUR)
    assert not [e for _, e in clock.trace if isinstance(e, Send)]  # the reminder never goes


def test_time_alone_moves_a_customer_out_when_a_window_lets_the_event_go():
    clock = ManualClock(make_actor(program(), "bo"))
    clock.handle(Event("purchase", {"value": 10}), T0)
    assert clock.actor.segments is not None and clock.actor.segments.members
    clock.advance_to(T0 + 72 * HOUR - 1)
    assert ("recent_buyer", False) not in [(e.segment, e.entered) for _, e in clock.trace
                                            if isinstance(e, Segmented)]
    clock.advance_to(T0 + 72 * HOUR)
    assert [(at, e) for at, e in clock.trace if isinstance(e, Segmented)][-1] == (
        T0 + 72 * HOUR, Segmented("recent_buyer", False))


def test_the_same_category_twice_in_one_session_and_the_session_ending():
    actor = make_actor(program(), "cy")
    actor.handle(Event("session_start"), T0)
    assert changes(actor.handle(Event("product_viewed", {"category": "shoes"}), T0 + 60)) == []
    assert changes(actor.handle(Event("product_viewed", {"category": "hats"}), T0 + 120)) == []
    assert changes(actor.handle(Event("product_viewed", {"category": "shoes"}), T0 + 180)) == [
        ("category_twice", True)]
    assert changes(actor.handle(Event("session_start"), T0 + HOUR)) == [("category_twice", False)]


def test_three_sessions_of_comparing_loans_without_applying():
    actor = make_actor(program(), "di")
    said = []
    for day in range(3):
        actor.handle(Event("session_start"), T0 + day * DAY)
        for minute in (1, 2):  # twice in a session counts as one session
            said.append(changes(actor.handle(Event("loan_compared"), T0 + day * DAY + minute * 60)))
    assert said == [[], [], [], [], [("loan_shopper", True)], []]
    assert changes(actor.handle(Event("loan_applied"), T0 + 3 * DAY)) == [("loan_shopper", False)]


def test_scores_move_a_customer_in_and_out_and_branches_read_membership():
    extra = """
[[journeys]]
id = "likely"
entry = { event = "entered:likely_buyer" }
start = "check"
[journeys.steps.check]
branch = [{ if = [{ field = "segment.likely_buyer", value = true }], next = "offer" }]
else = "end"
[journeys.steps.offer]
send = { message = "offer", channel = "email" }
next = "end"
[journeys.steps.end]
end = true
"""
    actor = make_actor(program(extra), "ed", channels=("email",))
    effects = actor.handle(scored(0.6, T0), T0)
    assert ("likely_buyer", True) in changes(effects)
    assert [e.message for e in effects if isinstance(e, Send)] == ["offer"]
    assert changes(actor.handle(scored(0.2, T0 + DAY), T0 + DAY)) == [("likely_buyer", False)]


def test_segment_state_and_its_timer_survive_a_snapshot():
    prog = program()
    actor = make_actor(prog, "fa")
    actor.handle(Event("session_start"), T0)
    actor.handle(Event("cart_add", {"value": 5}), T0 + 1)
    actor.handle(Event("product_viewed", {"category": "x"}), T0 + 2)
    actor.handle(scored(0.9, T0 + 3), T0 + 3)
    back = decode(encode(actor), prog)
    assert back == actor
    assert [t for t in back.live_timers() if t.journey == ":segments"] == [
        t for t in actor.live_timers() if t.journey == ":segments"] != []
    # format 8 had no table of segments: read as the restoring program's own, position by position
    chunk = read_chunk(encode_chunk((8, *to_chunk([actor])[1:-1])), prog)
    assert actor_from(chunk, "fa", chunk.records[0]) == actor


def test_a_restored_state_follows_its_segments_and_windows_by_id_when_the_scenario_changed():
    actor = make_actor(program(), "fb")
    actor.handle(Event("session_start"), T0)
    actor.handle(Event("cart_add", {"value": 5}), T0 + 1)
    actor.handle(Event("loan_compared"), T0 + 2)
    assert members_of(actor) == {"cart_open"}
    # the same segments in another order, a new one first, one gone, one window changed in kind
    changed = compile_toml(
        '[segments.fresh]\nbehaviour = [{ event = "loan_applied", within = "1d" }]\n'
        + "\n".join(SEGMENTS.split("\n\n")[::-1]).replace('event = "purchase", within = "72h"',
                                                          'event = "refund", within = "72h"')
        .replace("[segments.category_twice]", "[segments.category_twice_renamed]") + JOURNEY)
    back = decode(encode(actor), changed)
    assert members_of(back) == {"cart_open"}
    slot = {b.event: b.slot for s in changed.segments for b in s.behaviour}
    assert back.segments.seen[slot["cart_add"]] == actor.segments.seen[0]
    assert back.segments.seen[slot["loan_compared"]] == actor.segments.seen[2]
    assert back.segments.seen[slot["loan_applied"]] is None and back.segments.seen[slot["refund"]] is None
    # and the cart window still lets the customer go three days on
    assert changes(back.handle(TimerFired(":segments", back.segments.version), T0 + 1 + 3 * DAY)) == [
        ("cart_open", False)]


@pytest.mark.parametrize(("extra", "words"), [
    ('[journeys.steps.x]\nbranch = [{ if = [{ field = "segment.nope", value = true }], next = "end" }]\n'
     'else = "end"', "unknown segment 'nope'"),
    ('[segments.bad]\nwhere = [{ field = "profile.days_since_purchase", op = "<", value = 3 }]',
     'within = "3d"'),
    ('[segments.loop]\nbehaviour = [{ event = "entered:cart_open" }]', "cannot watch segment changes"),
    ('[segments.w]\nbehaviour = [{ event = "a", within = "a while" }]', 'expected "session" or a duration'),
])
def test_a_bad_segment_or_reference_is_a_clear_error(extra, words):
    with pytest.raises(ScenarioError, match=words):
        program(extra)


# -- property: the actor's membership is the one recomputed from scratch ---------------------------

EVENTS = ("cart_add", "purchase", "product_viewed", "loan_compared", "loan_applied", "session_start",
          "page_view")


MORE_SEGMENTS = """
[segments.vip]
where = [{ field = "traits.plan", value = "vip" }]

[segments.repeat_buyer]
where = [{ field = "profile.purchases", op = ">=", value = 2 }]

[segments.email_clicker]
where = [{ field = "engagement.email.clicked", op = ">=", value = 1 }]

[segments.everyone]
"""


def from_scratch(history: list[tuple[float, str, dict]], now: float, likelihood: float | None) -> set[str]:
    """The segments of ``SEGMENTS`` a customer with this whole history is in at ``now``, by
    their definitions (sessions: a start, or a gap over SESSION_GAP, among the watched events)."""
    watched = {"cart_add", "purchase", "product_viewed", "loan_compared", "loan_applied", "session_start"}
    events, session, last = [], 0, -float("inf")
    for at, name, props in history:
        if name not in watched:
            continue
        if name == "session_start" or at - last > SESSION_GAP:
            session += 1
        last = at
        events.append((at, name, props, session))
    open_session = now - last <= SESSION_GAP

    def inside(at, s, window):
        return (s == session and open_session) if window is None else at + window > now

    def holds(event, count, window, same=None, sessions=False, without=None):
        if without and any(n == without and inside(a, s, window) for a, n, _, s in events):
            return False
        groups: dict = {}
        for a, n, p, s in events:
            if n == event and inside(a, s, window):
                groups.setdefault(p.get(same) if same else None, set()).add(s if sessions else (a, s, id(p)))
        return any(len(g) >= count for g in groups.values())

    members = set()
    if holds("cart_add", 1, 3 * DAY, without="purchase"):
        members.add("cart_open")
    if holds("product_viewed", 2, None, same="category"):
        members.add("category_twice")
    if holds("loan_compared", 3, 30 * DAY, sessions=True, without="loan_applied"):
        members.add("loan_shopper")
    if holds("purchase", 1, 3 * DAY):
        members.add("recent_buyer")
    if likelihood is not None and likelihood > 0.4:
        members.add("likely_buyer")
    plans = [props["plan"] for _, name, props in history if name == "identify"]
    if plans and plans[-1] == "vip":
        members.add("vip")
    if sum(name == "purchase" for _, name, _ in history) >= 2:
        members.add("repeat_buyer")
    if any(name == "clicked" for _, name, _ in history):
        members.add("email_clicker")
    return members | {"everyone"}


def members_of(actor: Actor) -> set[str]:
    state = actor.segments
    return {s.id for s in actor.program.segments if state is not None and state.members >> s.index & 1}


steps = st.lists(st.tuples(
    st.sampled_from([60.0, 600.0, 1500.0, 2400.0, 6 * HOUR, 2 * DAY, 4 * DAY, 12 * DAY, 0.0732003439,
                     DAY + 0.1, 2 * DAY + 1e-7]),
    st.sampled_from(EVENTS + ("scored", "identify", "clicked")),
    st.sampled_from(["a", "b", "c"]),
    st.floats(0.0, 1.0),
), max_size=40)


@settings(max_examples=150, deadline=None)
@given(steps)
def test_membership_after_any_events_equals_membership_recomputed_from_scratch(script):
    actor = make_actor(program(MORE_SEGMENTS), "gu", channels=("email", "push"))
    timers: list[tuple[float, int, TimerFired]] = []
    history: list[tuple[float, str, dict]] = []
    likelihood = None
    now, seq = 28962.0732003439, 0  # (a small time with a fraction: a window end must not round away)

    def apply(message, at):
        nonlocal seq
        for effect in actor.handle(message, at):
            if isinstance(effect, Schedule):
                seq += 1
                heapq.heappush(timers, (effect.at, seq, TimerFired(effect.journey, effect.version)))

    for gap, name, category, value in script:
        now += gap
        while timers and timers[0][0] <= now:  # time passes: due timers fire first
            at, _, fired = heapq.heappop(timers)
            apply(fired, at)
            if not timers or timers[0][0] > at:  # (every timer of that instant has fired)
                assert members_of(actor) == from_scratch(history, at, likelihood)
        if name == "scored":
            likelihood = value
            apply(scored(value, now), now)
        elif name == "identify":
            history.append((now, name, {"plan": "basic" if category == "b" else "vip"}))
            apply(Identified(history[-1][2]), now)
        elif name == "clicked":
            history.append((now, name, {}))
            apply(DeliveryReceipt("cart_rescue", 1, "email", "cart_reminder", "clicked"), now)
        else:
            props = {"category": category} if name == "product_viewed" else {"value": 1.0}
            history.append((now, name, props))
            apply(Event(name, props), now)
        assert members_of(actor) == from_scratch(history, now, likelihood)


def test_a_snapshot_of_the_previous_format_reads_with_no_scores_or_segments():
    prog = program()
    actor = make_actor(prog, "ha")
    actor.handle(Event("cart_add", {"value": 5}), T0)
    version, ids, doubles, timelines, journeys, records, timers, _ = to_chunk([actor])
    old = encode_chunk((7, ids, doubles, timelines, journeys[:1], [records[0][:-1]],
                        (timers[0][:4], timers[1][:2], timers[2][:8], timers[3][:8])))
    chunk = read_chunk(old, prog)
    back = actor_from(chunk, "ha", chunk.records[0])
    assert version == 9 and back.segments is None and back.profile.first_purchase_at is None
    assert back.runs_by_id() == actor.runs_by_id() and back.profile.timeline() == actor.profile.timeline()


JUNK = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True), st.text(max_size=8),
              st.sampled_from(["session", "72h", "0s", "-1d", "purchase", "scores.likelihood", "segment.x",
                               "entered:cart_open", "traits.plan", "profile.days_since_purchase", ">",
                               "in"])),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(
        st.sampled_from(["event", "count", "sessions", "same", "within", "without", "where", "field", "op",
                         "value", "behaviour", "description", "schedule", "every", "first", "at", "segment",
                         "skip_active"]), inner, max_size=4)),
    max_leaves=10)


@settings(max_examples=300, deadline=None)
@given(segments=st.dictionaries(st.text(max_size=6), JUNK, max_size=3), entry=JUNK, scores=JUNK)
def test_any_segments_entry_or_scores_table_compiles_or_is_a_located_error(segments, entry, scores):
    """Whatever a scenario's [segments], [scores] and a journey's entry hold: a program, or a
    ScenarioError that names where (never another exception)."""
    document = {"segments": segments, "scores": scores, "journeys": [
        {"id": "j", "entry": entry, "start": "end", "steps": {"end": {"end": True}}}]}
    try:
        compile_scenario(document, "fuzz.toml")
    except ScenarioError as exc:
        assert str(exc).startswith("fuzz.toml")
