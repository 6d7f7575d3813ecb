"""Per-request candidate evaluation: hard-violation flags, action mask, soft costs, features.

The hot path of every decision. One compiled kernel (numba) walks the K candidate routes'
padded link arrays (sentinel link E ends a route) and fills every per-action output for the
K·L + 1 actions in a single pass, so a decision costs microseconds, not a hundred numpy calls.
The kernel also writes the raw per-action quantities that rules test (:attr:`Evaluation.fields`)
into one matrix per dtype, so nothing is gathered or appended per decision. Every column it
writes is placed by name from the declared layout (:mod:`pcnalloc.envs.layout`): the kernel
receives the positions as index arrays, so a layout change can never leave a stale compiled
kernel writing old positions.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any, NamedTuple

import numpy as np
from numba import njit

from pcnalloc.config import EnvConfig
from pcnalloc.envs.layout import (
    CANDIDATE_FEATURES,
    FIELD_ROWS,
    FIELD_TABLE_SIZES,
    FIELD_TABLES,
    FIELD_WHERE,
    FIELDS,
)
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

_KERNEL_CANDIDATE_COLUMNS = (
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
CANDIDATE_COLS = np.array([CANDIDATE_FEATURES.index(c) for c in _KERNEL_CANDIDATE_COLUMNS])
"""Where the kernel writes its candidate quantities (slot i → column), from the layout."""
FIELD_ROWS_ARR = np.array(FIELD_ROWS, dtype=np.int64)
"""Row of each field (in :data:`FIELDS` order) in its dtype table, for the kernel."""
_DTYPES = {"bool": np.bool_, "int64": np.int64, "float64": np.float64}
ZONE_RT_NRT = 2  # zone indices < 2 (I, II) are held to the trust rule


@dataclass(eq=False)
class Evaluation:
    """Everything the environment and policies need about one request's actions.

    Shapes: K slots, L grant levels, A = K·L + 1 actions (last = reject), R hard rules,
    Q soft costs, F candidate features. ``tables`` holds the per-action fields as one matrix
    per dtype of :data:`~pcnalloc.envs.layout.FIELD_TABLES` (rows placed by
    :data:`~pcnalloc.envs.layout.FIELD_WHERE`); ``grant_A``, ``kbps_A``, ``needs_preempt_A``
    and ``util_after_A`` are rows of them. An edge agent reuses one evaluation's buffers for
    every decision (the next decision overwrites them).
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
    tables: tuple[np.ndarray, ...] = ()

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
        out.rule_violations_AR = violations_AR  # type: ignore[attr-defined]
        return out

    @cached_property
    def fields(self) -> ActionFields:
        """Raw per-action quantities, each shape (A,), named in :data:`FIELDS`.

        A read-only mapping over the kernel's field tables (equal, value and dtype, to
        :meth:`fields_eager`); each name resolves to its table row once.
        """
        return ActionFields(self)

    def fields_eager(self) -> dict[str, np.ndarray]:
        """Every field rebuilt from the per-slot arrays (the reference for :attr:`fields`)."""
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
    """:attr:`Evaluation.fields`: the kernel's field tables read by name (row views).

    Args:
        ev: the evaluation the fields describe.
    """

    __slots__ = ("_got", "_tables")

    def __init__(self, ev: Evaluation) -> None:
        self._tables = ev.tables
        self._got: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        got = self._got.get(name)
        if got is None:
            t, row = FIELD_WHERE[name]  # KeyError for an unknown name
            got = self._got[name] = self._tables[t][row]
        return got

    def __iter__(self) -> Iterator[str]:
        return iter(FIELDS)

    def __len__(self) -> int:
        return len(FIELDS)

    def __contains__(self, name: object) -> bool:
        return name in FIELD_WHERE


def field_tables(A: int) -> tuple[np.ndarray, ...]:
    """Fresh (N_dtype, A) field tables, one per dtype of :data:`FIELD_TABLES`."""
    return tuple(
        np.empty((n, A), dtype=_DTYPES[t])
        for n, t in zip(FIELD_TABLE_SIZES, FIELD_TABLES, strict=True)
    )


def _per_action(x_K: np.ndarray, L: int, reject_value: object) -> np.ndarray:
    """Repeat a per-slot array over grant levels and append the reject action's value."""
    return np.append(np.repeat(x_K, L), reject_value)


