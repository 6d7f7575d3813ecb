"""MILP matrix construction for the offline hindsight bound: variables and capacity rows.

One binary variable per admissible (request j, candidate slot k, grant level l) of a recorded
:class:`~pcnalloc.baselines.offline.Window`; sparse capacity rows A·x ≤ b per (pool, arrival
instant). Solving them is :func:`pcnalloc.baselines.offline.solve_window`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from pcnalloc.envs.features import ZONE_RT_NRT

if TYPE_CHECKING:
    from pcnalloc.baselines.offline import Window


@dataclass(frozen=True, eq=False)
class MilpVars:
    """The MILP's variables: one per admissible (request j, slot k, level l); V in all."""

    req_V: np.ndarray
    action_V: np.ndarray
    kbps_V: np.ndarray
    value_V: np.ndarray
    res_ptr_V: np.ndarray  # CSR pointers into res_U (pools each variable's routes use)
    res_U: np.ndarray


def milp_variables(w: Window) -> MilpVars:
    """Enumerate the admissible (request, path, grant) triples and the pools they consume."""
    cfg, cat, L = w.config, w.catalog, w.config.grant_levels
    E, S = w.cap_kbps_ES.shape
    times = np.array([r.time_s for r in w.requests])
    warm_now = w.warm_usage_kbps(times) if len(times) else np.zeros((0, E, S), np.int64)
    req, act, kbps, val, ptr, res = [], [], [], [], [0], []
    for j, (r, cs) in enumerate(zip(w.requests, w.candidates, strict=True)):
        c, s = r.cls, int(cat.slice_C[r.cls])
        lat = np.where(cs.has_backup_K, np.maximum(cs.prop_ms_K, cs.backup_prop_ms_K), cs.prop_ms_K)
        ok_K = cs.present_K & (lat <= cat.max_latency_ms_C[c])
        if cat.protected_C[c]:
            ok_K &= cs.has_backup_K
        if cat.zone_C[c] < ZONE_RT_NRT:
            trust = np.minimum(
                w.trust_N1[cs.nodes_KN].min(axis=1), w.trust_N1[cs.backup_nodes_KN].min(axis=1)
            )
            ok_K &= trust >= cfg.trust_threshold
        free_E = w.cap_kbps_ES[:, s] - warm_now[j, :, s]
        for k in np.flatnonzero(ok_K):
            links = cs.links_KH[k][cs.links_KH[k] < E]
            if cs.has_backup_K[k]:
                links = np.concatenate([links, cs.backup_links_KB[k][cs.backup_links_KB[k] < E]])
            bottleneck = free_E[links].min() if links.size else 0
            for lvl in range(L):
                g = float(cat.grant_CL[c, lvl])
                kb = round(cat.bandwidth_kbps_C[c] * g)
                if g <= 0 or kb > bottleneck:  # never fits, even in an empty window
                    continue
                req.append(j)
                act.append(int(k) * L + lvl)
                kbps.append(kb)
                val.append(float(cat.value_C[c]) * g)
                res.extend((links * S + s).tolist())
                ptr.append(len(res))
    return MilpVars(
        req_V=np.array(req, dtype=np.int64),
        action_V=np.array(act, dtype=np.int64),
        kbps_V=np.array(kbps, dtype=np.int64),
        value_V=np.array(val),
        res_ptr_V=np.array(ptr, dtype=np.int64),
        res_U=np.array(res, dtype=np.int64),
    )


def capacity_rows(w: Window, v: MilpVars) -> tuple[sp.csr_matrix, np.ndarray]:
    """Sparse capacity constraints A·x ≤ b over (pool, arrival instant) rows."""
    S = w.cap_kbps_ES.shape[1]
    times = np.array([r.time_s for r in w.requests])
    ends = times + np.array([r.holding_s for r in w.requests])
    n_u = np.diff(v.res_ptr_V)
    var_U = np.repeat(np.arange(v.req_V.size), n_u)
    order = np.lexsort((v.req_V[var_U], v.res_U))
    res_U, var_U = v.res_U[order], var_U[order]
    bounds = np.flatnonzero(np.diff(res_U)) + 1
    rows, cols, data, rhs = [], [], [], []
    n_rows = 0
    for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, res_U.size], strict=True):
        if hi <= lo:
            continue
        r = int(res_U[lo])
        e, s = divmod(r, S)
        vars_ = var_U[lo:hi]
        req_u = v.req_V[vars_]
        inst = np.unique(req_u)  # arrival instants of requests that can use this pool
        t_I = times[inst]
        warm = (w.warm_end_s_M > t_I[:, None]) & (w.warm_link_M == e) & (w.warm_slice_M == s)
        b_I = w.cap_kbps_ES[e, s] - (warm * w.warm_kbps_M).sum(axis=1)
        act_IU = (req_u[None, :] <= inst[:, None]) & (ends[req_u][None, :] > t_I[:, None])
        # Row i is implied by row i+1 when nothing on this pool departs in between and the
        # warm residual does not grow: keep only rows where either happens (and the last).
        keep = np.ones(inst.size, dtype=bool)
        if inst.size > 1:
            departs = (act_IU[:-1] & ~act_IU[1:]).any(axis=1)
            keep[:-1] = departs | (b_I[1:] > b_I[:-1])
        ii, uu = np.nonzero(act_IU[keep])
        rows.append(ii + n_rows)
        cols.append(vars_[uu])
        data.append(v.kbps_V[vars_[uu]])
        rhs.append(b_I[keep])
        n_rows += int(keep.sum())
    A = sp.csr_matrix(
        (
            np.concatenate(data or [[]]).astype(float),
            (np.concatenate(rows or [[]]).astype(np.int64), np.concatenate(cols or [[]])),
        ),
        shape=(n_rows, v.req_V.size),
    )
    return A, np.concatenate(rhs or [[]]).astype(float)
