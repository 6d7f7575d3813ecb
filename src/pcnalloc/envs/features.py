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
from typing import Any

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
_NB, _NI, _NF = FIELD_TABLE_SIZES
SLOT_ROWS: dict[str, tuple[int, int]] = {
    "route_ok_K": (0, _NB),
    "has_backup_K": (0, _NB + 1),
    "residual_kbps_K": (1, _NI),
    "residual_pre_kbps_K": (1, _NI + 1),
    "hops_K": (1, _NI + 2),
    "latency_ms_K": (2, _NF),
    "min_trust_K": (2, _NF + 1),
}
"""Per-slot outputs, stored in the first K entries of extra rows of the field tables."""
TABLE_ROWS = (_NB + 2, _NI + 3, _NF + 2)
KERNEL_INDEX = np.array(
    [CANDIDATE_FEATURES.index(c) for c in _KERNEL_CANDIDATE_COLUMNS]
    + list(FIELD_ROWS)
    + [SLOT_ROWS[k][1] for k in SLOT_ROWS],
    dtype=np.int64,
)
"""Positions the kernel writes at: candidate columns (kernel slot i → column), then the
field rows (:data:`FIELDS` order) and the per-slot rows (:data:`SLOT_ROWS` order), all
derived from the layout and passed at run time (a compiled kernel never holds stale ones)."""
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
    """Fresh field tables, one per dtype of :data:`FIELD_TABLES`: (N_dtype + slot rows, A)."""
    return tuple(
        np.empty((n, A), dtype=_DTYPES[t]) for n, t in zip(TABLE_ROWS, FIELD_TABLES, strict=True)
    )


_A = np.ndarray
KernelArgs = tuple[
    # state: pools, priority split, failed links, site trust; then the candidate set (9)
    _A, _A, _A, _A, _A, _A, _A, _A, _A, _A, _A, _A, _A, _A,
    # class and grant tables, env parameters, KERNEL_INDEX; class, setup priority
    _A, _A, _A, _A, int, int,
    # the evaluation's buffers: hard verdicts, mask, soft verdicts, features, field tables
    _A, _A, _A, _A, _A, _A, _A,
]  # fmt: skip
"""The evaluation kernel's positional arguments, in order (:meth:`Evaluator.args`)."""


def _slot_views(tables: tuple[np.ndarray, ...], K: int) -> dict[str, np.ndarray]:
    return {k: tables[t][row, :K] for k, (t, row) in SLOT_ROWS.items()}


def _per_action(x_K: np.ndarray, L: int, reject_value: float) -> np.ndarray:
    """Repeat a per-slot array over grant levels and append the reject action's value."""
    return np.append(np.repeat(x_K, L), reject_value)


# Positions into KERNEL_INDEX: field slots (FIELDS order) after the 11 candidate columns,
# then the per-slot rows (SLOT_ROWS order).
_F_IS_REJECT, _F_PRESENT, _F_GRANT, _F_KBPS, _F_LAT, _F_LOB, _F_RES, _F_RPRE = range(11, 19)
_F_FITS, _F_FITS_PRE, _F_NEEDS, _F_BACKUP, _F_TRUST, _F_UTIL, _F_HOPS = range(19, 26)
_S_OK, _S_HB, _S_RES, _S_RPRE, _S_HOPS, _S_LAT, _S_TRUST = range(26, 33)
assert FIELDS.index("hops") + 11 == _F_HOPS and FIELDS.index("fits") + 11 == _F_FITS
assert len(SLOT_ROWS) == 7 and len(_KERNEL_CANDIDATE_COLUMNS) == 11
# Columns of the per-class parameter table (see _class_params).
_P_SLICE, _P_PRIO, _P_BOUND, _P_BW, _P_PROT, _P_TRUST = range(6)


@njit(cache=True, nogil=True)
def _kernel(  # noqa: C901 - one fused numba loop over the actions (a call each costs more)
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
    P_CP,
    G_CL,
    cfg_p,
    ix,
    cls,
    prio,
    hard_AR,
    mask_A,
    soft_AQ,
    feats_AF,
    fb_NA,
    fi_NA,
    ff_NA,
):  # pragma: no cover - compiled
    """One pass over the K routes: hard flags, mask, soft costs, the candidate table (column
    ``ix[i]`` for kernel slot i), the field tables (row ``ix[11 + j]`` for field j of
    :data:`FIELDS`) and the per-slot rows (:data:`SLOT_ROWS`). Per-class constants come from
    row ``cls`` of ``P_CP``/``G_CL``, the env's from ``cfg_p`` (see :func:`_class_params`)."""
    s = np.int64(P_CP[cls, _P_SLICE])
    bound = P_CP[cls, _P_BOUND]
    bw_kbps = P_CP[cls, _P_BW]
    protected = P_CP[cls, _P_PROT] != 0.0
    needs_trust = P_CP[cls, _P_TRUST] != 0.0
    grant_L = G_CL[cls]
    trust_thr, q0, ucap, knee = cfg_p[0], cfg_p[1], cfg_p[2], cfg_p[3]
    preempt = cfg_p[4] != 0.0
    sentinel = cap_ES.shape[0] - 1
    cc = ix[:11]
    fr = ix
    lat_K = ff_NA[ix[_S_LAT]]
    trust_K = ff_NA[ix[_S_TRUST]]
    resid_K = fi_NA[ix[_S_RES]]
    rpre_K = fi_NA[ix[_S_RPRE]]
    tot_hops_K = fi_NA[ix[_S_HOPS]]
    ok_K = fb_NA[ix[_S_OK]]
    hb_K = fb_NA[ix[_S_HB]]
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
        hb_K[k] = has_b_K[k]
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


