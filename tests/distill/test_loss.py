"""The constrained distillation loss on hand-computed tensors, and its hard-term gradient."""

from __future__ import annotations

import math

import pytest
import torch

from pcnalloc.distill import DistillLossError, distill_loss, teacher_log_probs


def _row() -> dict[str, torch.Tensor]:
    # Three actions; action 2 is masked and hard-violating, and its teacher Q is garbage (NaN).
    return {
        "logits_BA": torch.zeros(1, 3),
        "q_values_BA": torch.tensor([[1.0, 2.0, float("nan")]]),
        "action_mask_BA": torch.tensor([[1, 1, 0]], dtype=torch.int8),
        "hard_BA": torch.tensor([[0.0, 1.0, 1.0]]),
        "soft_BA": torch.tensor([[0.3, 0.0, 0.6]]),
    }


def test_teacher_distribution_excludes_masked_actions() -> None:
    r = _row()
    logp = teacher_log_probs(r["q_values_BA"], r["action_mask_BA"], tau=1.0)
    p = logp.exp()[0]
    e1, e2 = math.exp(1.0), math.exp(2.0)
    assert p[0].item() == pytest.approx(e1 / (e1 + e2), abs=1e-6)
    assert p[1].item() == pytest.approx(e2 / (e1 + e2), abs=1e-6)
    assert p[2].item() == 0.0


def test_each_term_matches_hand_computation() -> None:
    terms = distill_loss(**_row(), tau=1.0, lambda_hard=2.0, lambda_soft=3.0)
    # Teacher p = (0.268941, 0.731059, 0); student π = 1/3 each.
    p0, p1 = 0.2689414213699951, 0.7310585786300049
    kl = p0 * math.log(3 * p0) + p1 * math.log(3 * p1)
    assert kl == pytest.approx(0.516409, abs=1e-6)
    assert terms.kl.item() == pytest.approx(kl, abs=1e-6)
    # Σ π·h = 2/3 → squared 4/9 (the student distribution covers the masked action too).
    assert terms.hard.item() == pytest.approx(4 / 9, abs=1e-6)
    # π ⊙ c = (0.1, 0, 0.2) → ‖·‖² = 0.05.
    assert terms.soft.item() == pytest.approx(0.05, abs=1e-6)
    assert terms.total.item() == pytest.approx(kl + 2.0 * 4 / 9 + 3.0 * 0.05, abs=1e-6)
    assert all(torch.isfinite(t) for t in terms)


def test_temperature_sharpens_teacher() -> None:
    r = _row()
    sharp = distill_loss(**r, tau=0.01, lambda_hard=0.0, lambda_soft=0.0)
    # τ → 0: teacher is one-hot on action 1, so KL = −log π(1) = log 3.
    assert sharp.kl.item() == pytest.approx(math.log(3.0), abs=1e-5)


def test_soft_kinds_are_summed_and_batch_is_averaged() -> None:
    r = _row()
    soft_AQ = torch.tensor([[[0.1, 0.2], [0.0, 0.0], [0.5, 0.1]]])
    one = distill_loss(**{**r, "soft_BA": soft_AQ}, tau=1.0, lambda_hard=0.0, lambda_soft=1.0)
    assert one.soft.item() == pytest.approx(0.05, abs=1e-6)
    # Second row: student certain of action 0 (no hard mass, soft (1·0.3)² = 0.09).
    two = {k: torch.cat([v, v]) for k, v in r.items()}
    two["logits_BA"] = torch.tensor([[0.0, 0.0, 0.0], [50.0, 0.0, 0.0]])
    t = distill_loss(**two, tau=1.0, lambda_hard=0.0, lambda_soft=0.0)
    assert t.hard.item() == pytest.approx((4 / 9 + 0.0) / 2, abs=1e-6)
    assert t.soft.item() == pytest.approx((0.05 + 0.09) / 2, abs=1e-6)


def test_bad_inputs_raise_typed_errors() -> None:
    r = _row()
    with pytest.raises(DistillLossError, match="hard has shape"):
        distill_loss(**{**r, "hard_BA": torch.zeros(1, 4)}, tau=1, lambda_hard=1, lambda_soft=1)
    with pytest.raises(DistillLossError, match="no valid action"):
        distill_loss(
            **{**r, "action_mask_BA": torch.zeros(1, 3, dtype=torch.int8)},
            tau=1,
            lambda_hard=1,
            lambda_soft=1,
        )


def test_hard_gradient_pushes_mass_off_violating_actions() -> None:
    gen = torch.Generator().manual_seed(0)
    B, A = 64, 13
    logits = torch.randn(B, A, generator=gen, requires_grad=True)
    hard = (torch.rand(B, A, generator=gen) < 0.4).float()
    hard[:, -1] = 0.0
    mask = (1 - hard).to(torch.int8)
    q = torch.randn(B, A, generator=gen)
    soft = torch.rand(B, A, generator=gen)

    def hard_mass() -> torch.Tensor:
        return (torch.softmax(logits, 1) * hard).sum(1)

    before = hard_mass().detach()
    terms = distill_loss(logits, q, mask, hard, soft, tau=0.05, lambda_hard=1.0, lambda_soft=0.0)
    terms.hard.backward()
    g = logits.grad
    assert g is not None
    # Masked (hard) actions receive gradient from the student side: their logits go down.
    assert bool((g[hard > 0] > 0).all())
    with torch.no_grad():
        logits -= 5.0 * g
    after = hard_mass().detach()
    assert bool((after <= before + 1e-7).all())
    assert float(after.sum()) < float(before.sum())
