"""Sessions decided a day at a time in bulk, and the events an engine may be spared.

The world decides each day's sessions for everyone at once (``scenarios.sessions``) from
Philox4x32-10 draws keyed by customer and session number, and it does not hand the engine the
browsing events its program does nothing with (``Program.ignored_events``). Both are checked
against what they replace: Random123's published answers for Philox, and for the events a run
that hands the actors everything, which must give the very same results.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from harness import compile_toml

from engine.runtime.simulation import Simulation
from engine.scenario_files import load_scenario
from scenarios import built_in_names, sessions
from scenarios.draws import SESSION, moment_uniforms, philox4x32, philox_key

# Random123's known answers for Philox4x32-10 (its tests/kat_vectors): counter, key, result
PHILOX_ANSWERS = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize(("counter", "key", "expected"), PHILOX_ANSWERS)
def test_philox_gives_random123s_known_answers(counter, key, expected):
    words = philox4x32(tuple(np.array([word]) for word in counter), key)
    assert tuple(int(w[0]) for w in words) == expected


def test_a_customers_session_draws_do_not_depend_on_the_batch():
    key = philox_key(7)
    alone = moment_uniforms(key, np.array([42]), SESSION, np.array([3]), 9)
    crowd = moment_uniforms(key, np.array([5, 42, 9]), SESSION, np.array([0, 3, 3]), 9)
    assert alone.shape == (1, 9) and (alone[0] == crowd[1]).all()
    assert not (crowd[0] == crowd[1]).any() and not (crowd[1] == crowd[2]).any()
    assert ((0.0 <= crowd) & (crowd < 1.0)).all()


def test_draws_asked_from_an_offset_are_those_of_the_full_draw():
    """The session layout draws a moment's first slots, then the rest where needed: the rest
    must be the same draws a full draw gives there, and an odd offset is refused."""
    key, who, n = philox_key(3), np.array([4, 8]), np.array([1, 2])
    full = moment_uniforms(key, who, SESSION, n, 11)
    assert (moment_uniforms(key, who, SESSION, n, 7, first=4) == full[:, 4:11]).all()
    with pytest.raises(ValueError, match="even"):
        moment_uniforms(key, who, SESSION, n, 3, first=3)


def test_session_draws_are_uniform():
    """200,000 draws: mean 1/2 and variance 1/12, each within five standard errors, and no
    correlation between a session's first two places."""
    u = moment_uniforms(philox_key(1), np.arange(100_000), SESSION, np.zeros(100_000), 2)
    n = u.size
    assert abs(u.mean() - 0.5) < 5 * (1 / 12) ** 0.5 / n ** 0.5
    assert abs(u.var() - 1 / 12) < 5 * (1 / 180) ** 0.5 / n ** 0.5
    assert abs(np.corrcoef(u[:, 0], u[:, 1])[0, 1]) < 5 / (n / 2) ** 0.5


# -- the events an engine does nothing with --------------------------------------------------------


def ignored(channel: str, entry: str = "cart_add") -> frozenset[str]:
    """The events ignored by a journey entered on ``entry`` that sends one message."""
    return compile_toml(
        f'[[journeys]]\nid = "j"\nentry = {{ event = "{entry}" }}\nstart = "a"\n'
        f'[journeys.steps.a]\nsend = {{ message = "m", {channel} }}\nnext = "done"\n'
        '[journeys.steps.done]\nend = true\n'
    ).ignored_events


def test_browsing_is_ignored_only_where_nothing_listens():
    email = 'channel = "email"'
    assert ignored(email) == {"session_start", "page_view", "screen"}
    assert ignored(email, entry="page_view") == {"session_start", "screen"}, "an entry listens"
    assert ignored('channel = "in_app"') == {"page_view", "screen"}, "in-app waits for a session"
    assert "session_start" not in ignored('channel = "best", candidates = ["email", "in_app"]')


@pytest.mark.parametrize("scenario", built_in_names())
def test_sparing_the_engine_ignored_events_changes_no_result(scenario):
    """Every built-in scenario, 2,000 customers for 14 days: a run that hands the actors every
    event, the ignored ones too, gives the very same metrics; the events are the same in number,
    handed over or counted as ignored."""
    runs = []
    for deliver in (True, False):
        simulation = Simulation(load_scenario(scenario), 2_000, 14, seed=5, deliver_ignored=deliver)
        stats = simulation.run()
        runs.append((json.dumps(simulation.metrics.to_dict(), sort_keys=True), stats))
    (everything, all_stats), (spared, spared_stats) = runs
    assert spared == everything
    assert all_stats.events_ignored == 0 and spared_stats.events_ignored > 0
    assert spared_stats.messages_handled + spared_stats.events_ignored == all_stats.messages_handled
    assert spared_stats.messages_handled < all_stats.messages_handled / 2


def test_a_worker_that_remembers_days_runs_the_next_design_the_same(monkeypatch):
    """A compare's or a sweep's worker keeps the days it decided for the next design of the same
    world: the next run takes them and gives what deciding them again gives, also for a shorter
    horizon (its last day is cut: decided anew) and another seed (another world)."""
    monkeypatch.setattr(sessions, "_remembered", None)
    sessions.remember_days()
    base = load_scenario("cart_abandonment")
    other = base.with_settings({"policy.caps.0.max": 1, "journeys.cart_abandonment.steps.wait_1h.wait": "3h"})
    Simulation(base, 1_500, 6, seed=4).run()
    [days] = sessions._remembered.values()
    assert len(days) == 6
    runs = ((6, 4), (5.5, 4), (6, 5))  # (days, seed)
    remembered = [Simulation(other, 1_500, horizon, seed=seed) for horizon, seed in runs]
    for simulation in remembered:
        simulation.run()
    assert len(sessions._remembered) == 2 and len(days) == 7  # (5.5 days: its half day is new)
    monkeypatch.setattr(sessions, "_remembered", None)
    for simulation, (horizon, seed) in zip(remembered, runs, strict=True):
        fresh = Simulation(other, 1_500, horizon, seed=seed)
        fresh.run()
        assert simulation.metrics.to_dict() == fresh.metrics.to_dict()
        assert simulation.world.sessions == fresh.world.sessions > 1_000