# Field slots of the kernel, in FIELDS order (positions into FIELD_ROWS_ARR).
_F_IS_REJECT, _F_PRESENT, _F_GRANT, _F_KBPS, _F_LAT, _F_LOB, _F_RES, _F_RPRE = range(8)
_F_FITS, _F_FITS_PRE, _F_NEEDS, _F_BACKUP, _F_TRUST, _F_UTIL, _F_HOPS = range(8, 15)
assert FIELDS.index("hops") == _F_HOPS and FIELDS.index("fits") == _F_FITS


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
    cc,
    fr,
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
    fb_NA,
    fi_NA,
    ff_NA,
):  # pragma: no cover - compiled
    """One pass over the K routes: per-slot quantities, hard flags, mask, soft costs, the
    candidate table (column ``cc[i]`` for kernel slot i) and the field tables (row ``fr[j]``
    of its dtype's table for field j of :data:`FIELDS`)."""
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
            fb_NA[fr[_F_IS_REJECT], a] = False
            fb_NA[fr[_F_PRESENT], a] = ok
            ff_NA[fr[_F_GRANT], a] = g
            fi_NA[fr[_F_KBPS], a] = kb
            ff_NA[fr[_F_LAT], a] = latency
            ff_NA[fr[_F_LOB], a] = latency / bound
            fi_NA[fr[_F_RES], a] = resid
            fi_NA[fr[_F_RPRE], a] = rpre
            fb_NA[fr[_F_FITS], a] = fits
            fb_NA[fr[_F_FITS_PRE], a] = fits_pre
            fb_NA[fr[_F_NEEDS], a] = needs
            fb_NA[fr[_F_BACKUP], a] = has_b_K[k]
            ff_NA[fr[_F_TRUST], a] = trust
            ff_NA[fr[_F_UTIL], a] = ua
            fi_NA[fr[_F_HOPS], a] = hops_K[k] + nb
            soft_AQ[a, 0] = max(0.0, ua - knee)
            soft_AQ[a, 1] = max(0.0, latency / bound - 0.8)
            soft_AQ[a, 2] = (1.0 - g) if g > 0.0 else 0.0
            soft_AQ[a, 3] = 1.0 if needs else 0.0
            for f in range(feats_AF.shape[1]):
                feats_AF[a, f] = 0.0
            if ok:
                feats_AF[a, cc[0]] = min(latency / bound, 5.0)
                feats_AF[a, cc[1]] = tot_hops_K[k] / 10.0
                feats_AF[a, cc[2]] = min(max((resid - kb) / capf, -1.0), 1.0)
                feats_AF[a, cc[3]] = min(ua, 1.5)
                feats_AF[a, cc[4]] = trust
                feats_AF[a, cc[5]] = 1.0 if has_b_K[k] else 0.0
                feats_AF[a, cc[6]] = g
                feats_AF[a, cc[7]] = 1.0 if needs else 0.0
                feats_AF[a, cc[8]] = 1.0 if valid else 0.0
                feats_AF[a, cc[10]] = min(kb / capf, 1.0)
    a = K * L
    for r in range(hard_AR.shape[1]):
        hard_AR[a, r] = False
    mask_A[a] = 1
    for j in range(fb_NA.shape[0]):
        fb_NA[j, a] = False
    for j in range(fi_NA.shape[0]):
        fi_NA[j, a] = 0
    for j in range(ff_NA.shape[0]):
        ff_NA[j, a] = 0.0
    fb_NA[fr[_F_IS_REJECT], a] = True
    fb_NA[fr[_F_FITS], a] = True
    fb_NA[fr[_F_FITS_PRE], a] = True
    ff_NA[fr[_F_TRUST], a] = 1.0
    for q in range(soft_AQ.shape[1]):
        soft_AQ[a, q] = 0.0
    for f in range(feats_AF.shape[1]):
        feats_AF[a, f] = 0.0
    feats_AF[a, cc[8]] = 1.0
    feats_AF[a, cc[9]] = 1.0


class ClassParams(NamedTuple):
    """Per-class constants of the kernel call (prepared once per catalog and env config)."""

    slice: int
    priority: int
    bound_ms: float
    bandwidth_kbps: float
    grant_L: np.ndarray
    protected: bool
    needs_trust: bool


@functools.lru_cache(maxsize=32)
def _class_params(catalog: Catalog, L: int) -> tuple[ClassParams, ...]:
    return tuple(
        ClassParams(
            int(catalog.slice_C[c]),
            int(catalog.priority_C[c]),
            float(catalog.max_latency_ms_C[c]),
            float(catalog.bandwidth_kbps_C[c]),
            np.ascontiguousarray(catalog.grant_CL[c, :L]),
            bool(catalog.protected_C[c]),
            bool(catalog.zone_C[c] < ZONE_RT_NRT),
        )
        for c in range(catalog.n_classes)
    )


