"""Per-request candidate evaluation: hard-violation flags, action mask, soft costs, features.

Everything here is numpy over the K candidate slots and L grant levels of one request; the
per-link state is gathered through the padded path arrays (sentinel link E), so no Python
loop runs over links or actions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pcnalloc.config import EnvConfig
from pcnalloc.envs.state import NetworkState
from pcnalloc.network.paths import CandidateSet
from pcnalloc.traffic.catalog import Catalog
from pcnalloc.traffic.generator import Request

HARD_RULES: tuple[str, ...] = (
    "no_route",
    "grant_level",
    "capacity",
    "latency",
    "protection",
    "trust",
)
"""Hard constraints the environment enforces (DESIGN §7 default rules). Slice isolation holds
by construction: a flow only ever reserves in its own slice's pool."""

SOFT_COSTS: tuple[str, ...] = (
    "util_above_knee",
    "latency_margin",
    "grant_below_request",
    "preemption",
)
"""Soft-violation magnitudes c(s, a) ≥ 0 recorded for distillation."""

CANDIDATE_FEATURES: tuple[str, ...] = (
    "latency_over_bound",
    "hops_div10",
    "residual_after_frac",
    "max_util_after",
    "min_trust",
    "protection_available",
    "grant_fraction",
    "needs_preemption",
    "valid",
    "is_reject",
    "size_frac",
)
FIELDS: tuple[str, ...] = (
    "is_reject",
    "present",
    "grant",
    "kbps",
    "latency_ms",
    "latency_over_bound",
    "residual_kbps",
    "residual_with_preemption_kbps",
    "fits",
    "fits_with_preemption",
    "needs_preemption",
    "has_backup",
    "min_trust",
    "util_after",
    "hops",
)
"""Names of :attr:`Evaluation.fields`, the per-action quantities rules may test."""
ZONE_RT_NRT = 2  # zone indices < 2 (I, II) are held to the trust rule


@dataclass(frozen=True, eq=False)
class Evaluation:
    """Everything the environment and policies need about one request's actions.

    Shapes: K slots, A = K·L + 1 actions (last = reject), R hard rules, Q soft costs,
    F candidate features.
    """

    latency_ms_K: np.ndarray
    hops_K: np.ndarray
    grant_A: np.ndarray
    kbps_A: np.ndarray
    hard_AR: np.ndarray
    mask_A: np.ndarray
    needs_preempt_A: np.ndarray
    soft_AQ: np.ndarray
    util_after_A: np.ndarray
    feats_AF: np.ndarray
    fields: dict[str, np.ndarray]
    """Raw per-action quantities, each shape (A,), named for rule predicates (see FIELDS)."""

    @property
    def any_valid(self) -> bool:
        return bool(self.mask_A[:-1].any())


def queue_ms_E1(state: NetworkState, s: int, q0_ms: float, util_cap: float) -> np.ndarray:
    """Queueing delay per link for slice ``s``: q0·u/(1−u), u capped (sentinel → 0)."""
    u = np.minimum(state.used_ES1[:, s] / state.cap_ES1[:, s], util_cap)
    return q0_ms * u / (1.0 - u)


