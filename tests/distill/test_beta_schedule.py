"""β schedules of algorithm distillation and the teacher-free task term."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from pcnalloc.cli import main
from pcnalloc.distill import DistillConfig, distill_config
from pcnalloc.distill.loss import DistillLossError, beta_at, distill_loss, task_loss
from pcnalloc.distill.trainer import train_student
from pcnalloc.errors import ConfigError


@pytest.mark.parametrize(
    ("schedule", "want"),
    [
        ("fixed", [1.0, 1.0, 1.0, 1.0, 1.0]),
        ("increasing", [0.2, 0.4, 0.6, 0.8, 1.0]),
        ("decreasing", [1.0, 0.8, 0.6, 0.4, 0.2]),
    ],
)
def test_beta_on_hand_computed_epochs(schedule, want):
    got = [beta_at(schedule, e, 5, 0.2, 1.0) for e in range(1, 6)]
    assert got == pytest.approx(want)
    assert beta_at(schedule, 1, 1, 0.2, 1.0) == 1.0  # one epoch: β = beta_max


def test_trainer_follows_the_schedule(synthetic_library: Path):
    cfg = DistillConfig(
        epochs=3, patience=10, beta_schedule="decreasing", beta_min=0.0, beta_max=0.5
    )
    res = train_student(synthetic_library, kind="edge", cfg=cfg)
    assert [h["beta"] for h in res.history] == pytest.approx([0.5, 0.25, 0.0])


def test_unknown_schedule_is_a_typed_error(tmp_path: Path, capsys):
    with pytest.raises(ConfigError, match="beta_schedule"):
        distill_config(beta_schedule="cosine")
    with pytest.raises(DistillLossError, match="unknown beta schedule 'cosine'; accepted"):
        beta_at("cosine", 1, 5, 0.0, 1.0)
    cfg = tmp_path / "d.yaml"
    cfg.write_text("beta_schedule: cosine\n")
    args = ["distill", "--library", str(tmp_path), "--out", str(tmp_path / "o")]
    assert main([*args, "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert "beta_schedule" in err and len(err.splitlines()) == 1


def test_task_term_by_hand():
    # two rows, uniform student over 2 actions: log π = log 0.5 for every logged action
    logits = torch.zeros(2, 2)
    a = torch.tensor([0, 1])
    r = torch.tensor([1.0, 0.0])
    w0 = 2 * math.exp(1) / (math.exp(1) + 1)
    w1 = 2 * 1 / (math.exp(1) + 1)
    want = -(w0 + w1) * math.log(0.5) / 2
    assert float(task_loss(logits, a, r, eta=1.0)) == pytest.approx(want)
    # the gradient pulls the better-rewarded logged action up (planted: equal rewards do not)
    z = torch.zeros(1, 2, requires_grad=True)
    z2 = torch.cat([z, z])
    task_loss(z2, a, r, eta=1.0).backward()
    assert z.grad is not None and z.grad[0, 0] < 0 < z.grad[0, 1]
    z.grad = None
    task_loss(torch.cat([z, z]), a, torch.zeros(2), eta=1.0).backward()
    assert z.grad is not None and torch.allclose(z.grad, torch.zeros(1, 2), atol=1e-7)


def test_total_mixes_imitation_and_task():
    q = torch.tensor([[1.0, 0.0, 0.0]])
    mask = torch.ones(1, 3)
    z = torch.tensor([[0.0, 1.0, 0.0]])
    zero = torch.zeros(1, 3)
    kw = dict(tau=1.0, lambda_hard=0.0, lambda_soft=0.0)
    base = distill_loss(z, q, mask, zero, zero, **kw)
    mixed = distill_loss(
        z,
        q,
        mask,
        zero,
        zero,
        beta=0.25,
        task_weight=2.0,
        actions_B=torch.tensor([2]),
        rewards_B=torch.tensor([3.0]),
        **kw,
    )
    assert float(base.task) == 0.0
    want = 0.25 * float(base.kl) + 2.0 * float(mixed.task)
    assert float(mixed.total) == pytest.approx(want)
    assert float(mixed.task) == pytest.approx(-float(torch.log_softmax(z, 1)[0, 2]))
    with pytest.raises(DistillLossError, match="needs actions_B"):
        distill_loss(z, q, mask, zero, zero, task_weight=1.0, **kw)
