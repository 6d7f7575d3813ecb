"""Q head shared across actions: Q(s, a) = f([state ‖ candidate_a]) for any number of actions."""

from __future__ import annotations

import torch
from torch import nn

from pcnalloc.nn.batching import ObsBatch
from pcnalloc.nn.encoder import EncoderShape, StateEncoder, _mlp

MASK_VALUE = -1.0e9
"""Score given to masked actions: finite (softmax and argmax stay NaN-free) and far below any
reachable Q-value."""


class QHead(nn.Module):
    """Scores every action from the joint state and that action's candidate features.

    The same MLP is applied to each action (weights shared), so the head works for any
    action count A and any topology.
    """

    def __init__(self, shape: EncoderShape) -> None:
        super().__init__()
        self.net = _mlp(
            shape.state_dim + shape.candidate_dim, shape.q_hidden, shape.q_hidden // 2, 1
        )

    def forward(self, state_BS: torch.Tensor, candidates_BAF: torch.Tensor) -> torch.Tensor:
        """Raw Q-values (B, A) (unmasked)."""
        B, A, _ = candidates_BAF.shape
        s = state_BS[:, None, :].expand(B, A, state_BS.shape[1])
        return self.net(torch.cat([s, candidates_BAF], dim=2)).squeeze(2)


def mask_q(q_BA: torch.Tensor, mask_BA: torch.Tensor) -> torch.Tensor:
    """Replace the scores of invalid actions by :data:`MASK_VALUE`."""
    return q_BA.masked_fill(~mask_BA, MASK_VALUE)


class QNetwork(nn.Module):
    """Encoder + Q head: observation batch → (state (B, 128), raw Q (B, A))."""

    def __init__(self, shape: EncoderShape) -> None:
        super().__init__()
        self.shape = shape
        self.encoder = StateEncoder(shape)
        self.head = QHead(shape)

    def forward(self, batch: ObsBatch) -> tuple[torch.Tensor, torch.Tensor]:
        state = self.encoder(batch)
        return state, self.head(state, batch.candidates_BAF)

    def masked_q(self, batch: ObsBatch) -> torch.Tensor:
        """Q-values with invalid actions at :data:`MASK_VALUE`, (B, A)."""
        return mask_q(self(batch)[1], batch.mask_BA)
