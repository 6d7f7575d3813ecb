"""State-chosen candidates: the K routes a request is offered, drawn from a larger pool.

With ``EnvConfig.candidate_pool = P > K`` a request is offered the K shortest of its P
shortest routes that can carry it now: routes with a valid action (free capacity, or
capacity held by lower-priority flows it may pre-empt) first, shortest first, then routes
without one (present, then absent slots) to fill K. That is the candidate step of
constrained shortest path first in RSVP-TE (prune the routes that cannot carry the request
at its setup priority, take the shortest), so a small action space keeps the reach of a
large one: after a fiber cut the K shortest routes of a pair are often all full while a
route a few hops longer is free; where the K shortest can carry the request they are the
ones offered, exactly as without a pool.

Validity is the kernel's own mask on the pool (capacity of every pool on the route and its
1+1 backup at the request's setup priority, class latency bound, trust, protection). The
env, the edge agent, the edge service and the offline bound call
:meth:`CandidatePool.choose`, so each decision is offered the same routes everywhere.
Written here rather than in :mod:`pcnalloc.network.paths` because the choice reads the
kernel's evaluation, which sits above the path layer.
"""

from __future__ import annotations

import numpy as np

from pcnalloc.config import EnvConfig
from pcnalloc.envs.features import Evaluator
from pcnalloc.envs.state import NetworkState
from pcnalloc.network.paths import CandidateSet
from pcnalloc.traffic.catalog import Catalog

RANK_VALID, RANK_INVALID, RANK_ABSENT = 0, 1, 2


def slot_ranks(mask_A: np.ndarray, present_P: np.ndarray, L: int) -> np.ndarray:
    """Rank per pool slot (P,): 0 some action valid (pre-empting or not), 1 present but no
    valid action, 2 absent (``mask_A`` has P·L + 1 entries, reject last)."""
    valid = mask_A[:-1].astype(bool).reshape(-1, L).any(axis=1)
    rank = np.where(valid, RANK_VALID, RANK_INVALID).astype(np.int64)
    rank[~present_P.astype(bool)] = RANK_ABSENT
    return rank


class CandidatePool:
    """Chooses a request's K candidates from its P-route pool (see the module docstring).

    Args:
        catalog: the service catalog.
        cfg: the env config; ``cfg.route_pool`` routes are evaluated, ``cfg.k_paths`` kept.
    """

    def __init__(self, catalog: Catalog, cfg: EnvConfig) -> None:
        self.K, self.P, self.L = cfg.k_paths, cfg.route_pool, cfg.grant_levels
        self.active = self.P > self.K
        self._evaluator = (
            Evaluator(catalog, cfg.model_copy(update={"k_paths": self.P})) if self.active else None
        )

    def choose(
        self, state: NetworkState, pool: CandidateSet, cls: int, priority: int
    ) -> CandidateSet:
        """The K candidates of a request of class ``cls`` at setup ``priority``.

        Args:
            state: the network state the request is decided on.
            pool: the request's ``cfg.route_pool`` shortest routes (a path cache's set).
        """
        if self._evaluator is None:
            return pool
        ev = self._evaluator.run(state, pool, cls, priority)
        rank = slot_ranks(ev.mask_A, pool.present_K, self.L)
        idx = np.argsort(rank, kind="stable")[: self.K]
        return pool.take(idx)