class Evaluator:
    """Evaluates requests into buffers allocated once (the edge agent's hot path).

    ``evaluation`` is one :class:`Evaluation` whose arrays every :meth:`run` overwrites; its
    candidate table may be a view into the caller's model input (``feats_AF``), so the
    kernel writes the candidate block of the compact vector in place.

    Args:
        catalog: the service catalog.
        cfg: the env settings (K, L, pre-emption, trust threshold, queueing, knee).
        feats_AF: float32 (A, F) buffer for the candidate table (default: a new one).
    """

    def __init__(self, catalog: Catalog, cfg: EnvConfig, feats_AF: np.ndarray | None = None):
        K, L = cfg.k_paths, cfg.grant_levels
        A = K * L + 1
        self.catalog, self.cfg = catalog, cfg
        self._cls = _class_params(catalog, L)
        ncfg = cfg.network
        self._scal = (
            float(cfg.trust_threshold),
            ncfg.queue_q0_ms,
            ncfg.util_cap,
            cfg.reward.balance_knee,
            bool(cfg.preemption),
        )
        if feats_AF is None:
            feats_AF = np.empty((A, len(CANDIDATE_FEATURES)), dtype=np.float32)
        tables = field_tables(A)
        fb, fi, ff = tables
        w = FIELD_WHERE
        self.evaluation = Evaluation(
            latency_ms_K=np.empty(K),
            hops_K=np.empty(K, dtype=np.int64),
            residual_kbps_K=np.empty(K, dtype=np.int64),
            residual_pre_kbps_K=np.empty(K, dtype=np.int64),
            min_trust_K=np.empty(K),
            route_ok_K=np.empty(K, dtype=np.bool_),
            has_backup_K=np.zeros(K, dtype=np.bool_),
            bound_ms=1.0,
            grant_A=ff[w["grant"][1]],
            kbps_A=fi[w["kbps"][1]],
            hard_AR=np.empty((A, len(HARD_RULES)), dtype=np.bool_),
            mask_A=np.empty(A, dtype=np.int8),
            needs_preempt_A=fb[w["needs_preemption"][1]],
            soft_AQ=np.empty((A, len(SOFT_COSTS))),
            util_after_A=ff[w["util_after"][1]],
            feats_AF=feats_AF,
            tables=tables,
        )

    def run(self, state: NetworkState, cs: CandidateSet, cls: int, priority: int) -> Evaluation:
        """Evaluate a request of class ``cls`` at setup ``priority`` into :attr:`evaluation`."""
        ev = self.evaluation
        p = self._cls[cls]
        ev.bound_ms = p.bound_ms
        ev.has_backup_K[:] = cs.has_backup_K
        _run_kernel(state, cs, p, priority, self._scal, ev)
        return ev


def _run_kernel(
    state: NetworkState,
    cs: CandidateSet,
    p: ClassParams,
    priority: int,
    scal: tuple[float, float, float, float, bool],
    ev: Evaluation,
) -> None:
    fb, fi, ff = ev.tables
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
        p.slice,
        priority,
        p.bound_ms,
        p.bandwidth_kbps,
        p.grant_L,
        p.protected,
        p.needs_trust,
        scal[0],
        scal[1],
        scal[2],
        scal[3],
        scal[4],
        state.cap_ES1.shape[0] - 1,
        CANDIDATE_COLS,
        FIELD_ROWS_ARR,
        ev.latency_ms_K,
        ev.residual_kbps_K,
        ev.residual_pre_kbps_K,
        ev.min_trust_K,
        ev.hops_K,
        ev.route_ok_K,
        ev.hard_AR,
        ev.mask_A,
        ev.soft_AQ,
        ev.feats_AF,
        fb,
        fi,
        ff,
    )


def evaluate(
    state: NetworkState,
    cs: CandidateSet,
    req: Request,
    catalog: Catalog,
    cfg: EnvConfig,
    priority: int | None = None,
) -> Evaluation:
    """Evaluate every (path, grant) action of ``req`` on the current ``state`` (fresh arrays).

    Args:
        priority: setup priority of the request (default: its class's catalog priority);
            only flows of strictly lower priority count as pre-emptible.
    """
    c = req.cls
    K, L = cfg.k_paths, cfg.grant_levels
    A = K * L + 1
    ncfg = cfg.network
    p = _class_params(catalog, L)[c]
    tables = field_tables(A)
    fb, fi, ff = tables
    w = FIELD_WHERE
    ev = Evaluation(
        latency_ms_K=np.empty(K),
        hops_K=np.empty(K, dtype=np.int64),
        residual_kbps_K=np.empty(K, dtype=np.int64),
        residual_pre_kbps_K=np.empty(K, dtype=np.int64),
        min_trust_K=np.empty(K),
        route_ok_K=np.empty(K, dtype=np.bool_),
        has_backup_K=cs.has_backup_K,
        bound_ms=p.bound_ms,
        grant_A=ff[w["grant"][1]],
        kbps_A=fi[w["kbps"][1]],
        hard_AR=np.empty((A, len(HARD_RULES)), dtype=np.bool_),
        mask_A=np.empty(A, dtype=np.int8),
        needs_preempt_A=fb[w["needs_preemption"][1]],
        soft_AQ=np.empty((A, len(SOFT_COSTS))),
        util_after_A=ff[w["util_after"][1]],
        feats_AF=np.empty((A, len(CANDIDATE_FEATURES)), dtype=np.float32),
        tables=tables,
    )
    scal = (
        float(cfg.trust_threshold),
        ncfg.queue_q0_ms,
        ncfg.util_cap,
        cfg.reward.balance_knee,
        bool(cfg.preemption),
    )
    prio = p.priority if priority is None else int(priority)
    _run_kernel(state, cs, p, prio, scal, ev)
    return ev


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
