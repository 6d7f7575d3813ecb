"""Constrained distillation loss: teacher KL + squared hard-violation mass + L2 soft penalty.

For student logits z(s) with π_S = softmax(z) over **all** A actions (masked ones included, so
that the hard term teaches the student to avoid them on its own)::

    L = KL(softmax(Q_T/τ) ‖ π_S) + λ_hard · (Σ_a π_S(a)·h(s,a))² + λ_soft · ‖π_S ⊙ c(s,·)‖₂²

The teacher distribution is taken over valid actions only: masked actions (``action_mask`` = 0)
get a −∞ logit, so their raw teacher Q (possibly garbage) never matters. The student side uses
``log_softmax`` (numerically stable KL). KL follows Rusu et al. 2016 ("Policy Distillation",
small τ sharpens the teacher); the constraint terms follow the power-communication constrained
policy distillation method (DESIGN §6). Every term is averaged over the batch.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from pcnalloc.errors import PcnallocError


class DistillLossError(PcnallocError):
    """Inputs of the distillation loss with mismatched shapes or a row without a valid action."""


class LossTerms(NamedTuple):
    """Scalar loss terms (batch means); ``total`` is the weighted sum that is optimised."""

    total: Tensor
    kl: Tensor
    hard: Tensor
    soft: Tensor


def teacher_log_probs(q_values_BA: Tensor, action_mask_BA: Tensor, tau: float) -> Tensor:
    """log softmax(Q_T/τ) over valid actions; masked actions get −∞ (probability 0).

    Args:
        q_values_BA: raw teacher Q-values (B, A); masked entries may hold anything (NaN too).
        action_mask_BA: (B, A), nonzero = valid.
        tau: temperature τ > 0.

    Returns:
        (B, A) float log-probabilities, −∞ at masked actions.
    """
    valid = action_mask_BA.bool()
    if not bool(valid.any(dim=1).all()):
        raise DistillLossError(
            "a row has no valid action in action_mask; every row needs at least one "
            "(the reject action is always valid)"
        )
    scaled = torch.where(valid, q_values_BA.float() / tau, torch.full_like(q_values_BA, -torch.inf))
    return torch.log_softmax(scaled, dim=1)


def soft_magnitude(soft: Tensor) -> Tensor:
    """Per-action soft-violation magnitude c(s, a) (B, A): the sum over kinds if (B, A, Q)."""
    return soft.sum(dim=-1) if soft.dim() == 3 else soft


def distill_loss(
    logits_BA: Tensor,
    q_values_BA: Tensor,
    action_mask_BA: Tensor,
    hard_BA: Tensor,
    soft_BA: Tensor,
    *,
    tau: float,
    lambda_hard: float,
    lambda_soft: float,
) -> LossTerms:
    """The constrained distillation loss of one batch.

    Args:
        logits_BA: student logits z (B, A), over all actions (no masking).
        q_values_BA: teacher Q-values (B, A).
        action_mask_BA: (B, A), nonzero = valid; defines the teacher distribution's support.
        hard_BA: h(s, a) ∈ {0, 1} (B, A), 1 where some hard rule is violated.
        soft_BA: soft-violation magnitudes c(s, a) ≥ 0, (B, A) or (B, A, Q) (summed over Q).
        tau: teacher temperature τ.
        lambda_hard: weight of the squared hard-violation probability.
        lambda_soft: weight of the squared L2 norm of π_S ⊙ c.

    Returns:
        :class:`LossTerms` with the weighted total and the three unweighted terms.

    Raises:
        DistillLossError: on mismatched shapes or a row without any valid action.
    """
    shape = logits_BA.shape
    c_BA = soft_magnitude(soft_BA)
    for name, t in (("q_values", q_values_BA), ("action_mask", action_mask_BA), ("hard", hard_BA)):
        if t.shape != shape:
            raise DistillLossError(f"{name} has shape {tuple(t.shape)}; expected {tuple(shape)}")
    if c_BA.shape != shape:
        raise DistillLossError(
            f"soft has shape {tuple(soft_BA.shape)}; expected {tuple(shape)} or {(*shape, 'Q')}"
        )
    log_pt = teacher_log_probs(q_values_BA, action_mask_BA, tau)
    p_t = log_pt.exp()
    log_ps = torch.log_softmax(logits_BA.float(), dim=1)
    # p_t = 0 at masked actions: zero their contribution without touching −∞ (no NaN).
    log_pt_safe = torch.where(p_t > 0, log_pt, torch.zeros_like(log_pt))
    kl = (p_t * (log_pt_safe - log_ps)).sum(dim=1).mean()
    pi = log_ps.exp()
    hard_mass_B = (pi * hard_BA.float()).sum(dim=1)
    hard = hard_mass_B.square().mean()
    soft = (pi * c_BA.float()).square().sum(dim=1).mean()
    total = kl + lambda_hard * hard + lambda_soft * soft
    return LossTerms(total=total, kl=kl, hard=hard, soft=soft)


__all__ = [
    "DistillLossError",
    "LossTerms",
    "distill_loss",
    "soft_magnitude",
    "teacher_log_probs",
]
