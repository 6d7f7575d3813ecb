"""The constrained trainer on the tiny graph: episodes logged, λ follows dual ascent on the
measured rates, the checkpoint plays as a teacher, a warm start carries Q and λ."""

from __future__ import annotations

import csv

import pytest

from pcnalloc.teacher import CheckpointError, TeacherPolicy
from pcnalloc.teacher.constrained import (
    CHECKPOINT_FILE,
    LOG_FILE,
    PIDState,
    constrained_config,
    dual_step,
    evaluate_constrained,
    pid_step,
    train_constrained,
)

SMALL = {"hidden": 16, "gnn_hidden": 8, "lstm_hidden": 8, "q_hidden": 16}


@pytest.fixture
def cfg(small_pool_graph_file):
    def make(**over):
        teacher = dict(
            env={
                "network": {"case": str(small_pool_graph_file)},
                "traffic": {"warm_start": False, "load": 3.0},
                "episode_requests": 40,
            },
            n_envs=2,
            learning_starts=20,
            train_every=8,
            batch_size=16,
            buffer_size=1000,
            eval_every=0,
            **SMALL,
        )
        base = dict(teacher=teacher, epsilon=0.05, episodes=4, lambda_lr=5.0, dual_batch=1)
        base.update(over)
        return constrained_config(**base)

    return make


def test_trainer_logs_episodes_and_follows_dual_ascent(cfg, tmp_path):
    c = cfg()
    res = train_constrained(c, tmp_path / "a")
    assert len(res.episodes) == 4 and res.steps == 4 * 40
    with open(tmp_path / "a" / LOG_FILE) as fh:
        assert len(list(csv.DictReader(fh))) == 4
    # every dual update is projected ascent on the rate measured in that batch
    lam = 0.0
    assert len(res.duals) == 4
    for d in res.duals:
        lam = dual_step(lam, d["measured"], c.epsilon, c.lambda_lr, c.lambda_max)
        assert d["lambda"] == pytest.approx(lam)
    assert res.lambda_final == pytest.approx(lam)
    # the checkpoint is an ordinary teacher checkpoint
    pol = TeacherPolicy.load(tmp_path / "a" / CHECKPOINT_FILE)
    assert pol.env_config.episode_requests == 40
    ev = evaluate_constrained(tmp_path / "a", [7], 30, c.epsilon)
    assert 0 <= ev["critical_blocking"] <= 1 and isinstance(ev["meets_epsilon"], bool)

    # transfer: the warm run starts from the previous multiplier and networks
    seen = []
    warm = train_constrained(
        cfg(epsilon=0.5, episodes=2),
        tmp_path / "b",
        warm_start=tmp_path / "a",
        on_episode=seen.append,
    )
    assert seen[0]["lambda"] == pytest.approx(res.lambda_final)
    assert warm.duals[0]["lambda"] == pytest.approx(
        dual_step(res.lambda_final, warm.duals[0]["measured"], 0.5, c.lambda_lr, c.lambda_max)
    )
    # fixed dual: λ never moves
    fixed = train_constrained(cfg(dual="fixed", lambda_init=2.0, episodes=2), tmp_path / "c")
    assert {d["lambda"] for d in fixed.duals} == {2.0}


def test_pid_dual_follows_pid_steps_and_warm_start_resumes_the_integral(cfg, tmp_path):
    c = cfg(dual="pid", lambda_kp=30.0, lambda_kd=2.0)
    res = train_constrained(c, tmp_path / "a")
    st, lam = PIDState(), 0.0
    for d in res.duals:
        lam, st = pid_step(
            st, d["measured"], c.epsilon, kp=30.0, ki=c.lambda_lr, kd=2.0, lam_max=c.lambda_max
        )
        assert d["lambda"] == pytest.approx(lam)
    warm = train_constrained(
        cfg(dual="pid", lambda_kp=30.0, epsilon=0.5, episodes=1),
        tmp_path / "b",
        warm_start=tmp_path / "a",
    )
    m = warm.duals[0]["measured"]
    first, _ = pid_step(
        PIDState(integral=res.lambda_final / c.lambda_lr),
        m,
        0.5,
        kp=30.0,
        ki=c.lambda_lr,
        kd=0.0,
        lam_max=c.lambda_max,
    )
    assert warm.duals[0]["lambda"] == pytest.approx(first)


def test_warm_start_from_another_env_is_refused(cfg, tmp_path):
    train_constrained(cfg(episodes=2), tmp_path / "a")
    other = cfg(episodes=2)
    env = other.teacher.env.model_dump()
    env["traffic"]["load"] = 1.0
    t = other.teacher.model_copy(update={"env": type(other.teacher.env).model_validate(env)})
    with pytest.raises(CheckpointError, match="another env config"):
        train_constrained(
            other.model_copy(update={"teacher": t}), tmp_path / "b", warm_start=tmp_path / "a"
        )
