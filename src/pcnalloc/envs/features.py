"""Per-request candidate evaluation: hard-violation flags, action mask, soft costs, features.

The hot path of every decision. One compiled kernel (numba) walks the K candidate routes'
padded link arrays (sentinel link E ends a route) and fills every per-action output for the
K·L + 1 actions in a single pass, so a decision costs microseconds, not a hundred numpy calls.
The raw per-action quantities that rules test (:attr:`Evaluation.fields`) are derived lazily.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import numpy as np
from numba import njit

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

    Shapes: K slots, L grant levels, A = K·L + 1 actions (last = reject), R hard rules,
    Q soft costs, F candidate features.
    """

    latency_ms_K: np.ndarray
    hops_K: np.ndarray
    residual_kbps_K: np.ndarray
    residual_pre_kbps_K: np.ndarray
    min_trust_K: np.ndarray
    route_ok_K: np.ndarray
    has_backup_K: np.ndarray
    bound_ms: float
    grant_A: np.ndarray
    kbps_A: np.ndarray
    hard_AR: np.ndarray
    mask_A: np.ndarray
    needs_preempt_A: np.ndarray
    soft_AQ: np.ndarray
    util_after_A: np.ndarray
    feats_AF: np.ndarray

    @property
    def any_valid(self) -> bool:
        return bool(self.mask_A[:-1].any())

    def restricted(self, allowed_A: np.ndarray, violations_AR: np.ndarray) -> Evaluation:
        """A copy whose mask also forbids actions not in ``allowed_A`` (reject stays valid).

        Rules only ever tighten the physical mask: capacity, latency and protection stay
        enforced whatever a rule file says.
        """
        mask = self.mask_A & allowed_A.astype(np.int8)
        mask[-1] = 1
        feats = self.feats_AF.copy()
        feats[:, CANDIDATE_FEATURES.index("valid")] = mask
        out = replace(self, mask_A=mask, feats_AF=feats)
        object.__setattr__(out, "rule_violations_AR", violations_AR)
        return out

    @cached_property
    def fields(self) -> ActionFields:
        """Raw per-action quantities, each shape (A,), named in :data:`FIELDS`.

        A read-only mapping that builds each array on first access, so a rule set pays only
        for the fields its rules read (equal, value and dtype, to :meth:`fields_eager`).
        """
        return ActionFields(self)

    def fields_eager(self) -> dict[str, np.ndarray]:
        """Every field built at once (the reference for :class:`ActionFields`)."""
        L = (self.grant_A.shape[0] - 1) // self.latency_ms_K.shape[0]
        A = self.grant_A.shape[0]
        kb = self.kbps_A
        resid = _per_action(self.residual_kbps_K, L, 0)
        resid_pre = _per_action(self.residual_pre_kbps_K, L, 0)
        is_reject = np.arange(A) == A - 1
        return {
            "is_reject": is_reject,
            "present": _per_action(self.route_ok_K, L, False),
            "grant": self.grant_A,
            "kbps": kb,
            "latency_ms": _per_action(self.latency_ms_K, L, 0.0),
            "latency_over_bound": _per_action(self.latency_ms_K / self.bound_ms, L, 0.0),
            "residual_kbps": resid,
            "residual_with_preemption_kbps": resid_pre,
            "fits": (resid >= kb) | is_reject,
            "fits_with_preemption": (resid_pre >= kb) | is_reject,
            "needs_preemption": self.needs_preempt_A,
            "has_backup": _per_action(self.has_backup_K, L, False),
            "min_trust": _per_action(self.min_trust_K, L, 1.0),
            "util_after": self.util_after_A,
            "hops": _per_action(self.hops_K, L, 0),
        }


