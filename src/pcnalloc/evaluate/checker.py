"""Independent safety checker: re-derives every hard rule from the raw network state.

The environment chooses among actions with a compiled kernel (:mod:`pcnalloc.envs.features`)
that fills the action mask. Re-reading that mask, or the :class:`Evaluation` that built it,
after a step proves nothing about what was executed. :class:`SafetyChecker` instead looks
only at raw data after every step:

- the network model (link ends, lengths, pool capacities, propagation, switching and
  queueing parameters of :class:`~pcnalloc.config.NetworkConfig`);
- the flow objects in :attr:`NetworkState.flows` (their own link lists, slice, kb/s, class);
- the site trust array and the failed-link flags of the state;
- the catalog's class data (zone, bandwidth, grant levels, latency bound, protection).

What is checked, per violation kind (:data:`VIOLATION_KINDS`):

``capacity``
    For every (link, slice) pool, Σ kb/s of the live flows that route over it (primary and
    backup, counted from the flow objects) ≤ the network model's pool capacity, and ≥ 0.
``counter_drift``
    The same per-pool sums equal the state's own ``used_ES1`` counters and their priority
    split ``used_ESP1`` (a drift means the env's accounting and its flows disagree, so its
    capacity test was run on wrong numbers).
``zone``
    A flow consumes only its class's pool: Zone I → ``rt``, II → ``nrt``, III/IV → ``mgmt``
    (the DESIGN §2 zoning, restated here rather than read from the catalog's own mapping).
``latency``
    Primary and (1+1) backup latency ≤ the class bound, recomputed as
    Σ length_km · propagation_us_per_km / 1000 + hops · switching_delay_ms
    + Σ q0 · ũ / (1 − ũ) with ũ = min(u, util_cap) and u the pool utilisation *at admission*:
    the checker's own per-pool sums as they stood after the previous step (before this
    step's pre-emptions, so never lower than what the flow really met), without the new
    flow's own kb/s. This is the formula of DESIGN §2 and the env's, written out again;
    the tolerance is floating-point only (relative 1e-9 plus 1e-9 ms), because both sides sum
    the same terms in a different order.
``trust``
    Every site on a Zone I/II flow's primary and backup route (both ends included) had trust
    ≥ ``trust_threshold`` at admission (the trust array as it stood after the previous step).
``protection``
    A 1+1 class has a primary and a backup route and they share no link.
``grant``
    The granted kb/s is the class bandwidth times one of its positive grant levels (within
    the 0.5 kb/s of integer rounding), so never below the class minimum nor above its rate.
``route``
    Each route is a walk of existing links joining the flow's two end sites (in either
    direction: routes are cached per unordered pair), and none of its links was cut at
    admission.

What is not compared: the pre-emption plan (which victims, and that they had lower
priority), reward and value accounting, soft costs, and rules a user rule file adds on top
of the packaged ones. Latency after admission is not re-checked as the network fills: the
bound is an admission-time guarantee (DESIGN §2).

Cost: per step only the newly admitted flow(s) are checked; the pool sums are kept
incrementally (flows that appeared or disappeared since the last step), and every
``full_every`` steps (default 1000, one episode) and at :meth:`finish` they are rebuilt
from all flow objects, which also catches a flow edited in place. A flow that is admitted
and gone again within the same step (it departed or was cut before the next request)
cannot be seen by diffing the flow table; it is counted in ``unchecked_admissions``, not
as a violation.

Counts are incidents: a flow counts once per kind it breaks; a pool counts once when it
goes over capacity (or its counter starts to drift), not again at every later step while
it stays so.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from pcnalloc.config import SLICES
from pcnalloc.envs.power_comm import PowerCommEnv
from pcnalloc.envs.state import Flow

VIOLATION_KINDS: tuple[str, ...] = (
    "capacity",
    "counter_drift",
    "zone",
    "latency",
    "trust",
    "protection",
    "grant",
    "route",
)
"""Kinds of executed hard violation the checker reports (see the module docstring)."""

_ZONE_POOL = {"I": "rt", "II": "nrt", "III": "mgmt", "IV": "mgmt"}
"""DESIGN §2 security zoning, restated independently of the catalog's own table."""
_ZONE_NAMES = ("I", "II", "III", "IV")
_TRUST_ZONES = {"I", "II"}
_LAT_RTOL = 1e-9
_LAT_ATOL_MS = 1e-9
_MAX_EXAMPLES = 50


