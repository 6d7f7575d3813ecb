"""MILP matrix construction for the offline hindsight bound: variables and capacity rows.

Variables of a recorded :class:`~pcnalloc.baselines.offline.Window` (J requests, W warm
flows that some later request may pre-empt):

* **admit** x(j, k, l): request j on candidate k at grant level l from its arrival to its end;
* **restore** z(j, g, k, l): request j's *last* segment, on (k, l), starting at one of the
  instants of group g of the instants where a request of higher setup priority arrives (the
  only instants at which the env pre-empts), running to j's end;
* **restore-warm** z(m, g, k, l): the same for warm flow m;
* **evict** y(m): warm flow m is pre-empted (at the window start, which only frees more
  capacity than evicting it later), at the cost of its value.

A segment of group g is counted in the capacity rows only from the group's last instant on
(it surely runs from there) and earns the value of a segment started at the group's first
instant (the most a segment in the group can earn), so grouping only loosens the bound.

Capacity rows A·x ≤ b per (pool, arrival instant) at the instants where a segment using the
pool may start. Solving them is :func:`pcnalloc.baselines.offline.solve_window`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from pcnalloc.envs.features import ZONE_RT_NRT

if TYPE_CHECKING:
    from pcnalloc.baselines.offline import Window
    from pcnalloc.network.paths import CandidateSet

KIND_ADMIT, KIND_RESTORE, KIND_RESTORE_WARM = 0, 1, 2
MAX_GROUPS = 2  # restoration start groups per flow: more is tighter and slower


@dataclass(frozen=True, eq=False)
class MilpVars:
    """The MILP's variables: V route segments, then W warm evictions (columns V … V+W−1).

    Attributes:
        kind_V: KIND_ADMIT, KIND_RESTORE or KIND_RESTORE_WARM per segment.
        owner_V: the request j (< J) or J + w for the restoration of evictable warm flow w.
        start_V: first arrival instant (index) at which the segment surely holds capacity.
        end_s_V: the segment's end (s).
        action_V: k·L + l of the segment's route and grant level.
        kbps_V, value_V: bandwidth and value of the segment.
        res_ptr_V, res_U: CSR pointers into res_U (pools each segment's routes use).
        group_V: the warm group a restore-warm segment belongs to (−1 for requests).
        warm_W: representative warm flow (index into ``Window.warm``) of each evictable
            group: identical flows (class, ends, route, rate, value, pre-emption instants)
            that outlive the window are one integer column, counted in ``count_W``.
        members_W: every warm flow of each group.
        count_W: flows in each group (the column's upper bound).
        evict_value_W: the value lost per flow pre-empted.
    """

    kind_V: np.ndarray
    owner_V: np.ndarray
    start_V: np.ndarray
    end_s_V: np.ndarray
    action_V: np.ndarray
    kbps_V: np.ndarray
    value_V: np.ndarray
    res_ptr_V: np.ndarray
    res_U: np.ndarray
    group_V: np.ndarray
    warm_W: np.ndarray
    members_W: list[np.ndarray]
    count_W: np.ndarray
    evict_value_W: np.ndarray

    @property
    def upper_N(self) -> np.ndarray:
        """Upper bound of every column: 1 per request segment; a warm group's size for its
        evictions and for each of its restoration segments (members may share a route)."""
        seg = np.ones(self.n_segments)
        warm = self.kind_V == KIND_RESTORE_WARM
        seg[warm] = self.count_W[self.group_V[warm]]
        return np.concatenate([seg, self.count_W]).astype(float)

    @property
    def n_segments(self) -> int:
        """V, the number of route-segment columns."""
        return int(self.kind_V.size)

    @property
    def n_cols(self) -> int:
        """V + W, every column of the MILP."""
        return self.n_segments + int(self.warm_W.size)


def preemption_groups(
    hold_priority: int, after: int, end_s: float, w: Window, max_groups: int = MAX_GROUPS
) -> list[tuple[int, float]]:
    """Where a flow of ``hold_priority`` may be pre-empted: (last instant, first time) per group.

    The env pre-empts only while admitting a request whose setup priority is numerically
    smaller than the victim's hold priority (RSVP-TE), at that request's arrival instant;
    the victim's restoration is decided at the same instant. Candidate instants are those
    after ``after`` (an instant index; −1 for warm flows) and before ``end_s``, split into at
    most ``max_groups`` consecutive groups.
    """
    if not w.config.preemption or not w.requests:
        return []
    times = w.times_J
    idx = np.flatnonzero(
        (np.arange(times.size) > after) & (w.priority_J < hold_priority) & (times < end_s)
    )
    if not idx.size:
        return []
    chunks = np.array_split(idx, min(max_groups, idx.size))
    return [(int(c[-1]), float(times[c[0]])) for c in chunks]


def _routes(w: Window, cls: int, cs: CandidateSet) -> list[tuple[int, np.ndarray]]:
    """(k, pools' link ids) of every candidate that meets latency, protection and trust."""
    cat, cfg = w.catalog, w.config
    E = w.cap_kbps_ES.shape[0]
    lat = np.where(cs.has_backup_K, np.maximum(cs.prop_ms_K, cs.backup_prop_ms_K), cs.prop_ms_K)
    ok_K = cs.present_K & (lat <= cat.max_latency_ms_C[cls])
    if cat.protected_C[cls]:
        ok_K &= cs.has_backup_K
    if cat.zone_C[cls] < ZONE_RT_NRT:
        trust = np.minimum(
            w.trust_N1[cs.nodes_KN].min(axis=1), w.trust_N1[cs.backup_nodes_KN].min(axis=1)
        )
        ok_K &= trust >= cfg.trust_threshold
    out = []
    for k in np.flatnonzero(ok_K):
        links = cs.links_KH[k][cs.links_KH[k] < E]
        if cs.has_backup_K[k]:
            links = np.concatenate([links, cs.backup_links_KB[k][cs.backup_links_KB[k] < E]])
        out.append((int(k), links))
    return out


def milp_variables(w: Window, *, max_groups: int = MAX_GROUPS) -> MilpVars:
    """Enumerate the admissible segments and the evictable warm flows."""
    cat, L = w.catalog, w.config.grant_levels
    S = w.cap_kbps_ES.shape[1]
    J = len(w.requests)
    times = w.times_J
    # Warm flows some request may pre-empt; the others hold their capacity for sure.
    groups_M = [preemption_groups(f.priority, -1, f.end_s, w, max_groups) for f in w.warm]
    evictable = np.array([bool(g) for g in groups_M], dtype=bool)
    fixed_inc = ~evictable[w.warm_flow_M] if w.warm_flow_M.size else np.zeros(0, bool)
    fixed_now = w.warm_usage_kbps(times, fixed_inc) if J else np.zeros((0, *w.cap_kbps_ES.shape))
    cols: dict[str, list] = {k: [] for k in ("kind", "own", "start", "end", "act", "kb", "val")}
    ptr, res = [0], []

    def add(kind: int, own: int, start: int, end: float, frac: float, cls: int, routes) -> None:
        s = int(cat.slice_C[cls])
        free_E = w.cap_kbps_ES[:, s] - fixed_now[start, :, s]
        for k, links in routes:
            bottleneck = free_E[links].min() if links.size else 0
            for lvl in range(L):
                g = float(cat.grant_CL[cls, lvl])
                kb = round(cat.bandwidth_kbps_C[cls] * g)
                if g <= 0 or kb > bottleneck:  # never fits, whatever is pre-empted
                    continue
                for key, val in zip(
                    cols,
                    (kind, own, start, end, k * L + lvl, kb, float(cat.value_C[cls]) * g * frac),
                    strict=True,
                ):
                    cols[key].append(val)
                res.extend((links * S + s).tolist())
                ptr.append(len(res))

    def frac(end: float, t0: float, full: float) -> float:
        # the env restores for max(remaining, 1 s) and pays that share of the full holding
        return min(1.0, max(end - t0, 1.0) / full) if full > 0 else 1.0

    for j, (r, cs) in enumerate(zip(w.requests, w.candidates, strict=True)):
        routes = _routes(w, r.cls, cs)
        end = r.time_s + r.holding_s
        full = r.full_holding_s if r.full_holding_s > 0 else r.holding_s
        add(KIND_ADMIT, j, j, end, r.value_fraction, r.cls, routes)
        for last, t0 in preemption_groups(int(w.priority_J[j]), j, end, w, max_groups):
            add(KIND_RESTORE, j, last, end, frac(end, t0, full), r.cls, routes)
    # Evictable warm flows that outlive the window and are alike in everything the MILP
    # sees form one integer column (a relaxation: a restoration earns the best member's share).
    t_last = float(times[-1]) if J else 0.0
    groups: dict[tuple, list[int]] = {}
    for m in np.flatnonzero(evictable):
        f = w.warm[m]
        if f.end_s <= t_last:
            key: tuple = ("own", int(m))
        else:
            links = tuple(np.sort(w.warm_link_M[w.warm_flow_M == m]).tolist())
            key = (f.cls, f.src, f.dst, f.kbps, f.priority, round(f.value, 9), links)
        groups.setdefault(key, []).append(int(m))
    members = [np.array(g, dtype=np.int64) for g in groups.values()]
    for wi, mem in enumerate(members):
        f = w.warm[int(mem[0])]
        routes = _routes(w, f.cls, f.candidates)
        end = min(w.warm[m].end_s for m in mem)
        for last, t0 in groups_M[int(mem[0])]:
            share = max(frac(w.warm[m].end_s, t0, w.warm[m].full_holding_s) for m in mem)
            add(KIND_RESTORE_WARM, J + wi, last, end, share, f.cls, routes)
    warm_W = np.array([mem[0] for mem in members], dtype=np.int64)
    kind_V = np.array(cols["kind"], dtype=np.int64)
    owner_V = np.array(cols["own"], dtype=np.int64)
    return MilpVars(
        kind_V=kind_V,
        owner_V=owner_V,
        start_V=np.array(cols["start"], dtype=np.int64),
        end_s_V=np.array(cols["end"], dtype=np.float64),
        action_V=np.array(cols["act"], dtype=np.int64),
        kbps_V=np.array(cols["kb"], dtype=np.int64),
        value_V=np.array(cols["val"], dtype=np.float64),
        res_ptr_V=np.array(ptr, dtype=np.int64),
        res_U=np.array(res, dtype=np.int64),
        group_V=np.where(kind_V == KIND_RESTORE_WARM, owner_V - J, -1),
        warm_W=warm_W,
        members_W=members,
        count_W=np.array([mem.size for mem in members], dtype=np.int64),
        evict_value_W=np.array([w.warm[m].value for m in warm_W], dtype=np.float64),
    )


def owner_rows(w: Window, v: MilpVars) -> tuple[sp.csr_matrix, np.ndarray]:
    """One segment per request (Σ ≤ 1); warm flows are restored only if evicted (Σ z ≤ y)."""
    J, W, V = len(w.requests), v.warm_W.size, v.n_segments
    rows = np.concatenate([v.owner_V, J + np.arange(W)])
    cols = np.arange(V + W)
    data = np.concatenate([np.ones(V), -np.ones(W)])
    A = sp.csr_matrix((data, (rows, cols)), shape=(J + W, V + W))
    return A, np.concatenate([np.ones(J), np.zeros(W)])


def _cat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    """``parts`` joined into one array of ``dtype`` (empty when there are none)."""
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)


def capacity_rows(w: Window, v: MilpVars) -> tuple[sp.csr_matrix, np.ndarray]:
    """Sparse capacity constraints A·x ≤ b over (pool, arrival instant) rows.

    Row (pool, n): Σ kb of the segments running at instant n on the pool − Σ kb·y of the
    evictable warm groups present at n ≤ capacity − kb of every warm flow present at n (a
    group's column carries the kb of one member: y counts its members evicted).
    Usage only grows where a segment starts, so rows at those instants suffice; a row that
    the next one implies (no segment ends and no warm flow leaves in between) is dropped.
    """
    S = w.cap_kbps_ES.shape[1]
    V = v.n_segments
    times = w.times_J
    col_M = np.full(len(w.warm), -1, dtype=np.int64)
    col_M[v.warm_W] = V + np.arange(v.warm_W.size)
    inc_col = col_M[w.warm_flow_M] if w.warm_flow_M.size else np.zeros(0, np.int64)
    inc_res = w.warm_link_M * S + w.warm_slice_M
    n_u = np.diff(v.res_ptr_V)
    var_U = np.repeat(np.arange(V), n_u)
    order = np.lexsort((v.start_V[var_U], v.res_U))
    res_U, var_U = v.res_U[order], var_U[order]
    bounds = np.flatnonzero(np.diff(res_U)) + 1
    rows, cols, data, rhs = [], [], [], []
    n_rows = 0
    for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, res_U.size], strict=True):
        if hi <= lo:
            continue
        r = int(res_U[lo])
        vars_ = var_U[lo:hi]
        start_u = v.start_V[vars_]
        inst = np.unique(start_u)  # instants at which usage of this pool may grow
        t_I = times[inst]
        on = np.flatnonzero(inc_res == r)
        alive_IM = w.warm_end_s_M[on][None, :] > t_I[:, None]
        b_I = w.cap_kbps_ES.flat[r] - (alive_IM * w.warm_kbps_M[on]).sum(axis=1)
        act_IU = (start_u[None, :] <= inst[:, None]) & (v.end_s_V[vars_][None, :] > t_I[:, None])
        keep = np.ones(inst.size, dtype=bool)
        if inst.size > 1:
            departs = (act_IU[:-1] & ~act_IU[1:]).any(axis=1)
            keep[:-1] = departs | (b_I[1:] > b_I[:-1])
        ii, uu = np.nonzero(act_IU[keep])
        rows.append(ii + n_rows)
        cols.append(vars_[uu])
        data.append(v.kbps_V[vars_[uu]].astype(float))
        ev = inc_col[on] >= 0
        if ev.any():
            ie, me = np.nonzero(alive_IM[keep][:, ev])
            rows.append(ie + n_rows)
            cols.append(inc_col[on][ev][me])
            data.append(-w.warm_kbps_M[on][ev][me].astype(float))
        rhs.append(b_I[keep])
        n_rows += int(keep.sum())
    A = sp.csr_matrix(
        (
            _cat(data, np.float64),
            (_cat(rows, np.int64), _cat(cols, np.int64)),
        ),
        shape=(n_rows, v.n_cols),
    )
    A.sum_duplicates()
    return A, np.concatenate(rhs or [[]]).astype(float)


def solution_usage(w: Window, v: MilpVars, x: np.ndarray) -> np.ndarray:
    """kb/s held per pool at every arrival instant by a solution, shape (J, E, S).

    Written apart from :func:`capacity_rows` (the kept warm flows by
    :meth:`Window.warm_usage_kbps`, then a loop over the chosen segments) so that it can
    check the MILP's rows independently.
    """
    E, S = w.cap_kbps_ES.shape
    times = w.times_J
    evicted = [
        m
        for i, n in enumerate(np.rint(x[v.n_segments :]).astype(np.int64))
        for m in v.members_W[i][:n]
    ]
    kept_M = ~np.isin(w.warm_flow_M, evicted)
    usage = w.warm_usage_kbps(times, kept_M).reshape(times.size, E * S)
    n_V = np.rint(x[: v.n_segments]).astype(np.int64)  # > 1 for a warm group's restorations
    for u in np.flatnonzero(n_V > 0):
        alive = (np.arange(times.size) >= v.start_V[u]) & (times < v.end_s_V[u])
        for r in v.res_U[v.res_ptr_V[u] : v.res_ptr_V[u + 1]]:
            usage[alive, r] += n_V[u] * v.kbps_V[u]
    return usage.reshape(times.size, E, S)
