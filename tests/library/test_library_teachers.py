"""Classical teachers, scenarios and multi-teacher libraries (algorithm / multi-policy
distillation): rows are the heuristic's own decisions, tagged by source."""

from __future__ import annotations

import numpy as np
import pytest

from pcnalloc.baselines.registry import make_policy
from pcnalloc.cli import main
from pcnalloc.config import env_config
from pcnalloc.envs import PowerCommEnv
from pcnalloc.library import LibraryError, LibraryReader
from pcnalloc.library.build import build_library, plan_tasks, resolve_teacher

ENV = env_config(network={"case": "case14"}, traffic={"warm_start": False, "load": 2.0})


def _replay(spec: str, seed: int, requests: int) -> list[int]:
    """The heuristic's actions on its own, outside the library builder."""
    policy = make_policy(spec)
    d = ENV.model_dump()
    d.update(policy.env_overrides)
    env = PowerCommEnv(type(ENV).model_validate(d), observation="compact")
    if hasattr(policy, "bind_env"):
        policy.bind_env(env)
    policy.reset(seed)
    obs, _ = env.reset(seed=seed)
    out = []
    for _ in range(requests):
        a = int(policy.act(obs))
        out.append(a)
        obs, *_ = env.step(a)
    return out


@pytest.mark.parametrize("spec", ["cspf-pe:4", "lcr:4"])
def test_heuristic_rows_equal_its_actions(tmp_path, spec):
    build_library(
        spec, tmp_path, cases=["case14"], loads=[2.0], episodes=2, requests=60, explore=0.0, env=ENV
    )
    rows = LibraryReader(tmp_path).read_all()
    assert set(rows["source"]) == {spec}
    for i, seed in enumerate(np.unique(rows["seed"])):
        sel = rows["seed"] == seed
        assert rows["action"][sel].tolist() == _replay(spec, int(seed), 60), (spec, i)
    # one-hot soft targets at the chosen action; hard labels = what the mask forbids
    q = rows["q_values"]
    assert (q.argmax(1) == rows["action"]).all() and (q.sum(1) == 1).all()
    np.testing.assert_array_equal(rows["hard"][:, :-1], 1 - rows["action_mask"][:, :-1])
    assert rows["greedy"].all() and not rows["state"].any()


def test_replay_check_can_fail():
    """Planted fault: another heuristic's actions on the same seed are not the rows above."""
    assert _replay("cspf-pe:4", 200_000, 60) != _replay("lcr:4", 200_000, 60)


def test_multi_teacher_library_round_trip(tmp_path):
    teachers = ["cspf-pe:4", "trunk:4@reserve=0.2", "ksp-ff"]
    res = build_library(
        teachers,
        tmp_path,
        cases=["case14"],
        loads=[2.0],
        episodes=2,
        requests=30,
        explore=0.1,
        env=ENV,
    )
    rd = LibraryReader(tmp_path)
    rows = rd.read_all()
    assert rd.sources == sorted(teachers) and res.episodes == 6 and rd.num_rows == 180
    assert [t["source"] for t in rd.metadata["extra"]["teachers"]] == teachers
    src = np.array(rows["source"])
    for i, t in enumerate(teachers):
        sel = src == t
        assert sel.sum() == 60
        # each teacher plays the same seeds; its episodes carry their own ids
        assert set(rows["seed"][sel]) == {200_000, 200_001}
        assert set(rows["episode_id"][sel]) == {2 * i, 2 * i + 1}
    assert (rows["greedy"] == 0).any()  # exploration happened


def test_incompatible_teachers_and_unknown_kind_are_typed_errors(tmp_path):
    with pytest.raises(LibraryError, match=r"incompatible env configs.*k_paths"):
        # cspf-pe alone asks for K = 16, ksp-ff for K = 4: two row layouts
        build_library(["cspf-pe", "ksp-ff"], tmp_path, cases=["case14"], loads=[1.0], episodes=1)
    with pytest.raises(LibraryError, match="unknown teacher kind 'greedy-oracle'; accepted"):
        resolve_teacher("greedy-oracle")
    assert resolve_teacher("trunk-reservation:4").policy == "trunk:4"


def test_scenario_goes_into_the_env_config():
    t = resolve_teacher("cspf-pe:4", ENV)
    tasks = plan_tasks(
        "",
        t.env,
        cases=["case14"],
        loads=[1.0],
        episodes=2,
        requests=5,
        explore=0.0,
        scenario="storm",
        policy=t.policy,
        source=t.source,
    )
    assert {task.env_config["traffic"]["scenario"] for task in tasks} == {"storm"}


def test_cli_bad_teacher_and_scenario_exit_2(tmp_path, capsys):
    out = str(tmp_path / "l")
    assert main(["library", "build", "--teacher", "oracle9", "--out", out]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown teacher kind 'oracle9'" in err and len(err.splitlines()) == 1
    args = ["library", "build", "--teacher", "cspf-pe:4", "--out", out, "--executor", "serial"]
    assert main([*args, "--scenario", "hurricane", "--episodes", "1", "--requests", "5"]) == 2
    assert "unknown scenario 'hurricane'" in capsys.readouterr().err
