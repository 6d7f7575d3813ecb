"""StudentPolicy: registry factory, valid indices on a live env, masked variant, closed loop."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from pcnalloc.baselines import make_policy
from pcnalloc.config import EnvConfig
from pcnalloc.distill import StudentCheckpointError, make_student, save_student
from pcnalloc.distill.fidelity import closed_loop
from pcnalloc.envs import PowerCommEnv


@pytest.fixture(scope="module")
def tiny_env_config(make_config: Callable[..., EnvConfig], tiny_graph_file: Path) -> EnvConfig:
    return make_config(tiny_graph_file, events="calm", traffic={"load": 1.5})


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, tiny_env_config: EnvConfig) -> Path:
    env = PowerCommEnv(tiny_env_config, observation="compact")
    obs, _ = env.reset(seed=0)
    model = make_student(
        "edge",
        input_dim=obs["compact"].shape[0],
        n_actions=tiny_env_config.n_actions,
        generator=torch.Generator().manual_seed(0),
    )
    path = tmp_path_factory.mktemp("student") / "student.pt"
    save_student(path, model, env_config=tiny_env_config.model_dump())
    return path


def test_student_policy_returns_valid_indices(checkpoint: Path, tiny_env_config: EnvConfig) -> None:
    raw = make_policy("student", checkpoint=checkpoint)
    masked = make_policy("student-masked", checkpoint=checkpoint.parent)
    assert raw.observation == "compact" and raw.model_bytes <= 125_000
    env = PowerCommEnv(tiny_env_config, observation="compact")
    obs, _ = env.reset(seed=3)
    A = tiny_env_config.n_actions
    raw_picks = []
    for _ in range(60):
        a_raw, a_masked = raw.act(obs), masked.act(obs)
        assert 0 <= a_raw < A and 0 <= a_masked < A
        assert obs["action_mask"][a_masked] == 1
        raw_picks.append(a_raw)
        z = raw.logits(obs)
        assert a_raw == int(np.argmax(z))  # raw = argmax over all actions, no masking
        obs, *_ = env.step(a_masked)
    assert len(set(raw_picks)) >= 1


def test_closed_loop_compares_with_any_policy(checkpoint: Path, tiny_env_config: EnvConfig) -> None:
    masked = make_policy("student-masked", checkpoint=checkpoint)
    ref = make_policy("ksp-ff")
    rep = closed_loop([masked], ref, [tiny_env_config], seeds=[1, 2], requests=50)
    s = rep["students"]["student-masked"]
    assert s["executed_hard_violations"] == 0
    assert s["outcomes"].get("refused", 0) == 0
    assert len(s["value_ratio_per_episode"]) == 2
    t = rep["teacher"]["mean_value_ratio"]
    assert s["value_ratio_vs_teacher"] == pytest.approx(s["mean_value_ratio"] / t)


def test_missing_checkpoint_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(StudentCheckpointError, match="does not exist"):
        make_policy("student", checkpoint=tmp_path / "nope.pt")
    with pytest.raises(StudentCheckpointError, match="needs checkpoint"):
        make_policy("student")
