"""The simulator's per-decision evaluation into buffers allocated once, read lazily.

:func:`~pcnalloc.envs.features.evaluate` allocates a fresh :class:`Evaluation` per request
(seven buffers, a dozen views, a dataclass): about three quarters of its cost on case118.
:class:`LiveEvaluation` runs the same kernel through an
:class:`~pcnalloc.envs.features.Evaluator` into buffers kept between decisions; the only
arrays a decision hands out are fresh copies of the mask and the candidate table (what the
observation holds). The full :class:`Evaluation` is built only when someone asks for it
(:meth:`LiveEvaluation.snapshot`, behind ``PowerCommEnv.current_evaluation``): fresh arrays
laid out exactly as :func:`evaluate` lays them out, equal value for value
(tests/envs/test_sim_fastpath_parity.py), so a caller that keeps an evaluation across steps
still holds its own copy.
"""

from __future__ import annotations

from typing import Any

from pcnalloc.config import EnvConfig
from pcnalloc.envs.features import SLOT_ROWS, Evaluation, Evaluator
from pcnalloc.envs.layout import FIELD_WHERE
from pcnalloc.envs.state import NetworkState
from pcnalloc.network.paths import CandidateSet
from pcnalloc.traffic.catalog import Catalog

_GRANT = FIELD_WHERE["grant"][1]
_KBPS = FIELD_WHERE["kbps"][1]
_NEEDS = FIELD_WHERE["needs_preemption"][1]
_UTIL = FIELD_WHERE["util_after"][1]


class LiveEvaluation:
    """One request's evaluation at a time, in buffers every :meth:`run` overwrites.

    After :meth:`run`, :attr:`ev` holds the kernel's outputs (read them before the next run);
    :attr:`mask_A` and :attr:`feats_AF` are fresh copies of its mask and candidate table.

    Args:
        catalog: the service catalog.
        cfg: the env settings.
    """

    def __init__(self, catalog: Catalog, cfg: EnvConfig) -> None:
        self._catalog, self._cfg = catalog, cfg
        self._evaluator = Evaluator(catalog, cfg)
        self.ev: Evaluation = self._evaluator.evaluation
        self._K = cfg.k_paths
        self._cs: CandidateSet | None = None
        self._snap: Evaluation | None = None
        self.mask_A = self.ev.mask_A
        self.feats_AF = self.ev.feats_AF

    def run(self, state: NetworkState, cs: CandidateSet, cls: int, priority: int) -> Evaluation:
        """Evaluate a request of class ``cls`` at setup ``priority`` on ``cs``; returns
        :attr:`ev` (the live buffers)."""
        ev = self._evaluator.run(state, cs, cls, priority)
        self._cs = cs
        self._snap = None
        self.mask_A = ev.mask_A.copy()
        self.feats_AF = ev.feats_AF.copy()
        return ev

    def snapshot(self) -> Evaluation:
        """The last run as :func:`~pcnalloc.envs.features.evaluate` returns it: fresh tables
        and verdicts, slot and field rows as views of them, the candidate set's own
        ``has_backup_K``, and :attr:`mask_A` / :attr:`feats_AF` (the observation's arrays).
        Built once per run, on first request."""
        snap = self._snap
        if snap is None:
            assert self._cs is not None, "run() first"
            ev, K = self.ev, self._K
            tables = (ev.tables[0].copy(), ev.tables[1].copy(), ev.tables[2].copy())
            fb, fi, ff = tables
            slot = {k: tables[t][row, :K] for k, (t, row) in SLOT_ROWS.items()}
            snap = self._snap = Evaluation(
                latency_ms_K=slot["latency_ms_K"],
                hops_K=slot["hops_K"],
                residual_kbps_K=slot["residual_kbps_K"],
                residual_pre_kbps_K=slot["residual_pre_kbps_K"],
                min_trust_K=slot["min_trust_K"],
                route_ok_K=slot["route_ok_K"],
                has_backup_K=self._cs.has_backup_K,
                bound_ms=ev.bound_ms,
                grant_A=ff[_GRANT],
                kbps_A=fi[_KBPS],
                hard_AR=ev.hard_AR.copy(),
                mask_A=self.mask_A,
                needs_preempt_A=fb[_NEEDS],
                soft_AQ=ev.soft_AQ.copy(),
                util_after_A=ff[_UTIL],
                feats_AF=self.feats_AF,
                tables=tables,
            )
        return snap

    def __getstate__(self) -> dict[str, Any]:
        """Copies and pickles hold the buffers' contents: a copied view is no longer a view
        of the copied table, so :meth:`__setstate__` lays the buffers out afresh."""
        ev = self.ev
        return {
            "catalog": self._catalog,
            "cfg": self._cfg,
            "cs": self._cs,
            "snap": self._snap,
            "mask_A": self.mask_A,
            "feats_AF": self.feats_AF,
            "bound_ms": ev.bound_ms,
            "buffers": (*ev.tables, ev.hard_AR, ev.mask_A, ev.soft_AQ, ev.feats_AF),
        }

    def __setstate__(self, st: dict[str, Any]) -> None:
        self.__init__(st["catalog"], st["cfg"])  # type: ignore[misc]
        ev = self.ev
        for dst, src in zip(
            (*ev.tables, ev.hard_AR, ev.mask_A, ev.soft_AQ, ev.feats_AF), st["buffers"], strict=True
        ):
            dst[...] = src
        ev.bound_ms = st["bound_ms"]
        self._cs, self._snap = st["cs"], st["snap"]
        self.mask_A, self.feats_AF = st["mask_A"], st["feats_AF"]
