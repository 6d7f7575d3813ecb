"""Trunk reservation, least-cost routing and tuning on training seeds."""

from __future__ import annotations

import pytest

from pcnalloc.baselines import make_policy
from pcnalloc.cli import main
from pcnalloc.envs import PowerCommEnv
from pcnalloc.errors import ConfigError
from pcnalloc.evaluate.runner import env_config_for
from pcnalloc.evaluate.tune import tune


def _play(spec, make_config, graph, seed=0, n=150):
    pol = make_policy(spec)
    cfg = env_config_for(pol, make_config(graph, events="stress", traffic={"load": 1.5}))
    env = PowerCommEnv(cfg, observation=pol.observation)
    pol.bind_env(env)
    obs, _ = env.reset(seed=seed)
    seen = []
    for _ in range(n):
        a = pol.act(obs)
        assert env.current_evaluation.mask_A[a], f"{spec} chose a masked action"
        seen.append((env.current_priority, a == env.reject_action, env.current_evaluation))
        obs, *_ = env.step(a)
    return seen


@pytest.mark.parametrize(
    "spec", ["trunk", "trunk@reserve=0.3,protect_from=2", "lcr", "lcr@beta=0.5,gamma=2"]
)
def test_never_masked(spec, make_config, small_pool_graph_file) -> None:
    _play(spec, make_config, small_pool_graph_file)


def test_trunk_reserve_refuses_low_priority_only(make_config, small_pool_graph_file) -> None:
    seen = _play("trunk@reserve=0.9,protect_from=2", make_config, small_pool_graph_file, n=200)
    low_rejected_with_room = [
        ev
        for p, rej, ev in seen
        if p >= 2 and rej and (ev.mask_A[:-1] & ~ev.needs_preempt_A[:-1]).any()
    ]
    assert low_rejected_with_room, "a 90 % reserve must turn some admissible low-priority away"
    for p, rej, ev in seen:
        if p < 2 and ev.mask_A[:-1].any():
            assert not rej, "a high-priority request is admitted whenever it can be"


def test_lcr_price_refuses_cheap_requests(make_config, small_pool_graph_file) -> None:
    free = _play("lcr@beta=0", make_config, small_pool_graph_file, n=200)
    dear = _play("lcr@beta=1000", make_config, small_pool_graph_file, n=200)
    n_free = sum(r for p, r, ev in free if p > 1)
    n_dear = sum(r for p, r, ev in dear if p > 1)
    assert n_dear > n_free
    assert all(not r for p, r, ev in dear if p <= 1 and ev.mask_A[:-1].any())


def test_specs_round_trip_and_bad_parameters() -> None:
    p = make_policy("trunk:8@reserve=0.05,protect_from=3")
    assert (p.k_paths, p.reserve, p.protect_from) == (8, 0.05, 3)
    assert p.name == "trunk:8@reserve=0.05,protect_from=3"
    with pytest.raises(ConfigError, match="bad parameter 'size=1'"):
        make_policy("lcr@size=1")
    with pytest.raises(ConfigError, match="beta='x'"):
        make_policy("lcr@beta=x")


def test_tuned_never_worse_than_default_on_tuning_seeds(make_config, small_pool_graph_file):
    cfg = make_config(small_pool_graph_file, events="stress", traffic={"load": 1.5})
    res = tune(
        ["trunk"],
        cfg,
        [1_000_000, 1_000_001],
        80,
        grids={"trunk": {"k": [4], "reserve": [0.0, 0.5]}},
    )
    assert res.best_scores["trunk"]["value"] >= res.default_scores["trunk"]["value"]
    assert make_policy(res.best_specs["trunk"]).name == res.best_specs["trunk"]
    with pytest.raises(ConfigError, match="not training seeds"):
        tune(["trunk"], cfg, [3], 80)
    with pytest.raises(ConfigError, match="no valid point"):
        tune(["trunk"], cfg, [1_000_000], 20, grids={"trunk": {"k": [99]}})


def test_tuning_through_a_process_pool_scores_like_the_serial_run(
    make_config, small_pool_graph_file
):
    from pcnalloc.core.executors import LocalExecutor

    cfg = make_config(small_pool_graph_file, events="stress", traffic={"load": 1.5})
    args = (["trunk", "ksp-ff"], cfg, [1_000_000, 1_000_001], 60)
    grids = {"trunk": {"k": [4], "reserve": [0.0, 0.3]}, "ksp-ff": {"k": [2, 4]}}
    serial = tune(*args, grids=grids)
    with LocalExecutor(2) as ex:
        pooled = tune(*args, grids=grids, executor=ex)
    assert pooled.to_json() == serial.to_json()
    assert len(serial.table) == 2 + 1 + 2  # trunk's default point joins its grid


def test_tune_cli(tmp_path, tiny_graph_file, capsys) -> None:
    out = tmp_path / "t.json"
    args = [
        "tune",
        "--case",
        str(tiny_graph_file),
        "--policies",
        "ksp-ff",
        "--seeds",
        "1000000",
        "--requests",
        "20",
        "--out",
        str(out),
    ]
    assert main(args) == 0 and out.is_file()
    assert main(args) == 2  # no silent overwrite
    assert "--overwrite" in capsys.readouterr().err
