"""Constrained distillation loss: teacher KL + squared hard-violation mass + L2 soft penalty.

For student logits z(s) with π_S = softmax(z) over **all** A actions (masked ones included, so
that the hard term teaches the student to avoid them on its own)::

    L = KL(softmax(Q_T/τ) ‖ π_S) + λ_hard · (Σ_a π_S(a)·h(s,a))² + λ_soft · ‖π_S ⊙ c(s,·)‖₂²

The teacher distribution is taken over valid actions only: masked actions (``action_mask`` = 0)
get a −∞ logit, so their raw teacher Q (possibly garbage) never matters. The student side uses
``log_softmax`` (numerically stable KL). KL follows Rusu et al. 2016 ("Policy Distillation",
small τ sharpens the teacher); the constraint terms follow the power-communication constrained
policy distillation method (DESIGN §6). Every term is averaged over the batch.

Algorithm distillation (the algorithm-distillation paper, eq. 8: task loss + β · imitation
distance) mixes the imitation term with a **task term** under a weight β that may follow a
schedule over epochs (:func:`beta_at`)::

    L = β · KL + w_task · L_task + λ_hard · hard + λ_soft · soft

The task term needs no teacher: it is reward-weighted log-likelihood of the logged action,
``L_task = −mean_b( w_b · log π_S(a_b) )`` with ``w = B · softmax_b(r_b / η)`` over the batch
(advantage-weighted regression with the batch as baseline). It reads only the env reward of the
action the library recorded, so it is a policy-gradient-free, off-line surrogate of the task
objective: logged actions that earned more (exploration included) are pulled up, those that
earned less are pushed down relative to them — signal a classical teacher's one-hot target
does not carry. ``w_task = 0`` (the default) is the plain constrained distillation loss.

A **logit-margin term** makes the student's decisions survive int8 quantisation (whose
rounding moves a logit by up to a few tenths on the edge student): on rows where the teacher
decides clearly (top-2 valid Q gap above :data:`~pcnalloc.distill.metrics.CLEAR_GAP`; on the
others the teacher is indifferent and the export gate counts a tie as agreeing), a hinge on
the gap between the logit of the teacher's best valid action a* and its closest rival::

    L_margin = mean_b( clear_b · max_{a ≠ a*} max(0, m − (z(a*) − z(a))) )

over every other action, masked ones included (a masked rival pushed below a* is one the
quantised student cannot propose either). It is the multi-class hinge of Crammer & Singer
(2001) restricted to the closest rival; ``margin_weight = 0`` leaves the loss unchanged::

    L = β · KL + w_task · L_task + λ_hard · hard + λ_soft · soft + w_margin · L_margin
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from pcnalloc.distill.metrics import CLEAR_GAP
from pcnalloc.errors import PcnallocError


class DistillLossError(PcnallocError):
    """Inputs of the distillation loss with mismatched shapes or a row without a valid action."""


class LossTerms(NamedTuple):
    """Scalar loss terms (batch means); ``total`` is the weighted sum that is optimised."""

    total: Tensor
    kl: Tensor
    hard: Tensor
    soft: Tensor
    task: Tensor
    margin: Tensor


BETA_SCHEDULES: tuple[str, ...] = ("fixed", "increasing", "decreasing")


def beta_at(schedule: str, epoch: int, epochs: int, beta_min: float, beta_max: float) -> float:
    """Imitation weight β of 1-based ``epoch`` out of ``epochs``.

    ``fixed``: ``beta_max`` throughout; ``increasing``: linear from ``beta_min`` (epoch 1) to
    ``beta_max`` (epoch ``epochs``); ``decreasing``: linear from ``beta_max`` to ``beta_min``
    (the paper's best schedule: imitate first, then let the task term take over).

    Raises:
        DistillLossError: an unknown schedule (names the accepted ones).
    """
    if schedule not in BETA_SCHEDULES:
        raise DistillLossError(
            f"unknown beta schedule {schedule!r}; accepted: {', '.join(BETA_SCHEDULES)}"
        )
    if schedule == "fixed" or epochs <= 1:
        return float(beta_max)
    frac = (min(max(epoch, 1), epochs) - 1) / (epochs - 1)
    if schedule == "decreasing":
        frac = 1.0 - frac
    return float(beta_min + (beta_max - beta_min) * frac)


def task_loss(logits_BA: Tensor, actions_B: Tensor, rewards_B: Tensor, eta: float) -> Tensor:
    """Reward-weighted negative log-likelihood of the logged actions (see the module docstring).

    Args:
        logits_BA: student logits (B, A).
        actions_B: logged actions (B,) int.
        rewards_B: env rewards of those actions (B,).
        eta: temperature η > 0 of the weights softmax(r/η) (reward units).
    """
    log_ps = torch.log_softmax(logits_BA.float(), dim=1)
    ll_B = log_ps.gather(1, actions_B.long().reshape(-1, 1))[:, 0]
    w_B = torch.softmax(rewards_B.float() / eta, dim=0) * rewards_B.shape[0]
    return -(w_B.detach() * ll_B).mean()


def margin_loss(
    logits_BA: Tensor,
    q_values_BA: Tensor,
    action_mask_BA: Tensor,
    margin: float,
    clear_gap: float = CLEAR_GAP,
) -> Tensor:
    """Hinge on the logit gap between the teacher's best valid action and its closest rival.

    Args:
        logits_BA: student logits (B, A).
        q_values_BA: teacher Q-values (B, A) (masked entries may hold anything).
        action_mask_BA: (B, A), nonzero = valid.
        margin: the gap m (logit units) below which a rival is penalised.
        clear_gap: only rows whose teacher top-2 valid Q gap exceeds it count (teacher Q).

    Returns:
        The batch mean of ``clear · max_{a ≠ a*} relu(m − (z(a*) − z(a)))`` (see the module
        docstring); 0 when no row is clear.
    """
    valid = action_mask_BA.bool()
    q = torch.where(valid, q_values_BA.float(), torch.full_like(q_values_BA, -torch.inf))
    top2 = q.topk(2, dim=1)
    best = top2.indices[:, :1]
    clear = (top2.values[:, 0] - top2.values[:, 1]) > clear_gap
    z = logits_BA.float()
    gap = z.gather(1, best) - z
    hinge = torch.relu(margin - gap).scatter(1, best, 0.0)
    return (hinge.amax(dim=1) * clear.float()).mean()


def teacher_log_probs(q_values_BA: Tensor, action_mask_BA: Tensor, tau: float) -> Tensor:
    """Log-softmax of Q_T/τ over valid actions; masked actions get −∞ (probability 0).

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
    beta: float = 1.0,
    task_weight: float = 0.0,
    actions_B: Tensor | None = None,
    rewards_B: Tensor | None = None,
    task_eta: float = 1.0,
    margin_weight: float = 0.0,
    margin: float = 1.0,
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
        beta: weight β of the KL (imitation) term.
        task_weight: weight of the task term (0: not computed, ``task`` = 0).
        actions_B, rewards_B: logged actions and rewards (needed when ``task_weight`` > 0).
        task_eta: temperature η of the task term's reward weights.
        margin_weight: weight of the logit-margin term (0: not computed, ``margin`` = 0).
        margin: the logit gap m of the margin term.

    Returns:
        :class:`LossTerms` with the weighted total and the five unweighted terms.

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
    if task_weight > 0:
        if actions_B is None or rewards_B is None:
            raise DistillLossError("a task term (task_weight > 0) needs actions_B and rewards_B")
        task = task_loss(logits_BA, actions_B, rewards_B, task_eta)
    else:
        task = torch.zeros((), dtype=kl.dtype)
    if margin_weight > 0:
        marg = margin_loss(logits_BA, q_values_BA, action_mask_BA, margin)
    else:
        marg = torch.zeros((), dtype=kl.dtype)
    total = beta * kl + task_weight * task + lambda_hard * hard + lambda_soft * soft
    total = total + margin_weight * marg
    return LossTerms(total=total, kl=kl, hard=hard, soft=soft, task=task, margin=marg)


__all__ = [
    "BETA_SCHEDULES",
    "DistillLossError",
    "LossTerms",
    "beta_at",
    "distill_loss",
    "margin_loss",
    "soft_magnitude",
    "task_loss",
    "teacher_log_probs",
]
