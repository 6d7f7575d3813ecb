"""Sequential replay buffer for one topology: each observation is stored once, per env stream.

Observations are written in env order into a ring segment per env stream; the transition from
slot i goes to the next slot of its segment when both belong to the same episode, so next
observations are never stored twice (SB3's ``optimize_memory_usage`` idea). Episodes end
only by truncation, so every stored transition bootstraps (no terminal flag).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from pcnalloc.nn.batching import ObsBatch, collate_fixed


class ReplayBuffer:
    """Ring buffer of full observations, actions and rewards on one fixed topology.

    Args:
        capacity: observation slots.
        example: one observation fixing the array shapes and the (constant) edge index.
        streams: independent env streams (vectorised acting); stream s owns the ring segment
            ``[s·S, (s+1)·S)`` with ``S = capacity // streams``.
    """

    def __init__(self, capacity: int, example: Mapping[str, Any], streams: int = 1) -> None:
        g = example["graph"]
        if not 1 <= streams <= capacity // 2:
            raise ValueError(f"streams must lie in [1, {capacity // 2}], got {streams}")
        self.streams = streams
        self.seg = capacity // streams
        capacity = self.seg * streams
        self.capacity = capacity
        self.edge_index_2E = np.array(g["edge_index"], dtype=np.int64)
        self.node_CNF = np.zeros((capacity, *g["node_feats"].shape), np.float32)
        self.link_CEF = np.zeros((capacity, *g["link_feats"].shape), np.float32)
        self.history_CWH = np.zeros((capacity, *example["history"].shape), np.float32)
        self.request_CR = np.zeros((capacity, *example["request"].shape), np.float32)
        self.cand_CAF = np.zeros((capacity, *example["candidates"].shape), np.float32)
        self.mask_CA = np.zeros((capacity, *example["action_mask"].shape), np.int8)
        self.action_C = np.zeros(capacity, np.int64)
        self.reward_C = np.zeros(capacity, np.float32)
        self.dt_C = np.zeros(capacity, np.float64)
        self.has_next_C = np.zeros(capacity, bool)
        self.ptr_S = np.zeros(streams, np.int64)
        self.size_S = np.zeros(streams, np.int64)
        self._last: list[int | None] = [None] * streams

    @property
    def size(self) -> int:
        return int(self.size_S.sum())

    def succ(self, idx: np.ndarray, j: np.ndarray | int = 1) -> np.ndarray:
        """Slot ``j`` steps after ``idx`` in the same stream's ring segment."""
        base = (idx // self.seg) * self.seg
        return base + (idx - base + j) % self.seg

    def add_obs(self, obs: Mapping[str, Any], *, continues: bool, stream: int = 0) -> int:
        """Store an observation; ``continues`` = it follows the last one stored in the same
        stream within an episode."""
        g = obs["graph"]
        if g["edge_index"].shape != self.edge_index_2E.shape:
            raise ValueError("replay buffer holds one topology; the observation has another")
        i = int(stream * self.seg + self.ptr_S[stream])
        self.node_CNF[i] = g["node_feats"]
        self.link_CEF[i] = g["link_feats"]
        self.history_CWH[i] = obs["history"]
        self.request_CR[i] = obs["request"]
        self.cand_CAF[i] = obs["candidates"]
        self.mask_CA[i] = obs["action_mask"]
        self.has_next_C[i] = False
        last = self._last[stream]
        if continues and last is not None:
            self.has_next_C[last] = True
        self._last[stream] = i
        self.ptr_S[stream] = (self.ptr_S[stream] + 1) % self.seg
        self.size_S[stream] = min(self.size_S[stream] + 1, self.seg)
        return i

    def set_step(self, slot: int, action: int, reward: float, dt_s: float = 0.0) -> None:
        """Record the action taken from ``slot``, its reward and the simulated time ``dt_s``
        (seconds) until the next decision."""
        self.action_C[slot] = action
        self.reward_C[slot] = reward
        self.dt_C[slot] = dt_s

    @property
    def n_transitions(self) -> int:
        return int(self.has_next_C.sum())

    def _batch(self, idx: np.ndarray) -> ObsBatch:
        return collate_fixed(
            node_BNF=self.node_CNF[idx],
            link_BEF=self.link_CEF[idx],
            edge_index_2E=self.edge_index_2E,
            history_BWH=self.history_CWH[idx],
            request_BR=self.request_CR[idx],
            candidates_BAF=self.cand_CAF[idx],
            mask_BA=self.mask_CA[idx],
        )

    def sample(
        self, batch_size: int, rng: np.random.Generator
    ) -> tuple[ObsBatch, np.ndarray, np.ndarray, ObsBatch]:
        """Uniform transitions: (obs batch, action (B,), reward (B,), next-obs batch)."""
        valid = np.flatnonzero(self.has_next_C)
        if valid.size == 0:
            raise ValueError("replay buffer holds no complete transition yet")
        idx = valid[rng.integers(valid.size, size=batch_size)]
        nxt = self.succ(idx)
        return self._batch(idx), self.action_C[idx], self.reward_C[idx], self._batch(nxt)

    def sample_n(
        self,
        batch_size: int,
        rng: np.random.Generator,
        *,
        n_step: int,
        gamma: float,
        tau_s: float | None,
    ) -> tuple[ObsBatch, np.ndarray, np.ndarray, np.ndarray, ObsBatch]:
        """Uniform n-step transitions, gathered with index arrays (no per-sample loop).

        From slot i the return runs over k = min(n, steps left in the episode) steps:
        ``G = Σ_{j<k} D_j·r_{i+j}`` with ``D_j = Π_{m<j} d_{i+m}`` and the bootstrap factor
        ``D_k``, where ``d = γ^(Δt/τ)`` (``tau_s`` given) or ``d = γ`` (``tau_s=None``).

        Returns:
            (obs batch, action (B,), return G (B,), bootstrap discount D_k (B,), batch of the
            observation k steps later).
        """
        valid = np.flatnonzero(self.has_next_C)
        if valid.size == 0:
            raise ValueError("replay buffer holds no complete transition yet")
        idx = valid[rng.integers(valid.size, size=batch_size)]
        slots_BN = self.succ(idx[:, None], np.arange(n_step)[None, :])
        alive_BN = np.cumprod(self.has_next_C[slots_BN], axis=1).astype(bool)
        if tau_s is None:
            d_BN = np.full(slots_BN.shape, gamma, np.float64)
        else:
            d_BN = np.power(gamma, self.dt_C[slots_BN] / tau_s)
        d_BN = np.where(alive_BN, d_BN, 1.0)
        D_BN1 = np.concatenate([np.ones((batch_size, 1)), np.cumprod(d_BN, axis=1)], axis=1)
        G_B = (alive_BN * D_BN1[:, :-1] * self.reward_C[slots_BN]).sum(axis=1)
        k_B = alive_BN.sum(axis=1)
        nxt = self.succ(idx, k_B)
        return (
            self._batch(idx),
            self.action_C[idx],
            G_B.astype(np.float32),
            D_BN1[:, -1].astype(np.float32),
            self._batch(nxt),
        )
