"""Bad scenarios fail with a ``ScenarioError`` a person can act on.

The message names the source file, the journey, the step and the field, and says what would be
valid; the same parts are on the exception as attributes for tools.
"""

from __future__ import annotations

import tomllib

import pytest
from harness import CART_SCENARIO, compile_toml

from actors import ScenarioError
from engine.scenario_files import scenario_from_document

SOURCE = "bad_cart.toml"

HEAD = """
[[journeys]]
id = "winback"
entry = { event = "cart_add" }
start = "first"
"""

TAIL = """
[journeys.steps.done]
end = true
"""


def compile_error(steps: str, head: str = HEAD) -> ScenarioError:
    with pytest.raises(ScenarioError) as caught:
        compile_toml(head + steps + TAIL, SOURCE)
    return caught.value


def assert_located(exc: ScenarioError, step: str | None, field: str, *valid: str) -> str:
    text = str(exc)
    assert text.startswith(f"{SOURCE}, journey 'winback'"), text
    if step is not None:
        assert f"step {step!r}" in text, text
        assert exc.step == step
    assert f"field {field!r}" in text, text
    assert exc.source == SOURCE and exc.journey == "winback" and exc.field == field
    for hint in valid:
        assert hint in text, f"{hint!r} not in {text!r}"
    return text


def test_unknown_step_reference():
    exc = compile_error('[journeys.steps.first]\nwait = "1h"\nnext = "secnd"\n')
    text = assert_located(exc, "first", "next", "'secnd'")
    assert "steps are ['done', 'first']" in text


def test_unknown_start_step():
    exc = compile_error('[journeys.steps.begin]\nwait = "1h"\nnext = "done"\n')
    assert_located(exc, None, "start", "'first'", "['begin', 'done']")


@pytest.mark.parametrize("text", ["24 hours", "-1h", "1.5h", "0s"])
def test_bad_duration(text):
    exc = compile_error(f'[journeys.steps.first]\nwait = "{text}"\nnext = "done"\n')
    assert_located(exc, "first", "wait", repr(text), '"24h"', '"7d"')


def test_bad_duration_in_a_nested_field():
    exc = compile_error(
        "[journeys.steps.first]\n"
        'wait_for = { event = "message_clicked", timeout = "-1h" }\n'
        'on_event = "done"\non_timeout = "done"\n'
    )
    assert_located(exc, "first", "wait_for.timeout", "'-1h'", "no spaces or signs")


def test_wait_free_cycle():
    exc = compile_error(
        "[journeys.steps.first]\n"
        'branch = [{ if = [{ field = "event.value", op = ">", value = 20 }], next = "nudge" }]\n'
        'else = "done"\n'
        "[journeys.steps.nudge]\n"
        'send = { message = "m", channel = "email" }\n'
        'next = "first"\n'
    )
    text = str(exc)
    assert text.startswith(f"{SOURCE}, journey 'winback'")
    assert "field 'next'" in text and exc.step in ("first", "nudge")
    assert "wait-free cycle" in text and "wait or wait_for" in text
    assert "first -> nudge -> first" in text or "nudge -> first -> nudge" in text


def test_a_cycle_through_a_wait_is_fine():
    program = compile_toml(
        HEAD
        + "[journeys.steps.first]\n"
        'send = { message = "m", channel = "email" }\nnext = "pause"\n'
        '[journeys.steps.pause]\nwait = "1d"\nnext = "first"\n'
        + TAIL,
        SOURCE,
    )
    assert set(program.by_id["winback"].steps) == {"first", "pause", "done"}


def test_unknown_channel():
    exc = compile_error('[journeys.steps.first]\nsend = { message = "m", channel = "fax" }\n'
                        'next = "done"\n')
    assert_located(exc, "first", "send.channel", "'fax'", "'email'", "'sms'", '"best"')


def test_unknown_candidate_channel():
    exc = compile_error(
        '[journeys.steps.first]\nsend = { message = "m", channel = "best", '
        'candidates = ["push", "pigeon"] }\nnext = "done"\n'
    )
    assert_located(exc, "first", "send.candidates[1]", "'pigeon'", "'push'")


def test_unknown_field_in_a_step():
    exc = compile_error('[journeys.steps.first]\nwait = "1h"\nnext = "done"\ncolour = "red"\n')
    assert_located(exc, "first", "colour", "unknown field", "'wait'", "'next'", "'on_timeout'")