@njit(cache=True, nogil=True)
def _write_compact(
    x,
    R_CR,
    cls,
    rp,
    kind,
    log_holding,
    em_R,
    src_region,
    src_cc,
    dst_cc,
    tod_sin,
    tod_cos,
    feats_AF,
    hist_WH,
    hist_n,
    used_ES,
    cap_ES,
    n_failed,
    n_links,
    lim,
    req_out,
):  # pragma: no cover - compiled
    """Write the compact vector's blocks at their layout offsets, then clip to ±``lim``.

    ``rp`` holds the request block's positions of (log_holding, kind=first, emergency_at_src,
    src/dst_is_control_center, time_of_day_sin, time_of_day_cos), then the offsets of the
    candidate, history and network blocks (:meth:`ObservationBuilder.compact_positions`);
    ``feats_AF`` is copied to the candidate block unless it is empty (the kernel wrote the
    table in place); ``req_out``, unless empty, receives the request block before clipping.
    Sums run in float32 in row order, as numpy's ``sum(axis=0)`` does, and the transcendental
    values come in from numpy, so every entry equals the numpy-built vector bit for bit.
    """
    R = R_CR.shape[1]
    for i in range(R):
        x[i] = R_CR[cls, i]
    x[rp[0]] = log_holding
    x[rp[1] + kind] = 1.0
    x[rp[2]] = 1.0 if em_R[src_region] > 0 else 0.0
    x[rp[3]] = 1.0 if src_cc else 0.0
    x[rp[4]] = 1.0 if dst_cc else 0.0
    x[rp[5]] = tod_sin
    x[rp[6]] = tod_cos
    for i in range(req_out.shape[0]):
        req_out[i] = x[i]
    cand_off, hist_off, net_off = rp[7], rp[8], rp[9]
    F = feats_AF.shape[1]
    for a in range(feats_AF.shape[0]):
        for f in range(F):
            x[cand_off + a * F + f] = feats_AF[a, f]
    H = hist_WH.shape[1]
    for j in range(H):
        if hist_n == 0:
            x[hist_off + j] = 0.0
        else:
            acc = np.float32(0.0)
            for w in range(hist_WH.shape[0]):
                acc += hist_WH[w, j]
            x[hist_off + j] = acc / np.float32(hist_n)
    E = used_ES.shape[0] - 1
    S = used_ES.shape[1]
    for s in range(S):
        tot = 0.0
        mx = 0.0
        for e in range(E):
            u = used_ES[e, s] / cap_ES[e, s]
            tot += u
            mx = max(mx, u)
        x[net_off + s] = tot / E
        x[net_off + S + s] = mx
    x[net_off + 2 * S] = n_failed / n_links
    emergency_any = False
    for r in range(em_R.shape[0]):
        if em_R[r] != 0:
            emergency_any = True
    x[net_off + 2 * S + 1] = 1.0 if emergency_any else 0.0
    for i in range(x.shape[0]):
        v = x[i]
        if v < -lim:
            x[i] = -lim
        elif v > lim:
            x[i] = lim


@njit(cache=True, nogil=True)
def _edge_features(
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
    P_CP,
    G_CL,
    cfg_p,
    ix,
    cls,
    prio,
    hard_AR,
    mask_A,
    soft_AQ,
    feats_AF,
    fb_NA,
    fi_NA,
    ff_NA,
    x,
    R_CR,
    rp,
    kind,
    log_holding,
    em_R,
    src_region,
    src_cc,
    dst_cc,
    tod_sin,
    tod_cos,
    hist_WH,
    hist_n,
    n_failed,
    n_links,
    lim,
):  # pragma: no cover - compiled
    """:func:`_kernel` then :func:`_write_compact` in one call (the edge agent's features):
    ``feats_AF`` is a view of ``x``'s candidate block, written in place."""
    _kernel(
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
        P_CP,
        G_CL,
        cfg_p,
        ix,
        cls,
        prio,
        hard_AR,
        mask_A,
        soft_AQ,
        feats_AF,
        fb_NA,
        fi_NA,
        ff_NA,
    )
    _write_compact(
        x,
        R_CR,
        cls,
        rp,
        kind,
        log_holding,
        em_R,
        src_region,
        src_cc,
        dst_cc,
        tod_sin,
        tod_cos,
        np.empty((0, feats_AF.shape[1]), dtype=np.float32),
        hist_WH,
        hist_n,
        used_ES,
        cap_ES,
        n_failed,
        n_links,
        lim,
        np.empty(0, dtype=np.float32),
    )