class _Entry(NamedTuple):
    """What a live flow held when the checker last saw it: slice, priority and kb/s are
    copied (a later reassignment on the flow does not change them); the link arrays are the
    flow's own (the state releases exactly those), with out-of-range indices dropped."""

    links: np.ndarray
    backup: np.ndarray
    slice: int
    priority: int
    kbps: int


@dataclass
class CheckReport:
    """Counts so far; :meth:`as_dict` is what metrics embed."""

    by_kind: dict[str, int] = field(default_factory=lambda: dict.fromkeys(VIOLATION_KINDS, 0))
    checked_admissions: int = 0
    unchecked_admissions: int = 0
    steps: int = 0
    full_recomputes: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return int(sum(self.by_kind.values()))

    def as_dict(self) -> dict[str, Any]:
        return {
            "executed_hard_violations": self.total,
            "executed_violations_by_kind": dict(self.by_kind),
            "checked_admissions": self.checked_admissions,
            "unchecked_admissions": self.unchecked_admissions,
            "steps": self.steps,
            "full_recomputes": self.full_recomputes,
            "examples": list(self.examples),
        }


class SafetyChecker:
    """Recompute the hard rules from the raw state after every executed action.

    Usage: build it after ``env.reset()`` (or call :meth:`reset` after each reset), then call
    :meth:`after_step` after every ``env.step``. If the state may change between steps
    outside ``step`` (trust updates, ``cut_link`` what-ifs), call :meth:`before_step` just
    before ``step`` so the admission-time snapshot is fresh; otherwise the snapshot taken at
    the end of the previous :meth:`after_step` is exactly the state the action was chosen on.

    Args:
        env: the (unwrapped) environment whose state is checked.
        full_every: steps between full rebuilds of the pool sums from every flow object.
    """

    def __init__(self, env: PowerCommEnv, *, full_every: int = 1000) -> None:
        self.env = env
        self.full_every = max(int(full_every), 1)
        net, cat, ncfg = env.net, env.catalog, env.cfg.network
        self.E = net.n_links
        self.S = len(SLICES)
        self._ends = np.asarray(net.link_ends, dtype=np.int64)
        # Pool capacities and per-link delays straight from the network model and its config.
        self._cap_ES = np.asarray(net.pool_capacity_kbps, dtype=np.int64)
        self._capf = np.maximum(self._cap_ES, 1).astype(float)
        self._cap1 = np.vstack([self._cap_ES, np.zeros((1, self.S), dtype=np.int64)])
        self._link_ms = np.asarray(net.link_length_km, dtype=float) * (
            ncfg.propagation_us_per_km / 1000.0
        )
        self._switch_ms = float(ncfg.switching_delay_ms)
        self._q0 = float(ncfg.queue_q0_ms)
        self._ucap = float(ncfg.util_cap)
        self._trust_thr = float(env.cfg.trust_threshold)
        L = env.cfg.grant_levels
        zones = [_ZONE_NAMES[int(z)] for z in cat.zone_C]
        self._pool_C = np.array([SLICES.index(_ZONE_POOL[z]) for z in zones], dtype=np.int64)
        self._needs_trust_C = np.array([z in _TRUST_ZONES for z in zones])
        self._bound_C = np.asarray(cat.max_latency_ms_C, dtype=float)
        self._protected_C = np.asarray(cat.protected_C, dtype=bool)
        bw = np.asarray(cat.bandwidth_kbps_C, dtype=float)
        grants = np.asarray(cat.grant_CL, dtype=float)[:, :L]
        # Python lists: the per-flow checks touch a handful of entries each.
        self._grant_l = [(bw[c] * g[g > 0]).tolist() for c, g in enumerate(grants)]
        self._ends_l = [(int(a), int(b)) for a, b in self._ends.tolist()]
        self._link_ms_l = self._link_ms.tolist()
        self._pool_l = self._pool_C.tolist()
        self._needs_trust_l = self._needs_trust_C.tolist()
        self._bound_l = self._bound_C.tolist()
        self._protected_l = self._protected_C.tolist()
        self.reset()

    # ------------------------------------------------------------------ lifecycle
    def reset(self) -> None:
        """Start a new episode: rebuild the pool sums from the flows now present and check them."""
        self.report = CheckReport()
        self.last_latency_ms: dict[int, float] = {}
        """Recomputed admission latency (ms) of each flow checked by the last step."""
        self._ledger: dict[int, _Entry] = {}
        self._end_heap: list[tuple[float, int]] = []
        self._usedp: np.ndarray | None = None
        self._rebuilt_at = -1
        self._used = np.zeros((self.E + 1, self.S), dtype=np.int64)
        self._over = np.zeros((self.E + 1, self.S), dtype=bool)
        self._drift = np.zeros((self.E + 1, self.S), dtype=bool)
        self._full_rebuild()
        self._check_pools()
        self._snapshot()

    def before_step(self) -> None:
        """Re-sync with the state and retake the admission-time snapshot (see class doc)."""
        self._sync()
        self._snapshot()

    def after_step(self, info: dict[str, Any] | None = None) -> int:
        """Check what the last step executed; returns the number of new violations.

        Args:
            info: the step's ``info`` (only ``outcome`` is read, to count admissions the
                flow table no longer shows); None when the state was changed by hand.
        """
        before = self.report.total
        self.last_latency_ms = {}
        added = self._sync()
        for f in added:
            self._check_flow(f)
        self.report.checked_admissions += len(added)
        if info is not None and info.get("outcome") == "accepted" and not added:
            self.report.unchecked_admissions += 1
        self.report.steps += 1
        if self.report.steps % self.full_every == 0:
            self._full_rebuild()
        self._check_pools()
        self._snapshot()
        return self.report.total - before

    def finish(self) -> None:
        """End of an episode: rebuild the pool sums from every flow object and check them."""
        if self._rebuilt_at != self.report.steps:
            self._sync()
            self._full_rebuild()
            self._check_pools()
            self._snapshot()

    def summary(self) -> dict[str, Any]:
        """JSON-ready counts: total, per kind, admissions checked/unchecked, examples."""
        return self.report.as_dict()

    # ------------------------------------------------------------------ internals
    def _flag(self, kind: str, **detail: Any) -> None:
        self.report.by_kind[kind] += 1
        if len(self.report.examples) < _MAX_EXAMPLES:
            self.report.examples.append({"kind": kind, "step": self.report.steps, **detail})

    def _entry(self, f: Flow) -> _Entry:
        """A ledger entry whose indices are safe to add at (bad ones are a route violation)."""
        E, sl = self.E, int(f.slice)
        prim, back = np.asarray(f.links, dtype=np.int64), np.asarray(f.backup_links, np.int64)
        if any(not 0 <= e <= E for e in prim.tolist() + back.tolist()):
            prim = prim[(prim >= 0) & (prim <= E)]
            back = back[(back >= 0) & (back <= E)]
        return _Entry(prim, back, sl if 0 <= sl < self.S else 0, int(f.priority), int(f.kbps))

    def _apply(self, e: _Entry, sign: int) -> None:
        col = self._used[:, e.slice]
        np.add.at(col, e.links, sign * e.kbps)
        if e.backup.size:
            np.add.at(col, e.backup, sign * e.kbps)

    def _sync(self) -> list[Flow]:
        """Bring the pool sums in step with the flow table; returns the flows that appeared.

        A dict keeps insertion order and the state never reuses an id, so flows added since
        the last sync sit at the end of the table. Flows that left are found among those
        whose holding time is over (a heap of end times); only when that does not account
        for every flow that left (pre-emption, a cut) is the whole table diffed.
        """
        flows = self.env.state.flows
        ledger = self._ledger
        added: list[Flow] = []
        for fid in reversed(flows):
            if fid in ledger:
                break
            added.append(flows[fid])
        added.reverse()
        n_gone = len(ledger) + len(added) - len(flows)
        if n_gone:
            heap, now, gone = self._end_heap, self.env.now, []
            while heap and heap[0][0] <= now:
                fid = heapq.heappop(heap)[1]
                if fid in ledger and fid not in flows:
                    gone.append(fid)
            if len(gone) != n_gone:
                gone = list(ledger.keys() - flows.keys())
            for fid in gone:
                self._apply(ledger.pop(fid), -1)
            if len(ledger) + len(added) != len(flows):  # an id came back: take all unknown
                added = [f for i, f in flows.items() if i not in ledger]
        for f in added:
            e = self._entry(f)
            ledger[f.id] = e
            self._apply(e, +1)
            heapq.heappush(self._end_heap, (float(f.end_s), int(f.id)))
        return added

    def _full_rebuild(self) -> None:
        """Pool sums (and their priority split) from every flow object afresh.

        Catches flows edited in place, which the incremental sums cannot see.
        """
        self.report.full_recomputes += 1
        self._rebuilt_at = self.report.steps
        fl = list(self.env.state.flows.values())
        P = self.env.state.used_ESP1.shape[2]
        self._end_heap = [(float(f.end_s), int(f.id)) for f in fl]
        heapq.heapify(self._end_heap)
        usedp = np.zeros((self.E + 1, self.S, P), dtype=np.int64)
        if not fl:
            self._ledger = {}
        else:
            arrays = [x for f in fl for x in (f.links, f.backup_links)]
            sizes = np.fromiter((len(x) for x in arrays), dtype=np.int64, count=len(arrays))
            links = np.concatenate(arrays).astype(np.int64)
            per = np.repeat(np.arange(len(fl)), sizes.reshape(-1, 2).sum(axis=1))
            s = np.array([f.slice for f in fl], dtype=np.int64)[per]
            p = np.clip(np.array([f.priority for f in fl], dtype=np.int64), 0, P - 1)[per]
            kb = np.array([f.kbps for f in fl], dtype=np.int64)[per]
            ok = (links >= 0) & (links <= self.E) & (s >= 0) & (s < self.S)
            self._ledger = {
                f.id: _Entry(f.links, f.backup_links, f.slice, f.priority, f.kbps) for f in fl
            }
            if not ok.all():  # unsafe indices: those flows get filtered entries
                for j in np.unique(per[~ok]).tolist():
                    self._ledger[fl[j].id] = self._entry(fl[j])
                s = np.where(ok, s, 0)
            np.add.at(usedp, (links[ok], s[ok], p[ok]), kb[ok])
        self._used[:] = usedp.sum(axis=2)
        self._usedp = usedp

    def _check_pools(self) -> None:
        st = self.env.state
        used = self._used
        over = (used > self._cap1) | (used < 0)  # the sentinel row has capacity 0 here
        new = over & ~self._over
        if new.any():
            for e, s in np.argwhere(new):
                self._flag(
                    "capacity", link=int(e), slice=SLICES[s], kbps=int(used[e, s]),
                    cap=int(self._cap1[e, s]),
                )  # fmt: skip
        self._over = over
        drift = used != st.used_ES1
        if self._usedp is not None:  # right after a full rebuild: the priority split too
            drift |= (self._usedp != st.used_ESP1).any(axis=2)
            self._usedp = None
        new = drift & ~self._drift
        if new.any():
            for e, s in np.argwhere(new):
                self._flag(
                    "counter_drift", link=int(e), slice=SLICES[s], kbps=int(used[e, s]),
                    counter=int(st.used_ES1[e, s]),
                )  # fmt: skip
        self._drift = drift

    def _snapshot(self) -> None:
        st = self.env.state
        self._snap_used = self._used[: self.E].copy()
        self._snap_trust = np.asarray(st.trust_N1, dtype=float).copy()
        self._snap_failed = np.asarray(st.failed_E1[: self.E], dtype=bool).copy()
        self._view: tuple[list, list, list] | None = None

    def _admission_view(self) -> tuple[list, list, list]:
        """Queueing term per (link, pool), trust per site and cut flag per link at admission,
        as Python lists (built once per step, only when a flow is checked)."""
        if self._view is None:
            u = np.minimum(self._snap_used / self._capf, self._ucap)
            queue = (self._q0 * u / (1.0 - u)).tolist()
            self._view = (queue, self._snap_trust.tolist(), self._snap_failed.tolist())
        return self._view

    def _walk(self, links: list[int], src: int, dst: int) -> list[int] | None:
        """Sites visited by ``links``; None unless they form a walk joining ``src`` and ``dst``.

        Routes are cached per unordered site pair, so a flow's links may run from either end.
        """
        ends, E = self._ends_l, self.E
        for start, end in ((int(src), int(dst)), (int(dst), int(src))):
            node = start
            sites = [node]
            for e in links:
                if not 0 <= e < E:
                    return None
                a, b = ends[e]
                if node == a:
                    node = b
                elif node == b:
                    node = a
                else:
                    break
                sites.append(node)
            else:
                if node == end:
                    return sites
        return None

    def _check_flow(self, f: Flow) -> None:
        c, fid, sl = int(f.cls), int(f.id), int(f.slice)
        prim = np.asarray(f.links, dtype=np.int64).tolist()
        back = np.asarray(f.backup_links, dtype=np.int64).tolist()
        routes = [prim, back] if back else [prim]
        pool = self._pool_l[c]
        queue, trust, failed = self._admission_view()
        # zone isolation: the class's own pool only
        if sl != pool:
            self._flag("zone", flow=fid, cls=c, slice=sl, pool=pool)
        # route: walks of existing links joining the two end sites, none of them cut
        walks = [self._walk(r, f.src, f.dst) for r in routes]
        if not prim or any(w is None for w in walks):
            self._flag("route", flow=fid, reason="not a walk joining the two end sites")
        elif any(failed[e] for r in routes for e in r):
            self._flag("route", flow=fid, reason="uses a link that was cut")
        # 1+1: both routes exist and share no link
        if self._protected_l[c]:
            shared = sorted(set(prim) & set(back))
            if not prim or not back or shared:
                self._flag("protection", flow=fid, backup_hops=len(back), shared=shared)
        # latency against the class bound at the utilisation of the pool it sits in
        s = sl if 0 <= sl < self.S else pool
        ms, sw = self._link_ms_l, self._switch_ms
        lats = [
            sum(ms[e] + queue[e][s] for e in r) + len(r) * sw
            for r, w in zip(routes, walks, strict=True)
            if w is not None and r
        ]
        if lats:
            lat = max(lats)
            self.last_latency_ms[fid] = lat
            bound = self._bound_l[c]
            if lat > bound * (1.0 + _LAT_RTOL) + _LAT_ATOL_MS:
                self._flag("latency", flow=fid, latency_ms=round(lat, 6), bound_ms=bound)
        # trust of every site on a Zone I/II route
        if self._needs_trust_l[c]:
            sites = {n for w in walks if w is not None for n in w}
            low = sorted(n for n in sites if trust[n] < self._trust_thr)
            if low:
                self._flag("trust", flow=fid, sites=low, threshold=self._trust_thr)
        # grant: one of the class's positive levels (integer rounding allowed)
        levels, kb = self._grant_l[c], int(f.kbps)
        if not levels or min(abs(g - kb) for g in levels) > 0.5 + 1e-9:
            self._flag("grant", flow=fid, kbps=kb, levels_kbps=levels)
