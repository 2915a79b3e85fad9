"""Sweeps: the grid read from --set options, the Pareto frontier, the cache that lets a sweep
resume, and the same points on a Dask cluster giving exactly what the local pool gives."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from engine.lab.sweep import Point, grid, pareto, parse_set, run_points, sweep_result

CART = "cart_abandonment"
CAP = "policy.caps.0.max"
WAIT = "journeys.cart_abandonment.steps.wait_1h.wait"


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("policy.caps.0.max=1,2,3", ("policy.caps.0.max", [1, 2, 3])),
        (f"{WAIT}=30m, 1h,4h", (WAIT, ["30m", "1h", "4h"])),
        ("journeys.j.holdout=0.1,0.25", ("journeys.j.holdout", [0.1, 0.25])),
        ("a.b=true,false", ("a.b", [True, False])),
        ('a.b="x,y"', ("a.b", ['"x', 'y"'])),  # (values split at every comma: no quoting)
    ],
)
def test_set_options_read_values_as_toml_where_they_are(option, expected):
    assert parse_set(option) == expected


@pytest.mark.parametrize("option", ["policy.caps.0.max", "=1,2", "a.b=", "a.b=1,,2"])
def test_a_malformed_set_option_is_refused(option):
    with pytest.raises(ValueError, match="--set"):
        parse_set(option)


def test_the_grid_is_the_product_in_order_named_by_the_shortest_distinct_suffix():
    points = grid([("policy.caps.0.max", [1, 2]), ("policy.caps.1.max", [1]), (WAIT, ["1h", "4h"])])
    assert [p.name for p in points] == [
        "0.max=1, 1.max=1, wait=1h", "0.max=1, 1.max=1, wait=4h",
        "0.max=2, 1.max=1, wait=1h", "0.max=2, 1.max=1, wait=4h",
    ]
    assert points[3].settings == {"policy.caps.0.max": 2, "policy.caps.1.max": 1, WAIT: "4h"}


def test_a_random_sample_of_the_grid_is_a_subset_and_the_same_for_the_same_seed():
    settings = [("a", list(range(10))), ("b", list(range(10)))]
    whole = grid(settings)
    sample = grid(settings, sample=7, seed=5)
    assert len(sample) == 7 and all(p in whole for p in sample)
    assert sample == grid(settings, sample=7, seed=5)
    assert sample != grid(settings, sample=7, seed=6)
    assert grid(settings, sample=500) == whole


def test_a_path_set_twice_is_refused():
    with pytest.raises(ValueError, match="set twice"):
        grid([("a", [1]), ("a", [2])])


def test_pareto_marks_the_points_nothing_beats_on_both():
    # (value, cost): more value is better, less cost is better
    points = [(10, 5), (12, 6), (11, 7), (12, 6), (8, 1), (8, 2)]
    # (11, 7) is beaten by (12, 6); (8, 2) by (8, 1); the two (12, 6) tie and neither beats the other
    assert pareto(points) == [True, True, False, True, True, False]


def _figures_without_time(figures):
    return [{k: v for k, v in f.items() if k != "wall_seconds"} for f in figures]


def test_a_rerun_takes_every_point_from_the_cache_and_a_damaged_entry_runs_again(tmp_path):
    points = grid([(CAP, [1, 3])])
    cache = tmp_path / "points"
    first = run_points(CART, points, 1_500, 10.0, 2, cache, workers=2)
    assert len(list(cache.glob("*.json"))) == 2
    cached: list[int] = []
    again = run_points(CART, points, 1_500, 10.0, 2, cache, workers=2, on_cached=cached.append)
    assert cached == [0, 1] and again == first
    entry = sorted(cache.glob("*.json"))[0]
    entry.write_text(entry.read_text()[:40])  # (cut short, as by a crash)
    cached.clear()
    third = run_points(CART, points, 1_500, 10.0, 2, cache, workers=2, on_cached=cached.append)
    assert len(cached) == 1
    assert _figures_without_time(third) == _figures_without_time(first)
    # another population is another key: nothing taken from the cache
    cached.clear()
    run_points(CART, points[:1], 1_500, 10.0, 3, cache, workers=1, on_cached=cached.append)
    assert cached == []


def test_the_frontier_rows_carry_the_outcome_and_both_pareto_marks(tmp_path):
    points = grid([(CAP, [1, 3])])
    figures = run_points(CART, points, 1_500, 10.0, 2, tmp_path, workers=2)
    rows = sweep_result(points, figures, "conversion")
    for row, f in zip(rows, figures, strict=True):
        journey = f["journeys"][CART]["treated"]
        assert row["conversion"] == pytest.approx(
            100 * journey["conversions_complete"] / journey["entrants_complete"])
        assert isinstance(row["pareto_messages"], bool) and isinstance(row["pareto_opt_outs"], bool)
    assert any(row["pareto_messages"] for row in rows)


@pytest.mark.slow
def test_a_sweep_on_a_dask_local_cluster_gives_exactly_the_local_pool_results(tmp_path):
    distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")
    points = grid([(CAP, [1, 3]), (WAIT, ["30m", "4h"])])
    local = run_points(CART, points, 2_000, 7.0, 4, tmp_path / "local", workers=2)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        remote = run_points(CART, points, 2_000, 7.0, 4, tmp_path / "dask", dask=cluster.scheduler_address)
    assert len(remote) == 4
    assert _figures_without_time(remote) == _figures_without_time(local)
    assert len({json.dumps(f["journeys"], sort_keys=True) for f in local}) > 1  # (the points differ)


def test_sweep_on_the_command_line_writes_a_bundle_with_the_frontier(tmp_path):
    out = tmp_path / "sweep"
    command = [sys.executable, "-m", "engine", "sweep", CART, "--set", f"{CAP}=1,3", "--set",
               f"{WAIT}=30m,4h", "--random", "3", "--customers", "1500", "--days", "10", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Pareto-optimal" in done.stdout
    result = json.loads((out / "metrics.json").read_text())
    assert result["kind"] == "sweep" and len(result["points"]) == 3
    assert result["settings"] == {CAP: [1, 3], WAIT: ["30m", "4h"]}
    assert len(list((out / "points").glob("*.json"))) == 3
    assert (out / "frontier.png").read_bytes().startswith(b"\x89PNG")
    page = (out / "report.html").read_text()
    assert "Pareto" in page and page.count("data:image/png;base64,") == 1
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    rerun = json.loads((out / "metrics.json").read_text())
    assert rerun["points"] == result["points"]  # (all from the cache, wall times included)


@pytest.mark.parametrize(
    ("arguments", "words"),
    [(["--set", "policy.caps.0.max"], "expected PATH=VALUE"),
     (["--set", "policy.caps.9.max=1,2"], "'9' is not an index"),
     (["--set", "journeys.nope.holdout=0.1"], "no journey 'nope'"),
     (["--set", "policy.caps.0.max=-1,2"], "max")],
)
def test_sweep_refuses_bad_settings_before_running_anything(arguments, words):
    done = subprocess.run([sys.executable, "-m", "engine", "sweep", CART, *arguments], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2, done.stdout
    assert words in " ".join(done.stderr.split())


def test_points_name_what_they_set():
    assert Point("max=1", {CAP: 1}).settings[CAP] == 1


def test_an_incremental_sweep_of_a_scenario_without_a_holdout_is_refused():
    command = [sys.executable, "-m", "engine", "sweep", "support_escalation", "--set",
               "agents.support.agents=1,2", "--outcome", "incremental"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "needs a holdout" in " ".join(done.stderr.split())