class ActionFields(Mapping):
    """:attr:`Evaluation.fields` as a lazy mapping: each array is built when first read.

    Args:
        ev: the evaluation the fields describe.
    """

    __slots__ = ("_L", "_ev", "_got", "_take")

    def __init__(self, ev: Evaluation) -> None:
        self._ev = ev
        K = ev.latency_ms_K.shape[0]
        self._L = (ev.grant_A.shape[0] - 1) // K
        self._got: dict[str, np.ndarray] = {}
        self._take = _slot_index(K, self._L)

    def _slots(self, x_K: np.ndarray, reject_value: object) -> np.ndarray:
        # same values and dtype as ``_per_action`` (the reject values never widen x_K)
        x_K1 = np.empty(x_K.shape[0] + 1, dtype=x_K.dtype)
        x_K1[:-1] = x_K
        x_K1[-1] = reject_value
        return x_K1[self._take]

    def _build(self, name: str) -> np.ndarray:
        ev, get = self._ev, self.__getitem__
        if name == "is_reject":
            A = ev.grant_A.shape[0]
            return np.arange(A) == A - 1
        if name == "present":
            return self._slots(ev.route_ok_K, False)
        if name == "grant":
            return ev.grant_A
        if name == "kbps":
            return ev.kbps_A
        if name == "latency_ms":
            return self._slots(ev.latency_ms_K, 0.0)
        if name == "latency_over_bound":
            return self._slots(ev.latency_ms_K / ev.bound_ms, 0.0)
        if name == "residual_kbps":
            return self._slots(ev.residual_kbps_K, 0)
        if name == "residual_with_preemption_kbps":
            return self._slots(ev.residual_pre_kbps_K, 0)
        if name == "fits":
            return (get("residual_kbps") >= ev.kbps_A) | get("is_reject")
        if name == "fits_with_preemption":
            return (get("residual_with_preemption_kbps") >= ev.kbps_A) | get("is_reject")
        if name == "needs_preemption":
            return ev.needs_preempt_A
        if name == "has_backup":
            return self._slots(ev.has_backup_K, False)
        if name == "min_trust":
            return self._slots(ev.min_trust_K, 1.0)
        if name == "util_after":
            return ev.util_after_A
        if name == "hops":
            return self._slots(ev.hops_K, 0)
        raise KeyError(name)

    def __getitem__(self, name: str) -> np.ndarray:
        got = self._got.get(name)
        if got is None:
            got = self._got[name] = self._build(name)
        return got

    def __iter__(self) -> Iterator[str]:
        return iter(FIELDS)

    def __len__(self) -> int:
        return len(FIELDS)

    def __contains__(self, name: object) -> bool:
        return name in FIELDS


@functools.lru_cache(maxsize=64)
def _slot_index(K: int, L: int) -> np.ndarray:
    """Index (K·L + 1,) from slot k to its actions k·L … k·L + L − 1, then the reject slot."""
    return np.repeat(np.arange(K + 1), [L] * K + [1])


def _per_action(x_K: np.ndarray, L: int, reject_value: object) -> np.ndarray:
    """Repeat a per-slot array over grant levels and append the reject action's value."""
    return np.append(np.repeat(x_K, L), reject_value)


