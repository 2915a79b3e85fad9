"""Scenario files through the command line: the built-ins validate, bad files fail clearly.

``touchpoint validate`` on a bad file exits with status 2 and one line that names the file, the
journey, the step and the field, with no traceback. The bad files are small variations of a
valid one, so each test breaks exactly one thing.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli import app
from engine.scenario_files import load_scenario, scenario_from_document
from scenarios import BUILT_IN_DIR, built_in_names

runner = CliRunner()

BUILT_INS = (
    "broadcast_targeting",
    "cart_abandonment",
    "fintech_cross_sell",
    "lead_nurturing",
    "onboarding",
    "support_escalation",
    "weekly_broadcast",
)

GOOD = """
name = "winback"

[policy]
caps = [{ max = 2, per = "24h" }]

[[journeys]]
id = "winback"
entry = { event = "cart_add" }
start = "pause"

[journeys.steps.pause]
wait = "1h"
next = "nudge"

[journeys.steps.nudge]
send = { message = "come_back", channel = "email" }
next = "clicked"

[journeys.steps.clicked]
wait_for = { event = "message_clicked", timeout = "24h" }
on_event = "done"
on_timeout = "done"

[journeys.steps.done]
end = true

[world]
session_events = [{ event = "cart_add", p = 0.1 }]
"""


def validate(path: Path | str) -> tuple[int, str]:
    result = runner.invoke(app, ["validate", str(path)])
    return result.exit_code, result.output


def write(tmp_path: Path, text: str, name: str = "winback.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def assert_one_clean_line(output: str, *parts: str) -> str:
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    for part in parts:
        assert part in lines[0], f"{part!r} not in {lines[0]!r}"
    return lines[0]


# -- the built-ins -----------------------------------------------------------------------------------


def test_the_built_in_list_is_the_six_use_cases():
    assert tuple(built_in_names()) == BUILT_INS


@pytest.mark.parametrize("name", BUILT_INS)
def test_each_built_in_validates(name):
    code, output = validate(name)
    assert code == 0, output
    assert output.startswith(f"valid {name}.toml"), output


@pytest.mark.parametrize("name", BUILT_INS)
def test_each_built_in_has_a_description_and_simulator_tables(name):
    scenario = load_scenario(name)
    assert scenario.name == name
    assert len(scenario.document["description"]) > 20
    assert scenario.simulation.world.session_events, "the world needs events to trigger journeys"
    for journey in scenario.program.journeys:
        sent = {
            step.message for step in journey.steps.values() if hasattr(step, "message")
        }
        unmodelled = sent - set(scenario.simulation.world.messages)
        assert not unmodelled, f"{name}: no [world.messages] table for {sorted(unmodelled)}"


@pytest.mark.parametrize("name", BUILT_INS)
def test_each_built_in_file_opens_with_a_comment_saying_its_use_case(name):
    text = (BUILT_IN_DIR / f"{name}.toml").read_text()
    assert text.startswith("# ") and len(text.splitlines()[0]) > 30, name


def test_scenarios_command_lists_every_description():
    result = runner.invoke(app, ["scenarios"])
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    for name in BUILT_INS:
        assert name in flat
        description = " ".join(str(load_scenario(name).document["description"]).split())
        assert description in flat


def test_a_good_file_validates(tmp_path):
    code, output = validate(write(tmp_path, GOOD))
    assert code == 0, output
    assert "winback (4 steps)" in output


# -- bad files ---------------------------------------------------------------------------------------


def test_unknown_step_reference(tmp_path):
    path = write(tmp_path, GOOD.replace('next = "clicked"', 'next = "clickd"'))
    code, output = validate(path)
    assert code == 2
    assert_one_clean_line(
        output, path.name, "journey 'winback'", "step 'nudge'", "field 'next'", "'clickd'"
    )


@pytest.mark.parametrize("bad", ["24 hours", "-1h", "1.5h", "0s"])
def test_bad_duration(tmp_path, bad):
    path = write(tmp_path, GOOD.replace('timeout = "24h"', f'timeout = "{bad}"'))
    code, output = validate(path)
    assert code == 2
    line = assert_one_clean_line(
        output, path.name, "journey 'winback'", "step 'clicked'", "field 'wait_for.timeout'"
    )
    assert '"24h"' in line, "the message says what a valid duration looks like"


def test_bad_wait_duration(tmp_path):
    path = write(tmp_path, GOOD.replace('wait = "1h"', 'wait = "-1h"'))
    code, output = validate(path)
    assert code == 2
    assert_one_clean_line(output, path.name, "journey 'winback'", "step 'pause'", "field 'wait'")


def test_wait_free_cycle(tmp_path):
    cycle = GOOD.replace('next = "clicked"', 'next = "again"') + (
        '\n[journeys.steps.again]\nsend = { message = "again", channel = "email" }\nnext = "nudge"\n'
    )
    path = write(tmp_path, cycle)
    code, output = validate(path)
    assert code == 2
    line = assert_one_clean_line(output, path.name, "journey 'winback'", "field 'next'")
    assert "wait-free cycle" in line
    assert "step 'nudge'" in line or "step 'again'" in line, line


def test_unknown_channel(tmp_path):
    path = write(tmp_path, GOOD.replace('channel = "email"', 'channel = "fax"'))
    code, output = validate(path)
    assert code == 2
    line = assert_one_clean_line(
        output, path.name, "journey 'winback'", "step 'nudge'", "field 'send.channel'", "'fax'"
    )
    assert "email" in line and "push" in line, "the message lists the valid channels"


def test_unknown_candidate_channel(tmp_path):
    text = GOOD.replace(
        'channel = "email" }', 'channel = "best", candidates = ["push", "pigeon"] }'
    )
    path = write(tmp_path, text)
    code, output = validate(path)
    assert code == 2
    assert_one_clean_line(
        output, path.name, "step 'nudge'", "field 'send.candidates[1]'", "'pigeon'"
    )


@pytest.mark.parametrize(
    ("world", "field"),
    [
        ('session_events = [{ event = "cart_add", p = 1.5 }]', "world.session_events[0].p"),
        ('session_events = [{ event = "cart_add", p = "often" }]', "world.session_events[0].p"),
        ("checkout_after_cart = -0.1", "world.checkout_after_cart"),
        ("sesion_events = []", "world.sesion_events"),
        (
            'session_events = [{ event = "cart_add", p = 0.1, properties = { v = { unif = [0, 1] } } }]',
            "world.session_events[0].properties.v.unif",
        ),
        ("messages = { come_back = { kindd = 1 } }", "world.messages.come_back.kindd"),
        ("channels = { email = { open = 1.2 } }", "world.channels.email.open"),
        ("channels = { fax = { open = 0.5 } }", "world.channels.fax"),
        ('broadcasts = [{ event = "tick", every = "weekly" }]', "world.broadcasts[0].every"),
        ('messages = { come_back = { kind = "newsletter" } }', "world.messages.come_back.kind"),
        (
            "messages = { come_back = { purchase_on_click_by_channel = { fax = 0.1 } } }",
            "world.messages.come_back.purchase_on_click_by_channel.fax",
        ),
    ],
)
def test_bad_world_field(tmp_path, world, field):
    text = GOOD.replace(
        '[world]\nsession_events = [{ event = "cart_add", p = 0.1 }]', f"[world]\n{world}"
    )
    path = write(tmp_path, text)
    code, output = validate(path)
    assert code == 2
    assert_one_clean_line(output, path.name, f"field '{field}'")


def test_an_unknown_world_field_lists_the_valid_ones(tmp_path):
    text = GOOD.replace("session_events = [", "sesion_events = [")
    code, output = validate(write(tmp_path, text))
    assert code == 2
    line = assert_one_clean_line(output, "field 'world.sesion_events'")
    assert "session_events" in line.split(":", 1)[1], "the message names the field it expected"


def test_a_channel_table_changes_only_the_fields_it_names():
    changed = scenario_from_document(
        tomllib.loads(GOOD + "\n[world.channels.email]\noptout_h0 = 0.005\n"), "winback.toml"
    )
    default = scenario_from_document(tomllib.loads(GOOD), "winback.toml")
    email, before = changed.simulation.world.channels["email"], default.simulation.world.channels["email"]
    assert email.optout_h0 == 0.005
    assert email.open == before.open and email.deliver == before.deliver
    assert set(changed.simulation.world.channels) == set(default.simulation.world.channels)


def test_bad_agent_queue(tmp_path):
    path = write(tmp_path, GOOD + '\n[agents.support]\nagents = 0\n')
    code, output = validate(path)
    assert code == 2
    assert_one_clean_line(output, path.name, "field 'agents.support.agents'")


def test_not_toml_at_all(tmp_path):
    path = write(tmp_path, GOOD.replace("[policy]", "[policy"))
    code, output = validate(path)
    assert code == 2
    assert_one_clean_line(output, path.name, "not valid TOML")


def test_no_such_file_or_built_in():
    code, output = validate("no_such_scenario")
    assert code == 2
    line = assert_one_clean_line(output, "no_such_scenario")
    assert "cart_abandonment" in line, "the message lists the built-ins"


def test_run_on_a_bad_file_fails_the_same_way(tmp_path):
    path = write(tmp_path, GOOD.replace('channel = "email"', 'channel = "fax"'))
    result = runner.invoke(app, ["run", str(path), "--customers", "10", "--quiet"])
    assert result.exit_code == 2
    assert_one_clean_line(result.output, path.name, "step 'nudge'", "field 'send.channel'")
