"""Per-batch decision statistics of a student against the teacher (agreement, violations)."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor

CLEAR_GAP = 1e-3
"""Teacher top-2 Q gap (teacher Q units) above which a row counts as a clear decision; below
it the teacher is near-indifferent and top-1 disagreement costs almost nothing."""


def masked_argmax(scores_BA: Tensor, action_mask_BA: Tensor) -> Tensor:
    """The argmax over valid actions only, (B,) int64; masked entries never win."""
    neg = torch.full_like(scores_BA, -torch.inf)
    return torch.where(action_mask_BA.bool(), scores_BA, neg).argmax(dim=1)


@dataclass
class DecisionStats:
    """Running sums over rows; :meth:`summary` turns them into rates and means.

    Attributes:
        rows: rows seen.
        agree_raw: rows where the raw student argmax equals the teacher's masked argmax.
        agree_masked: rows where the student's masked argmax equals the teacher's.
        hard_proposals: rows where the raw student argmax has h(s, a) = 1.
        masked_proposals: rows where the raw student argmax is masked (action_mask = 0).
        soft_student: Σ c(s, a) at the raw student argmax.
        soft_teacher: Σ c(s, a) at the teacher's masked argmax.
        q_regret: Σ Q_T(teacher argmax) − Q_T(student masked argmax) (teacher Q units).
        clear_rows: rows whose teacher top-2 valid Q gap exceeds ``CLEAR_GAP``.
        agree_clear: of those, rows where the raw student argmax agrees.
    """

    rows: int = 0
    agree_raw: int = 0
    agree_masked: int = 0
    hard_proposals: int = 0
    masked_proposals: int = 0
    soft_student: float = 0.0
    soft_teacher: float = 0.0
    q_regret: float = 0.0
    clear_rows: int = 0
    agree_clear: int = 0

    @torch.no_grad()
    def update(
        self,
        logits_BA: Tensor,
        q_values_BA: Tensor,
        action_mask_BA: Tensor,
        hard_BA: Tensor,
        soft_BA: Tensor,
    ) -> None:
        """Add one batch (shapes as in :func:`pcnalloc.distill.loss.distill_loss`, soft (B, A))."""
        t = masked_argmax(q_values_BA, action_mask_BA)
        raw = logits_BA.argmax(dim=1)
        msk = masked_argmax(logits_BA, action_mask_BA)
        idx = raw[:, None]
        self.rows += int(logits_BA.shape[0])
        self.agree_raw += int((raw == t).sum())
        self.agree_masked += int((msk == t).sum())
        self.hard_proposals += int((hard_BA.gather(1, idx) > 0).sum())
        self.masked_proposals += int((action_mask_BA.gather(1, idx) == 0).sum())
        self.soft_student += float(soft_BA.gather(1, idx).sum())
        self.soft_teacher += float(soft_BA.gather(1, t[:, None]).sum())
        q_t = q_values_BA.gather(1, t[:, None])[:, 0]
        self.q_regret += float((q_t - q_values_BA.gather(1, msk[:, None])[:, 0]).sum())
        valid = action_mask_BA.bool()
        second = torch.where(valid, q_values_BA, torch.full_like(q_values_BA, -torch.inf))
        second = second.scatter(1, t[:, None], -torch.inf).amax(dim=1)
        clear = (q_t - second) > CLEAR_GAP
        self.clear_rows += int(clear.sum())
        self.agree_clear += int(((raw == t) & clear).sum())

    def summary(self) -> dict[str, float]:
        """Rates in [0, 1] and mean soft magnitudes per row."""
        n = max(self.rows, 1)
        return {
            "rows": self.rows,
            "top1_agreement": self.agree_raw / n,
            "top1_agreement_masked": self.agree_masked / n,
            "hard_proposal_rate": self.hard_proposals / n,
            "masked_proposal_rate": self.masked_proposals / n,
            "mean_soft_violation": self.soft_student / n,
            "teacher_mean_soft_violation": self.soft_teacher / n,
            "mean_q_regret": self.q_regret / n,
            "clear_row_share": self.clear_rows / n,
            "top1_agreement_clear": self.agree_clear / max(self.clear_rows, 1),
        }

    def merge(self, other: DecisionStats) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


__all__ = ["CLEAR_GAP", "DecisionStats", "masked_argmax"]