def test_unknown_field_inside_a_step_kind():
    exc = compile_error(
        '[journeys.steps.first]\nsend = { message = "m", channel = "email", urgent = true }\n'
        'next = "done"\n'
    )
    assert_located(exc, "first", "send.urgent", "unknown field", "'message'", "'candidates'")


def test_step_with_two_kinds():
    exc = compile_error(
        '[journeys.steps.first]\nwait = "1h"\nsend = { message = "m", channel = "email" }\n'
        'next = "done"\n'
    )
    text = assert_located(exc, "first", "send", "exactly one kind")
    assert "['wait', 'send']" in text and "'branch'" in text


def test_step_with_no_kind():
    exc = compile_error('[journeys.steps.first]\nnext = "done"\n')
    text = str(exc)
    assert text.startswith(f"{SOURCE}, journey 'winback', step 'first'")
    assert "found none" in text and "'wait_for'" in text


def test_missing_next():
    exc = compile_error('[journeys.steps.first]\nwait = "1h"\n')
    assert_located(exc, "first", "next", "the id of the step that follows")


def test_wait_for_without_on_timeout():
    exc = compile_error(
        "[journeys.steps.first]\n"
        'wait_for = { event = "message_clicked", timeout = "1h" }\non_event = "done"\n'
    )
    assert_located(exc, "first", "on_timeout")


def test_bad_operator():
    exc = compile_error(
        "[journeys.steps.first]\n"
        'branch = [{ if = [{ field = "event.value", op = "=~", value = 20 }], next = "done" }]\n'
        'else = "done"\n'
    )
    assert_located(exc, "first", "branch[0].if[0].op", "'=~'", "'>='", "'in'", "'exists'")


def test_bad_condition_source():
    exc = compile_error(
        "[journeys.steps.first]\n"
        'branch = [{ if = [{ field = "weather.rain", value = 1 }], next = "done" }]\n'
        'else = "done"\n'
    )
    assert_located(exc, "first", "branch[0].if[0].field", "'weather.rain'", "'engagement'")


def test_holdout_out_of_range():
    exc = compile_error('[journeys.steps.first]\nend = true\n', HEAD + "holdout = 1.5\n")
    text = assert_located(exc, None, "holdout", "1.5", "[0, 1]")
    assert "step" not in text


def test_wrong_type_names_the_field():
    exc = compile_error('[journeys.steps.first]\nwait = 5\nnext = "done"\n')
    assert_located(exc, "first", "wait", "`str")


def test_policy_errors_name_the_policy_field():
    with pytest.raises(ScenarioError) as caught:
        compile_toml('[policy]\ncaps = [{ max = 2, per = "1 day" }]\n' + HEAD +
                     '[journeys.steps.first]\nend = true\n', SOURCE)
    text = str(caught.value)
    assert text.startswith(SOURCE) and "field 'policy.caps[0].per'" in text and '"7d"' in text


def test_unknown_on_block_rule_lists_the_rules():
    with pytest.raises(ScenarioError) as caught:
        compile_toml('[policy]\non_block = { quiet_time = "defer" }\n' + HEAD +
                     '[journeys.steps.first]\nend = true\n', SOURCE)
    text = str(caught.value)
    assert "field 'policy.on_block.quiet_time'" in text and "'quiet_hours'" in text


def test_the_built_in_scenario_compiles_and_errors_name_its_file():
    document = tomllib.loads(CART_SCENARIO.read_text())
    program = scenario_from_document(document, CART_SCENARIO.name).program
    assert [j.id for j in program.journeys] == ["cart_abandonment"]
    document["journeys"][0]["steps"]["push"]["next"] = "nowhere"
    with pytest.raises(ScenarioError) as caught:
        scenario_from_document(document, CART_SCENARIO.name)
    assert str(caught.value).startswith(
        "cart_abandonment.toml, journey 'cart_abandonment', step 'push', field 'next': "
        "unknown step 'nowhere'"
    )


def test_a_colon_in_a_step_id_is_refused_since_send_keys_use_it():
    steps = '[journeys.steps.first]\nwait = "1h"\nnext = "a:b"\n[journeys.steps."a:b"]\nend = true\n'
    exc = compile_error(steps)
    assert_located(exc, None, "steps.a:b", "':'")
