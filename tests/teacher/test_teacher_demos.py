"""Demonstrations (DQfD): the large-margin term, the action-space check, and that
pre-training on a heuristic's transitions makes the teacher rank actions like it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pcnalloc.errors import ConfigError
from pcnalloc.nn import EncoderShape
from pcnalloc.teacher.demos import collect_demonstrations
from pcnalloc.teacher.dqn import DoubleDQN, large_margin_loss
from pcnalloc.teacher.train import Trainer


def test_large_margin_loss_on_hand_numbers():
    q = torch.tensor([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    mask = torch.tensor([[True, True, True], [True, True, True], [True, False, False]])
    expert = torch.tensor([2, 0, 0])
    got = large_margin_loss(q, mask, expert, 0.8)
    # row 0: expert already leads by 1 ≥ l → 0; row 1: max(1, 2.8, 3.8) − 1 = 2.8;
    # row 2: the better actions are invalid, so only the expert counts → 0
    assert torch.allclose(got, torch.tensor([0.0, 2.8, 0.0]))


def test_demonstrator_on_another_action_space_is_refused(tiny_teacher_cfg):
    cfg = tiny_teacher_cfg(demo_policy="cspf-pe:16")  # teacher env has k_paths = 4
    with pytest.raises(ConfigError, match="k_paths=16"):
        collect_demonstrations(cfg, {1.0: None})


def _agreement(learner: DoubleDQN, demos) -> float:
    buf = demos.buffer
    idx = np.flatnonzero(buf.has_next_C)
    batch = buf._batch(idx)
    q = learner.greedy_q(batch)
    return float((q.argmax(axis=1) == buf.action_C[idx]).mean())


def test_pretraining_on_demonstrations_imitates_the_heuristic(tiny_teacher_cfg, tmp_path):
    common = dict(
        demo_policy="cspf-pe:4",
        demo_episodes=2,
        demo_pretrain=150,
        steps=1,
        learning_starts=10_000,
        seed=3,
    )
    t = Trainer(tiny_teacher_cfg(**common), tmp_path / "on")
    res = t.run()
    demos = collect_demonstrations(t.cfg, t.env_pool[0])
    assert res.demos is not None and res.demos["transitions"] == demos.transitions > 0
    assert json.loads((tmp_path / "on" / "demos.json").read_text())["policy"] == "cspf-pe:4"
    # the same pre-training without the margin term (weight 0) is the planted fault: the
    # check must tell the two apart
    off = Trainer(tiny_teacher_cfg(**common, demo_weight=0.0), tmp_path / "off")
    off.run()
    fresh = DoubleDQN(EncoderShape.for_env(t.cfg.env, **t.cfg.encoder_sizes()), t.cfg)
    on_agree, off_agree = _agreement(t.learner, demos), _agreement(off.learner, demos)
    assert on_agree >= 0.9, (on_agree, off_agree)
    assert on_agree > max(off_agree, _agreement(fresh, demos)) + 0.05


def test_demonstrations_are_deterministic(tiny_teacher_cfg):
    cfg = tiny_teacher_cfg(demo_policy="cspf-pe:4", demo_episodes=1)
    from pcnalloc.envs import PowerCommEnv

    a = collect_demonstrations(cfg, {1.0: PowerCommEnv(cfg.env)})
    b = collect_demonstrations(cfg, {1.0: PowerCommEnv(cfg.env)})
    assert np.array_equal(a.buffer.action_C, b.buffer.action_C)
    assert np.array_equal(a.buffer.reward_C, b.buffer.reward_C)
    assert all(cfg.demo_seed(i) >= cfg.train_seed(0) for i in range(3))


def test_learning_curve_on_a_scenario_family(tiny_teacher_cfg, tmp_path, monkeypatch):
    import pcnalloc.teacher.train as train_mod
    from pcnalloc.errors import PcnallocError

    with pytest.raises((PcnallocError, ValueError), match="unknown scenario"):
        tiny_teacher_cfg(eval_scenario="hurricane")
    seen = []
    real = train_mod.run_policy

    def spy(policy, config, **kw):
        seen.append(config.traffic.scenario)
        return real(policy, config, **kw)

    monkeypatch.setattr(train_mod, "run_policy", spy)
    for fam in ("storm", None):
        cfg = tiny_teacher_cfg(eval_scenario=fam, eval_every=100, eval_requests=40, steps=100)
        Trainer(cfg, tmp_path / str(fam)).run()
    # two eval seeds × (baseline + teacher) per run: the family reaches every evaluation
    assert seen == ["storm"] * 4 + [None] * 4