@functools.lru_cache(maxsize=32)
def _class_params(catalog: Catalog, L: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-class kernel constants: P_CP float (C, 6) — slice, catalog priority, latency bound
    (ms), bandwidth (kb/s), protected, held to the trust rule — and the grant levels G_CL (C, L).
    """
    C = catalog.n_classes
    P = np.empty((C, 6))
    P[:, _P_SLICE] = catalog.slice_C
    P[:, _P_PRIO] = catalog.priority_C
    P[:, _P_BOUND] = catalog.max_latency_ms_C
    P[:, _P_BW] = catalog.bandwidth_kbps_C
    P[:, _P_PROT] = np.asarray(catalog.protected_C, dtype=bool)
    P[:, _P_TRUST] = catalog.zone_C < ZONE_RT_NRT
    G = np.ascontiguousarray(catalog.grant_CL[:, :L], dtype=np.float64)
    return P, G


@functools.lru_cache(maxsize=64)
def _env_params(trust: float, q0: float, ucap: float, knee: float, preempt: bool) -> np.ndarray:
    return np.array([trust, q0, ucap, knee, 1.0 if preempt else 0.0])


def _cfg_params(cfg: EnvConfig) -> np.ndarray:
    n = cfg.network
    return _env_params(
        float(cfg.trust_threshold),
        float(n.queue_q0_ms),
        float(n.util_cap),
        float(cfg.reward.balance_knee),
        bool(cfg.preemption),
    )


def _new_evaluation(
    K: int, L: int, bound_ms: float, has_backup_K: np.ndarray | None, feats_AF: np.ndarray | None
) -> Evaluation:
    A = K * L + 1
    tables = field_tables(A)
    fb, fi, ff = tables
    w = FIELD_WHERE
    slots = _slot_views(tables, K)
    return Evaluation(
        latency_ms_K=slots["latency_ms_K"],
        hops_K=slots["hops_K"],
        residual_kbps_K=slots["residual_kbps_K"],
        residual_pre_kbps_K=slots["residual_pre_kbps_K"],
        min_trust_K=slots["min_trust_K"],
        route_ok_K=slots["route_ok_K"],
        has_backup_K=slots["has_backup_K"] if has_backup_K is None else has_backup_K,
        bound_ms=bound_ms,
        grant_A=ff[w["grant"][1]],
        kbps_A=fi[w["kbps"][1]],
        hard_AR=np.empty((A, len(HARD_RULES)), dtype=np.bool_),
        mask_A=np.empty(A, dtype=np.int8),
        needs_preempt_A=fb[w["needs_preemption"][1]],
        soft_AQ=np.empty((A, len(SOFT_COSTS))),
        util_after_A=ff[w["util_after"][1]],
        feats_AF=(
            np.empty((A, len(CANDIDATE_FEATURES)), dtype=np.float32)
            if feats_AF is None
            else feats_AF
        ),
        tables=tables,
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

    def __init__(
        self, catalog: Catalog, cfg: EnvConfig, feats_AF: np.ndarray | None = None
    ) -> None:
        K, L = cfg.k_paths, cfg.grant_levels
        self.catalog, self.cfg = catalog, cfg
        self.P_CP, self.G_CL = _class_params(catalog, L)
        self._bound_C = self.P_CP[:, _P_BOUND].tolist()
        self.cfg_p = _cfg_params(cfg)
        self.evaluation = _new_evaluation(K, L, 1.0, None, feats_AF)

    def args(self, state: NetworkState, cs: CandidateSet, cls: int, priority: int) -> KernelArgs:
        """The kernel's arguments for one request (for callers that fuse calls)."""
        ev = self.evaluation
        fb, fi, ff = ev.tables
        return (
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
            self.P_CP,
            self.G_CL,
            self.cfg_p,
            KERNEL_INDEX,
            cls,
            priority,
            ev.hard_AR,
            ev.mask_A,
            ev.soft_AQ,
            ev.feats_AF,
            fb,
            fi,
            ff,
        )

    def run(self, state: NetworkState, cs: CandidateSet, cls: int, priority: int) -> Evaluation:
        """Evaluate a request of class ``cls`` at setup ``priority`` into :attr:`evaluation`."""
        ev = self.evaluation
        ev.bound_ms = self._bound_C[cls]
        _kernel(*self.args(state, cs, cls, priority))
        return ev


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
    c = int(req.cls)
    K, L = cfg.k_paths, cfg.grant_levels
    P, G = _class_params(catalog, L)
    ev = _new_evaluation(K, L, float(P[c, _P_BOUND]), cs.has_backup_K, None)
    prio = int(catalog.priority_C[c]) if priority is None else int(priority)
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
        P,
        G,
        _cfg_params(cfg),
        KERNEL_INDEX,
        c,
        prio,
        ev.hard_AR,
        ev.mask_A,
        ev.soft_AQ,
        ev.feats_AF,
        fb,
        fi,
        ff,
    )
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