def evaluate(
    state: NetworkState, cs: CandidateSet, req: Request, catalog: Catalog, cfg: EnvConfig
) -> Evaluation:
    """Evaluate every (path, grant) action of ``req`` on the current ``state``."""
    c = req.cls
    s = int(catalog.slice_C[c])
    K, L = cfg.k_paths, cfg.grant_levels
    ncfg = cfg.network
    prio = int(catalog.priority_C[c])
    bound = float(catalog.max_latency_ms_C[c])

    cap = state.cap_ES1[:, s]
    used = state.used_ES1[:, s]
    failed = state.failed_E1
    q = queue_ms_E1(state, s, ncfg.queue_q0_ms, ncfg.util_cap)
    # Route-level quantities over primary (H) and backup (B) hops.
    lp, lb = cs.links_KH, cs.backup_links_KB
    lat_p = cs.prop_ms_K + q[lp].sum(axis=1)
    lat_b = cs.backup_prop_ms_K + q[lb].sum(axis=1)
    latency = np.where(cs.has_backup_K, np.maximum(lat_p, lat_b), lat_p)
    free = np.where(failed, 0, cap - used)
    resid = np.minimum(free[lp].min(axis=1), free[lb].min(axis=1))
    lower = state.used_ESP1[:, s, prio + 1 :].sum(axis=1) if cfg.preemption else 0 * used
    free_pre = free + np.where(failed, 0, lower)
    resid_pre = np.minimum(free_pre[lp].min(axis=1), free_pre[lb].min(axis=1))
    # Bottleneck pool capacity and the utilisation of the busiest link after the grant.
    cap_min = np.minimum(cap[lp].min(axis=1), cap[lb].min(axis=1)).astype(float)
    used_max_p = (used[lp] / cap[lp]).max(axis=1)
    used_max_b = (used[lb] / cap[lb]).max(axis=1)
    route_failed = failed[lp].any(axis=1) | failed[lb].any(axis=1)
    trust = np.minimum(
        state.trust_N1[cs.nodes_KN].min(axis=1), state.trust_N1[cs.backup_nodes_KN].min(axis=1)
    )
    hops = cs.hops_K + np.where(cs.has_backup_K, (lb < state.cap_ES1.shape[0] - 1).sum(axis=1), 0)

    grant_L = catalog.grant_CL[c, :L]
    kbps_L = np.round(catalog.bandwidth_kbps_C[c] * grant_L).astype(np.int64)
    # Broadcast slots × grant levels → actions (k-major: a = k·L + l).
    kb = np.broadcast_to(kbps_L, (K, L))
    fits = resid[:, None] >= kb
    fits_pre = resid_pre[:, None] >= kb
    present = (cs.present_K & ~route_failed)[:, None]
    hard = np.zeros((K, L, len(HARD_RULES)), dtype=bool)
    hard[..., 0] = ~present
    hard[..., 1] = (grant_L <= 0)[None, :]
    hard[..., 2] = ~fits_pre
    hard[..., 3] = (latency > bound)[:, None]
    hard[..., 4] = (bool(catalog.protected_C[c]) & ~cs.has_backup_K)[:, None]
    hard[..., 5] = ((catalog.zone_C[c] < ZONE_RT_NRT) & (trust < cfg.trust_threshold))[:, None]
    needs_pre = (~fits & fits_pre)[..., None][..., 0]

    util_after = (used_max_p[:, None]) + kb / np.maximum(cap_min[:, None], 1.0)
    util_after = np.maximum(util_after, used_max_b[:, None])
    soft = np.zeros((K, L, len(SOFT_COSTS)))
    soft[..., 0] = np.maximum(0.0, util_after - cfg.reward.balance_knee)
    soft[..., 1] = np.maximum(0.0, latency / bound - 0.8)[:, None]
    soft[..., 2] = (1.0 - grant_L)[None, :] * (grant_L > 0)[None, :]
    soft[..., 3] = needs_pre.astype(float)

    A = K * L + 1
    hard_AR = np.zeros((A, len(HARD_RULES)), dtype=bool)
    hard_AR[:-1] = hard.reshape(K * L, -1)
    mask = np.ones(A, dtype=np.int8)
    mask[:-1] = ~hard_AR[:-1].any(axis=1)
    soft_AQ = np.zeros((A, len(SOFT_COSTS)))
    soft_AQ[:-1] = soft.reshape(K * L, -1)

    feats = np.zeros((A, len(CANDIDATE_FEATURES)), dtype=np.float32)
    f = feats[:-1].reshape(K, L, -1)
    f[..., 0] = np.minimum(latency / bound, 5.0)[:, None]
    f[..., 1] = (hops / 10.0)[:, None]
    f[..., 2] = np.clip((resid[:, None] - kb) / np.maximum(cap_min[:, None], 1.0), -1.0, 1.0)
    f[..., 3] = np.minimum(util_after, 1.5)
    f[..., 4] = trust[:, None]
    f[..., 5] = cs.has_backup_K[:, None]
    f[..., 6] = grant_L[None, :]
    f[..., 7] = needs_pre
    f[..., 8] = mask[:-1].reshape(K, L)
    f[..., 10] = np.minimum(kb / np.maximum(cap_min[:, None], 1.0), 1.0)
    f[~present[:, 0]] = 0.0
    feats[:-1] = f.reshape(K * L, -1)
    feats[-1, 8] = 1.0
    feats[-1, 9] = 1.0

    grant_A = np.zeros(A)
    grant_A[:-1] = np.broadcast_to(grant_L, (K, L)).ravel()
    kbps_A = np.zeros(A, dtype=np.int64)
    kbps_A[:-1] = kb.ravel()
    needs_A = np.zeros(A, dtype=bool)
    needs_A[:-1] = needs_pre.ravel()
    ua = np.zeros(A)
    ua[:-1] = util_after.ravel()
    fields = {
        "is_reject": np.arange(A) == A - 1,
        "present": _per_action(present[:, 0], L, False),
        "grant": grant_A,
        "kbps": kbps_A,
        "latency_ms": _per_action(latency, L, 0.0),
        "latency_over_bound": _per_action(latency / bound, L, 0.0),
        "residual_kbps": _per_action(resid, L, 0),
        "residual_with_preemption_kbps": _per_action(resid_pre, L, 0),
        "fits": np.append(fits.ravel(), True),
        "fits_with_preemption": np.append(fits_pre.ravel(), True),
        "needs_preemption": needs_A,
        "has_backup": _per_action(cs.has_backup_K, L, False),
        "min_trust": _per_action(trust, L, 1.0),
        "util_after": ua,
        "hops": _per_action(hops, L, 0),
    }
    return Evaluation(
        latency_ms_K=latency,
        hops_K=hops,
        grant_A=grant_A,
        kbps_A=kbps_A,
        hard_AR=hard_AR,
        mask_A=mask,
        needs_preempt_A=needs_A,
        soft_AQ=soft_AQ,
        util_after_A=ua,
        feats_AF=feats,
        fields=fields,
    )


def _per_action(x_K: np.ndarray, L: int, reject_value: object) -> np.ndarray:
    """Repeat a per-slot array over grant levels and append the reject action's value."""
    return np.append(np.repeat(x_K, L), reject_value)