@njit(cache=True, nogil=True)
def _kernel(
    cap_ES,
    used_ES,
    used_ESP,
    failed_E,
    trust_N,
    present_K,
    links_KH,
    nodes_KN,
    prop_K,
    hops_K,
    has_b_K,
    blinks_KB,
    bnodes_KN,
    bprop_K,
    s,
    prio,
    bound,
    bw_kbps,
    grant_L,
    protected,
    needs_trust,
    trust_thr,
    q0,
    ucap,
    knee,
    preempt,
    sentinel,
    lat_K,
    resid_K,
    rpre_K,
    trust_K,
    tot_hops_K,
    ok_K,
    hard_AR,
    mask_A,
    soft_AQ,
    feats_AF,
    grant_A,
    kbps_A,
    needs_A,
    util_A,
):  # pragma: no cover - compiled
    K = links_KH.shape[0]
    L = grant_L.shape[0]
    big = np.int64(1) << 60
    n_prio = used_ESP.shape[2]
    for k in range(K):
        lat_p = prop_K[k]
        lat_b = bprop_K[k]
        resid = big
        rpre = big
        capmin = big
        umax_p = 0.0
        umax_b = 0.0
        failed = False
        nb = 0
        for part in range(2):
            arr = links_KH if part == 0 else blinks_KB
            if part == 1 and not has_b_K[k]:
                break
            for h in range(arr.shape[1]):
                e = arr[k, h]
                if e == sentinel:
                    break
                c = cap_ES[e, s]
                u = used_ES[e, s]
                frac = u / c
                uq = min(frac, ucap)
                if part == 0:
                    lat_p += q0 * uq / (1.0 - uq)
                    umax_p = max(umax_p, frac)
                else:
                    lat_b += q0 * uq / (1.0 - uq)
                    umax_b = max(umax_b, frac)
                    nb += 1
                if failed_E[e]:
                    failed = True
                    free = 0
                    free_pre = 0
                else:
                    free = c - u
                    free_pre = free
                    if preempt:
                        for p in range(prio + 1, n_prio):
                            free_pre += used_ESP[e, s, p]
                resid = min(resid, free)
                rpre = min(rpre, free_pre)
                capmin = min(capmin, c)
        trust = 1.0
        for h in range(nodes_KN.shape[1]):
            trust = min(trust, trust_N[nodes_KN[k, h]])
        if has_b_K[k]:
            for h in range(bnodes_KN.shape[1]):
                trust = min(trust, trust_N[bnodes_KN[k, h]])
        latency = max(lat_p, lat_b) if has_b_K[k] else lat_p
        ok = present_K[k] and not failed
        lat_K[k] = latency
        resid_K[k] = resid
        rpre_K[k] = rpre
        trust_K[k] = trust
        tot_hops_K[k] = hops_K[k] + nb
        ok_K[k] = ok
        capf = max(float(capmin), 1.0)
        for l in range(L):  # noqa: E741 - l is the grant slot throughout the design
            a = k * L + l
            g = grant_L[l]
            kb = np.int64(np.round(bw_kbps * g))
            fits = resid >= kb
            fits_pre = rpre >= kb
            hard_AR[a, 0] = not ok
            hard_AR[a, 1] = g <= 0.0
            hard_AR[a, 2] = not fits_pre
            hard_AR[a, 3] = latency > bound
            hard_AR[a, 4] = protected and not has_b_K[k]
            hard_AR[a, 5] = needs_trust and trust < trust_thr
            valid = True
            for r in range(hard_AR.shape[1]):
                if hard_AR[a, r]:
                    valid = False
            mask_A[a] = 1 if valid else 0
            needs = (not fits) and fits_pre
            ua = max(umax_p + kb / capf, umax_b)
            grant_A[a] = g
            kbps_A[a] = kb
            needs_A[a] = needs
            util_A[a] = ua
            soft_AQ[a, 0] = max(0.0, ua - knee)
            soft_AQ[a, 1] = max(0.0, latency / bound - 0.8)
            soft_AQ[a, 2] = (1.0 - g) if g > 0.0 else 0.0
            soft_AQ[a, 3] = 1.0 if needs else 0.0
            for f in range(feats_AF.shape[1]):
                feats_AF[a, f] = 0.0
            if ok:
                feats_AF[a, 0] = min(latency / bound, 5.0)
                feats_AF[a, 1] = tot_hops_K[k] / 10.0
                feats_AF[a, 2] = min(max((resid - kb) / capf, -1.0), 1.0)
                feats_AF[a, 3] = min(ua, 1.5)
                feats_AF[a, 4] = trust
                feats_AF[a, 5] = 1.0 if has_b_K[k] else 0.0
                feats_AF[a, 6] = g
                feats_AF[a, 7] = 1.0 if needs else 0.0
                feats_AF[a, 8] = 1.0 if valid else 0.0
                feats_AF[a, 10] = min(kb / capf, 1.0)
    a = K * L
    for r in range(hard_AR.shape[1]):
        hard_AR[a, r] = False
    mask_A[a] = 1
    grant_A[a] = 0.0
    kbps_A[a] = 0
    needs_A[a] = False
    util_A[a] = 0.0
    for q in range(soft_AQ.shape[1]):
        soft_AQ[a, q] = 0.0
    for f in range(feats_AF.shape[1]):
        feats_AF[a, f] = 0.0
    feats_AF[a, 8] = 1.0
    feats_AF[a, 9] = 1.0


