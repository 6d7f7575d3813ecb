"""Operator heuristics, tuned rather than strawmen (DESIGN §9).

They read only the candidate table and mask of the observation. Candidates are the K
shortest paths by latency (k-major actions a = k·L + l, grant slot l from the full request
downwards), so first-fit orders are fixed index permutations prepared once per (K, L).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pcnalloc.envs.features import CANDIDATE_FEATURES

F_VALID = CANDIDATE_FEATURES.index("valid")
F_PRE = CANDIDATE_FEATURES.index("needs_preemption")
F_UTIL = CANDIDATE_FEATURES.index("max_util_after")
F_GRANT = CANDIDATE_FEATURES.index("grant_fraction")


def _order(k: int, n_levels: int, grant_first: bool) -> np.ndarray:
    """Action preference order: all paths at full grant before degrading (grant_first), or
    every grant on path 0 before path 1."""
    idx = np.arange(k * n_levels).reshape(k, n_levels)
    return (idx.T if grant_first else idx).ravel()


@dataclass
class _Heuristic:
    k_paths: int = 4
    grant_levels: int = 3
    name: str = "heuristic"
    observation: str = "compact"
    model_bytes: int = 0
    env_overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # a classical heuristic plays its K shortest routes (K is its tuned knob), whatever
        # candidate pool the base env sets for learned policies
        self.env_overrides = {
            "k_paths": self.k_paths,
            "grant_levels": self.grant_levels,
            "candidate_pool": None,
        }
        self._reject = self.k_paths * self.grant_levels

    def reset(self, seed: int | None = None) -> None:
        return None

    def _table(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        cand = obs["candidates"]
        if cand.shape[0] != self._reject + 1:
            raise ValueError(
                f"{self.name} was built for {self._reject + 1} actions, "
                f"the observation has {cand.shape[0]}"
            )
        return cand


@dataclass
class FirstFit(_Heuristic):
    """KSP-FF (or SP-FF with ``k_paths=1``): the first valid candidate in a fixed order.

    Args:
        preempt: if no candidate fits, take the first that fits by pre-empting lower-priority
            flows (CSPF with priority pre-emption, what an MPLS-TE controller does).
        grant_first: prefer any path at full grant over a degraded grant on a shorter path.
    """

    preempt: bool = False
    grant_first: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        self._order = _order(self.k_paths, self.grant_levels, self.grant_first)

    @property
    def preference_order(self) -> np.ndarray:
        """The fixed order in which actions are tried (the rule guard ranks by it)."""
        return self._order

    def act(self, obs: dict[str, np.ndarray]) -> int:
        cand = self._table(obs)
        o = self._order
        valid = cand[o, F_VALID] > 0
        plain = valid & (cand[o, F_PRE] == 0)
        if plain.any():
            return int(o[np.argmax(plain)])
        if self.preempt and valid.any():
            return int(o[np.argmax(valid)])
        return self._reject


@dataclass
class LeastLoaded(_Heuristic):
    """Least-loaded path: the valid candidate whose busiest link is least utilised after the
    grant, at the highest grant level that any path can take (no pre-emption)."""

    def act(self, obs: dict[str, np.ndarray]) -> int:
        cand = self._table(obs)[:-1].reshape(self.k_paths, self.grant_levels, -1)
        ok = (cand[..., F_VALID] > 0) & (cand[..., F_PRE] == 0)
        levels = np.flatnonzero(ok.any(axis=0))
        if levels.size == 0:
            return self._reject
        lvl = int(levels[0])
        util = np.where(ok[:, lvl], cand[:, lvl, F_UTIL], np.inf)
        return int(np.argmin(util)) * self.grant_levels + lvl


@dataclass
class RandomValid(_Heuristic):
    """Uniformly random among valid non-reject actions (rejects only when none is valid)."""

    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        self._rng = np.random.default_rng(self.seed)

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self._rng = np.random.default_rng(seed)

    def act(self, obs: dict[str, np.ndarray]) -> int:
        valid = np.flatnonzero(obs["action_mask"][:-1])
        if valid.size == 0:
            return self._reject
        return int(valid[self._rng.integers(valid.size)])
