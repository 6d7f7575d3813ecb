"""Double DQN learner: online/target Q networks, masked targets, Huber loss, ε-greedy.

Target (van Hasselt et al. 2016), with the argmax restricted to valid next actions:
``y = G + D · Q_target(s′, argmax_{a valid} Q_online(s′, a))`` where, for an n-step return
from the replay, G is the discounted reward sum and D the composed bootstrap discount
(``γ^(Σ Δt/τ)`` semi-Markov, or ``γ^k`` per decision); one step per decision gives the
classical ``r + γ·Q′``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from pcnalloc.nn import EncoderShape, ObsBatch, QNetwork, cat_batches, mask_q
from pcnalloc.teacher.config import TeacherConfig


def double_dqn_target(
    reward_B: torch.Tensor,
    q_online_next_BA: torch.Tensor,
    q_target_next_BA: torch.Tensor,
    mask_next_BA: torch.Tensor,
    gamma: float | torch.Tensor,
) -> torch.Tensor:
    """Double-DQN TD target, (B,).

    Args:
        reward_B: rewards r (already scaled).
        q_online_next_BA: online-network Q(s′, ·), raw.
        q_target_next_BA: target-network Q(s′, ·), raw.
        mask_next_BA: bool, valid actions in s′ (at least one per row: reject).
        gamma: discount, a float or per-row factors (B,) (semi-Markov γ^(Δt/τ) composed
            over an n-step return).
    """
    a_star = mask_q(q_online_next_BA, mask_next_BA).argmax(dim=1, keepdim=True)
    return reward_B + gamma * q_target_next_BA.gather(1, a_star).squeeze(1)


def large_margin_loss(
    q_BA: torch.Tensor, mask_BA: torch.Tensor, expert_B: torch.Tensor, margin: float
) -> torch.Tensor:
    """DQfD's supervised term, one value per row (B,):
    ``max_{a valid} [Q(s, a) + l·1(a ≠ a_E)] − Q(s, a_E)``.

    It is zero once the expert's action leads every other valid action by the margin ``l``,
    so Q learns the demonstrator's ranking without being pinned to a value scale; invalid
    actions never count (they get :data:`MASK_VALUE`).
    """
    bonus = torch.full_like(q_BA, margin)
    bonus.scatter_(1, expert_B[:, None], 0.0)
    best = mask_q(q_BA + bonus, mask_BA).max(dim=1).values
    return best - q_BA.gather(1, expert_B[:, None]).squeeze(1)


def epsilon_greedy(
    q_masked_A: np.ndarray | Callable[[], np.ndarray],
    mask_A: np.ndarray,
    eps: float,
    rng: np.random.Generator,
) -> int:
    """With probability ε a uniform valid action, else the masked argmax (never invalid).

    Args:
        q_masked_A: Q-values (A,), or a callable computing them, called only when the
            greedy branch is taken (saves the forward pass while exploring).
        mask_A: 1 = valid; at least one entry (reject) is valid.
        eps: exploration probability.
        rng: the only source of randomness (one uniform draw, plus one index when exploring).
    """
    valid = np.flatnonzero(mask_A)
    if rng.random() < eps:
        return int(valid[rng.integers(valid.size)])
    q = q_masked_A() if callable(q_masked_A) else q_masked_A
    return int(valid[np.argmax(np.asarray(q)[valid])])


def epsilon_greedy_batch(
    q_fn: Callable[[list[int]], np.ndarray],
    masks: list[np.ndarray],
    eps: float,
    rngs: list[np.random.Generator],
) -> list[int]:
    """:func:`epsilon_greedy` for a vector of envs with one batched forward pass.

    Each env ``i`` draws from its own ``rngs[i]`` exactly as :func:`epsilon_greedy` would
    (one uniform, plus one index when exploring), so a vector of envs makes the same choices
    as each env acting alone with the same generator.

    Args:
        q_fn: maps the indices of the envs acting greedily to their Q-values (n, A).
        masks: per-env valid-action masks.
        eps: exploration probability.
        rngs: one generator per env.
    """
    actions = [-1] * len(masks)
    greedy: list[int] = []
    for i, (m, rng) in enumerate(zip(masks, rngs, strict=True)):
        valid = np.flatnonzero(m)
        if rng.random() < eps:
            actions[i] = int(valid[rng.integers(valid.size)])
        else:
            greedy.append(i)
    if greedy:
        q = q_fn(greedy)
        for row, i in enumerate(greedy):
            valid = np.flatnonzero(masks[i])
            actions[i] = int(valid[np.argmax(q[row][valid])])
    return actions


class DoubleDQN:
    """Online + target networks and one optimiser.

    Args:
        shape: encoder/Q-head shape.
        cfg: teacher config (learning rate, γ, Huber δ, clipping, target update).
    """

    def __init__(self, shape: EncoderShape, cfg: TeacherConfig) -> None:
        self.cfg = cfg
        self.shape = shape
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.online = QNetwork(shape)
        self.target = copy.deepcopy(self.online)
        self.target.requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.online.parameters(), lr=cfg.lr)
        self.loss_fn = nn.HuberLoss(delta=cfg.huber_delta)
        self.updates = 0
        self.reward_norm = 1.0
        """Extra reward multiplier (the trainer sets 1 − γ^(Δt̄/τ) with normalise_time_q)."""

    @torch.no_grad()
    def greedy_q(self, batch: ObsBatch) -> np.ndarray:
        """Masked online Q-values, (B, A) numpy."""
        return self.online.masked_q(batch).numpy()

    def update(
        self,
        obs: ObsBatch,
        action_B: np.ndarray,
        reward_B: np.ndarray,
        next_obs: ObsBatch,
        discount_B: np.ndarray | None = None,
        demo_B: np.ndarray | None = None,
    ) -> dict[str, float]:
        """One gradient step on a replay batch; returns ``loss``, ``q_mean`` and ``margin``.

        ``discount_B`` is the per-row bootstrap factor of an n-step sample
        (:meth:`ReplayBuffer.sample_n`); None means one step discounted by ``cfg.gamma``.
        ``demo_B`` (bool, B) marks demonstration rows: they add ``demo_weight`` × the
        :func:`large_margin_loss` towards their logged action to the TD loss (DQfD).
        """
        cfg = self.cfg
        r = torch.from_numpy(reward_B.astype(np.float32)) * (cfg.reward_scale * self.reward_norm)
        a = torch.from_numpy(action_B.astype(np.int64))[:, None]
        gamma: float | torch.Tensor = (
            cfg.gamma if discount_B is None else torch.from_numpy(discount_B.astype(np.float32))
        )
        with torch.no_grad():
            q_on_next = self.online(next_obs)[1]
            q_tg_next = self.target(next_obs)[1]
            y = double_dqn_target(r, q_on_next, q_tg_next, next_obs.mask_BA, gamma)
        q_all = self.online(obs)[1]
        q = q_all.gather(1, a).squeeze(1)
        loss = self.loss_fn(q, y)
        margin = 0.0
        if demo_B is not None and demo_B.any() and cfg.demo_weight > 0:
            rows = torch.from_numpy(np.flatnonzero(demo_B))
            je = large_margin_loss(
                q_all[rows], obs.mask_BA[rows], a[rows, 0], cfg.demo_margin
            ).mean()
            loss = loss + cfg.demo_weight * je
            margin = float(je.detach())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.online.parameters(), cfg.max_grad_norm)
        self.optimizer.step()
        self.updates += 1
        if self.updates % cfg.target_update == 0:
            self.sync_target()
        return {
            "loss": float(loss.detach()),
            "q_mean": float(q.detach().mean()),
            "margin": margin,
        }

    @torch.no_grad()
    def td_loss(self, obs: ObsBatch, action_B: np.ndarray, reward_B, next_obs: ObsBatch) -> float:
        """Huber TD error of a batch without updating (for monitoring and tests)."""
        r = torch.from_numpy(np.asarray(reward_B, np.float32)) * self.cfg.reward_scale
        both = cat_batches(obs, next_obs)
        _, q_all = self.online(both)
        B = obs.num_graphs
        q_tg_next = self.target(next_obs)[1]
        y = double_dqn_target(r, q_all[B:], q_tg_next, next_obs.mask_BA, self.cfg.gamma)
        a = torch.from_numpy(np.asarray(action_B, np.int64))[:, None]
        return float(self.loss_fn(q_all[:B].gather(1, a).squeeze(1), y))

    @torch.no_grad()
    def sync_target(self) -> None:
        """Hard copy (τ = 1) or Polyak averaging θ′ ← τθ + (1 − τ)θ′."""
        tau = self.cfg.tau
        for pt, po in zip(self.target.parameters(), self.online.parameters(), strict=True):
            pt.mul_(1.0 - tau).add_(po, alpha=tau)
