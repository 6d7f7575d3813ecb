"""Scenario families: events scheduled inside every episode, deterministic, validated."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pcnalloc.baselines import make_policy
from pcnalloc.envs import PowerCommEnv
from pcnalloc.errors import ConfigError
from pcnalloc.evaluate.runner import run_policy
from pcnalloc.traffic.scenarios import list_scenarios, load_scenario


def test_packaged_families() -> None:
    assert {"normal", "storm", "fiber-cut", "mixed"} <= set(list_scenarios())
    assert load_scenario("storm").faults >= 2 and load_scenario("fiber-cut").fiber_cuts >= 1


def _episode(make_config, graph, family: str, seed: int, requests: int = 150) -> dict:
    cfg = make_config(graph, traffic={"scenario": family}, episode_requests=requests)
    pol = make_policy("ksp-ff")
    return run_policy(pol, cfg, seed=seed, requests=requests)["metrics"]


@pytest.mark.parametrize("family", ["storm", "fiber-cut", "mixed"])
def test_events_fall_inside_every_episode(make_config, small_pool_graph_file, family) -> None:
    sc = load_scenario(family)
    for seed in range(3):
        m = _episode(make_config, small_pool_graph_file, family, seed)
        assert m["faults"] >= min(sc.faults, 1)
        if sc.fiber_cuts:
            assert m["fiber_cuts"] >= 1
        if sc.faults:
            assert m["faults"] == sc.faults


def test_normal_has_no_events_and_families_are_deterministic(
    make_config, small_pool_graph_file
) -> None:
    m = _episode(make_config, small_pool_graph_file, "normal", 0)
    assert m["faults"] == 0 and m["fiber_cuts"] == 0
    a = _episode(make_config, small_pool_graph_file, "mixed", 4)
    b = _episode(make_config, small_pool_graph_file, "mixed", 4)
    assert a == b


def test_storm_brings_critical_decisions(make_config, small_pool_graph_file) -> None:
    calm = _episode(make_config, small_pool_graph_file, "normal", 1, requests=300)
    storm = _episode(make_config, small_pool_graph_file, "storm", 1, requests=300)
    crit = ("teleprotection", "pmu_wams", "scada", "distribution_automation")

    def n(m):
        return sum(m["offered_per_class"].get(c, 0) for c in crit)

    assert n(storm) > n(calm)


def test_scheduled_times_are_inside_the_window(make_config, small_pool_graph_file) -> None:
    cfg = make_config(small_pool_graph_file, traffic={"scenario": "storm"}, episode_requests=200)
    env = PowerCommEnv(cfg, observation="compact")
    env.reset(seed=0)
    # the reset scheduled the faults: they sit in the event heap with the scenario payload
    t0 = cfg.traffic.start_hour * 3600.0
    span = env.traffic.expected_span_s(200, t0)
    lo, hi = env.scenario.window
    times = sorted(t for t, _, kind, p in env._events if p == "scheduled")
    assert len(times) == env.scenario.faults
    assert all(t0 + lo * span - 1e-9 <= t <= t0 + hi * span + 1e-9 for t in times)


def test_unknown_scenario_and_bad_fields(make_config, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown scenario 'hurricane'.*storm"):
        make_config("case14", traffic={"scenario": "hurricane"})
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nfaults: -1\n")
    with pytest.raises(ConfigError, match="faults"):
        load_scenario(str(bad))
    bad.write_text("name: x\nwindow: [0.8, 0.2]\n")
    with pytest.raises(ConfigError, match="window"):
        load_scenario(str(bad))
    bad.write_text("name: x\nstorms: 3\n")
    with pytest.raises(ConfigError, match="storms"):
        load_scenario(str(bad))
    with pytest.raises(ConfigError, match="does not exist"):
        load_scenario(str(tmp_path / "missing.yaml"))


def test_user_scenario_file(make_config, small_pool_graph_file, tmp_path: Path) -> None:
    p = tmp_path / "two_faults.yaml"
    p.write_text(
        "name: two\nfaults: 2\nwindow: [0.0, 0.1]\nevents: {burst_rate_per_s: 0.05}\n"
        "burst_weights: {pmu_wams: 1.0}\n"
    )
    m = _episode(make_config, small_pool_graph_file, str(p), 0)
    assert m["faults"] == 2
    assert np.isfinite(m["weighted_value_ratio"])