def evaluate(
    state: NetworkState,
    cs: CandidateSet,
    req: Request,
    catalog: Catalog,
    cfg: EnvConfig,
    priority: int | None = None,
) -> Evaluation:
    """Evaluate every (path, grant) action of ``req`` on the current ``state``.

    Args:
        priority: setup priority of the request (default: its class's catalog priority);
            only flows of strictly lower priority count as pre-emptible.
    """
    c = req.cls
    K, L = cfg.k_paths, cfg.grant_levels
    A = K * L + 1
    ncfg = cfg.network
    bound = float(catalog.max_latency_ms_C[c])
    lat_K = np.empty(K)
    resid_K = np.empty(K, dtype=np.int64)
    rpre_K = np.empty(K, dtype=np.int64)
    trust_K = np.empty(K)
    hops_K = np.empty(K, dtype=np.int64)
    ok_K = np.empty(K, dtype=np.bool_)
    hard = np.empty((A, len(HARD_RULES)), dtype=np.bool_)
    mask = np.empty(A, dtype=np.int8)
    soft = np.empty((A, len(SOFT_COSTS)))
    feats = np.empty((A, len(CANDIDATE_FEATURES)), dtype=np.float32)
    grant = np.empty(A)
    kbps = np.empty(A, dtype=np.int64)
    needs = np.empty(A, dtype=np.bool_)
    util = np.empty(A)
    _kernel(
        state.cap_ES1,
        state.used_ES1,
        state.used_ESP1,
        state.failed_E1,
        state.trust_N1,
        cs.present_K,
        cs.links_KH,
        cs.nodes_KN,
        cs.prop_ms_K,
        cs.hops_K,
        cs.has_backup_K,
        cs.backup_links_KB,
        cs.backup_nodes_KN,
        cs.backup_prop_ms_K,
        int(catalog.slice_C[c]),
        int(catalog.priority_C[c]) if priority is None else int(priority),
        bound,
        float(catalog.bandwidth_kbps_C[c]),
        catalog.grant_CL[c, :L],
        bool(catalog.protected_C[c]),
        bool(catalog.zone_C[c] < ZONE_RT_NRT),
        float(cfg.trust_threshold),
        ncfg.queue_q0_ms,
        ncfg.util_cap,
        cfg.reward.balance_knee,
        bool(cfg.preemption),
        state.cap_ES1.shape[0] - 1,
        lat_K,
        resid_K,
        rpre_K,
        trust_K,
        hops_K,
        ok_K,
        hard,
        mask,
        soft,
        feats,
        grant,
        kbps,
        needs,
        util,
    )
    return Evaluation(
        latency_ms_K=lat_K,
        hops_K=hops_K,
        residual_kbps_K=resid_K,
        residual_pre_kbps_K=rpre_K,
        min_trust_K=trust_K,
        route_ok_K=ok_K,
        has_backup_K=cs.has_backup_K,
        bound_ms=bound,
        grant_A=grant,
        kbps_A=kbps,
        hard_AR=hard,
        mask_A=mask,
        needs_preempt_A=needs,
        soft_AQ=soft,
        util_after_A=util,
        feats_AF=feats,
    )


def priority_table(engine: Any, cfg: EnvConfig) -> np.ndarray:
    """Setup priority per (emergency active?, class), shape (2, C), from a rule engine."""
    pr = engine.priorities
    return np.stack([pr.base_C, pr.emergency_C if cfg.emergency_priorities else pr.base_C])


def evaluate_request(
    state: NetworkState,
    cs: CandidateSet,
    req: Request,
    catalog: Catalog,
    cfg: EnvConfig,
    *,
    engine: Any,
    prio_table_2C: np.ndarray,
    emergency_R: np.ndarray,
) -> tuple[Evaluation, int, int, bool]:
    """The one request evaluation the env and the edge agent share.

    Applies the emergency priority of the request's region, evaluates every action, and —
    when ``cfg.rules`` names a rule file — lets the engine's critical/hard rules tighten the
    mask.

    Returns:
        (evaluation, setup priority, region of the source site, emergency active there).
    """
    region = int(state.net.site_region[req.src])
    emergency = bool(emergency_R[region] > 0)
    prio = int(prio_table_2C[int(emergency), req.cls])
    ev = evaluate(state, cs, req, catalog, cfg, priority=prio)
    if cfg.rules is not None:
        from pcnalloc.rules.engine import RequestContext

        v = engine.check(ev.fields, RequestContext(int(req.cls), region, emergency))
        ev = ev.restricted(~v.forbidden_A, v.violations_AR)
    return ev, prio, region, emergency
