"""Live network state: per-link slice pools by priority, active flows, failures, trust.

Bandwidth is held in integer kb/s so the pool invariants (0 ≤ used ≤ capacity) are exact.

Pre-emption planning reads an index of the flows by (link, slice, hold priority, kb/s); each
bucket holds flow ids in admission order, which is id order, so the plan walks candidates in
its preference order without collecting or sorting the flows of the deficit links.

The indexes (:attr:`NetworkState.on_link`, :attr:`NetworkState.by_link_sp`) are brought up
to date when read: an admission only queues its flow, and a flow released before anyone read
an index is never entered in it (most flows, where nothing pre-empts and no link is cut).
Queued flows are entered in id order after every indexed one, so the buckets stay in id
order and every read sees exactly the index eager upkeep would have built.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np
from numba import njit

from pcnalloc.network.model import CommNetwork

N_PRIORITIES = 8
_BIG = np.int64(1) << 50


@njit(cache=True, nogil=True)
def _book(
    cap_ES, used_ES, used_ESP, failed_E, links, backup, s, p, kbps, check
):  # pragma: no cover - compiled
    """Add ``kbps`` (negative: release) to the pools of every distinct link of the route(s).

    With ``check``, nothing changes and False comes back if a listed link is failed or has
    less than ``kbps`` free. A link listed twice is booked once, as numpy's fancy-indexed
    ``used[links, s] += kbps`` did before this compiled form (one call instead of a
    concatenation and four fancy-indexed reads and writes per admission).
    """
    n1 = links.shape[0]
    n = n1 + backup.shape[0]
    if check:
        for i in range(n):
            e = links[i] if i < n1 else backup[i - n1]
            if failed_E[e] or cap_ES[e, s] - used_ES[e, s] < kbps:
                return False
    for i in range(n):
        e = links[i] if i < n1 else backup[i - n1]
        seen = False
        for j in range(i):
            if (links[j] if j < n1 else backup[j - n1]) == e:
                seen = True
                break
        if not seen:
            used_ES[e, s] += kbps
            used_ESP[e, s, p] += kbps
    return True


@dataclass(slots=True)
class Flow:
    """An admitted flow and the capacity it holds."""

    id: int
    cls: int
    slice: int
    priority: int
    kbps: int
    links: np.ndarray
    backup_links: np.ndarray
    end_s: float
    src: int
    dst: int
    value: float
    counted: bool
    """Admitted during the measured episode (warm-start flows are not)."""
    full_holding_s: float = 0.0
    """Holding time of the service as first requested (restorations keep the original's)."""


class NetworkState:
    """Capacity pools, flows and failures of one network.

    Arrays indexed by link have E + 1 rows; row E is the sentinel used to pad paths, with
    effectively infinite capacity, never failed, and never used.
    """

    def __init__(self, net: CommNetwork) -> None:
        self.net = net
        E, S = net.pool_capacity_kbps.shape
        self.cap_ES1 = np.vstack([net.pool_capacity_kbps, np.full((1, S), _BIG)]).astype(np.int64)
        self.reset()
        self._E, self._S = E, S

    def reset(self) -> None:
        E1, S = self.cap_ES1.shape
        self.used_ESP1 = np.zeros((E1, S, N_PRIORITIES), dtype=np.int64)
        self.used_ES1 = np.zeros((E1, S), dtype=np.int64)
        self.failed_E1 = np.zeros(E1, dtype=bool)
        self.failed_key: tuple[int, ...] = ()
        self.n_failed = 0
        self.trust_N1 = np.ones(self.net.n_sites + 1)
        self.flows: dict[int, Flow] = {}
        self._on_link: list[set[int]] = [set() for _ in range(self.cap_ES1.shape[0])]
        self._by_link_sp: list[dict[tuple[int, int], dict[int, dict[int, None]]]] = [
            {} for _ in range(self.cap_ES1.shape[0])
        ]
        self._unindexed: dict[int, Flow] = {}
        """Admitted flows not yet entered in the indexes, in id order."""
        self._next_id = 0

    @property
    def on_link(self) -> list[set[int]]:
        """Per link: ids of the flows whose primary or backup route uses it."""
        if self._unindexed:
            self._index_queued()
        return self._on_link

    @property
    def by_link_sp(self) -> list[dict[tuple[int, int], dict[int, dict[int, None]]]]:
        """Per link: (slice, priority) → kb/s → ids of the flows using the link, in id order
        (a dict used as an ordered set; ids are issued in increasing order by :meth:`admit`)."""
        if self._unindexed:
            self._index_queued()
        return self._by_link_sp

    def _index_queued(self) -> None:
        """Enter the queued flows in the indexes, in id order."""
        on_link, by_link_sp = self._on_link, self._by_link_sp
        for fid, flow in self._unindexed.items():
            sp, kbps = (flow.slice, flow.priority), flow.kbps
            route = flow.links.tolist()
            if flow.backup_links.size:
                route += flow.backup_links.tolist()
            for e in route:
                on_link[e].add(fid)
                by_kb = by_link_sp[e].get(sp)
                if by_kb is None:
                    by_link_sp[e][sp] = {kbps: {fid: None}}
                else:
                    ids = by_kb.get(kbps)
                    if ids is None:
                        by_kb[kbps] = {fid: None}
                    else:
                        ids[fid] = None
        self._unindexed.clear()

    def set_failed(self, link: int, failed: bool) -> None:
        """Mark a link cut or repaired (keeps :attr:`failed_key` in step)."""
        self.failed_E1[link] = failed
        self.failed_key = tuple(int(i) for i in np.flatnonzero(self.failed_E1))
        self.n_failed = len(self.failed_key)

    def residual(self, s: int) -> np.ndarray:
        """Free kb/s of slice ``s`` per link, shape (E + 1,); failed links have none."""
        r = self.cap_ES1[:, s] - self.used_ES1[:, s]
        return np.where(self.failed_E1, 0, r)

    def utilisation_ES(self) -> np.ndarray:
        """Used / capacity per link and slice, shape (E, S)."""
        return self.used_ES1[:-1] / self.cap_ES1[:-1]

    def admit(
        self,
        *,
        cls: int,
        slice_: int,
        priority: int,
        kbps: int,
        links: np.ndarray,
        backup_links: np.ndarray,
        end_s: float,
        src: int,
        dst: int,
        value: float,
        counted: bool,
        full_holding_s: float = 0.0,
    ) -> Flow:
        """Reserve ``kbps`` on every link of the route(s); the caller has checked capacity."""
        if not _book(
            self.cap_ES1,
            self.used_ES1,
            self.used_ESP1,
            self.failed_E1,
            links,
            backup_links,
            slice_,
            priority,
            kbps,
            True,
        ):
            raise RuntimeError("admit() called without capacity; state left unchanged")
        fid = self._next_id
        flow = Flow(
            fid,
            cls,
            slice_,
            priority,
            kbps,
            links,
            backup_links,
            end_s,
            src,
            dst,
            value,
            counted,
            full_holding_s,
        )
        self.flows[fid] = flow
        self._unindexed[fid] = flow  # entered in the indexes when they are next read
        self._next_id += 1
        return flow

    def release(self, flow_id: int) -> Flow | None:
        """Free a flow's capacity; returns None if it was already gone (pre-empted, cut)."""
        flow = self.flows.pop(flow_id, None)
        if flow is None:
            return None
        if self._unindexed.pop(flow_id, None) is None:  # else: never entered in an index
            self._unindex(flow)
        _book(
            self.cap_ES1,
            self.used_ES1,
            self.used_ESP1,
            self.failed_E1,
            flow.links,
            flow.backup_links,
            flow.slice,
            flow.priority,
            -flow.kbps,
            False,
        )
        return flow

    def _unindex(self, flow: Flow) -> None:
        """Remove an indexed flow from the indexes."""
        flow_id, sp, kbps = flow.id, (flow.slice, flow.priority), flow.kbps
        on_link, by_link_sp = self._on_link, self._by_link_sp
        route = flow.links.tolist()
        if flow.backup_links.size:
            route += flow.backup_links.tolist()
        for e in route:
            on_link[e].discard(flow_id)
            by_kb = by_link_sp[e].get(sp)
            ids = None if by_kb is None else by_kb.get(kbps)
            if ids is None:
                continue  # a link listed twice on the route, already cleared
            ids.pop(flow_id, None)
            if not ids:  # drop empty buckets so planning never visits them
                del by_kb[kbps]
                if not by_kb:
                    del by_link_sp[e][sp]

    def flows_on(self, link: int) -> list[Flow]:
        """Flows whose primary or backup route uses ``link``, in admission order."""
        return [self.flows[i] for i in sorted(self.on_link[link])]

    def preemption_plan(  # noqa: C901 - the greedy plan and its heap merge in one hot frame
        self, links: np.ndarray, slice_: int, priority: int, kbps: int
    ) -> list[int] | None:
        """Flows to pre-empt so ``kbps`` fits on ``links`` in ``slice_``, or None if impossible.

        RSVP-TE style: only flows whose hold priority is strictly lower (numerically greater)
        than the request's setup priority; the lowest priority first, then the largest, then
        the oldest, so the fewest and least important flows go. A candidate is taken only if
        it uses a link still short of capacity.

        The candidates come from :attr:`by_link_sp` in that order: priority levels from the
        lowest, kb/s buckets from the largest, and within a bucket a merge by id of the
        deficit links' id-ordered buckets, dropping a link's stream once the link has enough.
        The result equals :func:`_preemption_plan_reference` (same ids, same order).
        """
        cap_S, used_S = self.cap_ES1[:, slice_], self.used_ES1[:, slice_]
        deficit: dict[int, int] = {}
        for e in np.asarray(links).tolist():
            d = kbps - int(cap_S[e] - used_S[e])
            if d > 0:
                deficit[e] = d
        if not deficit:
            return []
        short = len(deficit)
        on_link, by_link_sp = self.on_link, self.by_link_sp
        chosen: list[int] = []

        def take(fid: int, kb: int) -> bool:
            """Pre-empt ``fid`` and lower the deficit of its links; True once none is short."""
            nonlocal short
            chosen.append(fid)
            for e2 in deficit:
                if fid in on_link[e2]:
                    if 0 < deficit[e2] <= kb:
                        short -= 1
                    deficit[e2] -= kb
            return short == 0

        for p in range(N_PRIORITIES - 1, priority, -1):
            sp = (slice_, p)
            found = [(e, by_link_sp[e].get(sp)) for e in deficit]
            level = [(e, by_kb) for e, by_kb in found if by_kb]
            if not level:
                continue
            sizes = sorted({kb for _, by_kb in level for kb in by_kb}, reverse=True)
            for kb in sizes:
                streams = [(e, by_kb[kb]) for e, by_kb in level if kb in by_kb]
                if len(streams) == 1:
                    e, ids = streams[0]
                    for fid in ids:
                        if deficit[e] <= 0:
                            break
                        if take(fid, kb):
                            return chosen
                    continue
                heap: list[tuple[int, int, int]] = []  # (flow id, stream, link)
                iters = []
                for e, ids in streams:
                    if deficit[e] > 0:
                        iters.append(iter(ids))
                        heap.append((next(iters[-1]), len(iters) - 1, e))
                heapq.heapify(heap)
                last = -1
                while heap:
                    fid, j, e = heap[0]
                    if deficit[e] <= 0:  # this link has enough: its stream stops
                        heapq.heappop(heap)
                        continue
                    nxt = next(iters[j], None)
                    if nxt is None:
                        heapq.heappop(heap)
                    else:
                        heapq.heapreplace(heap, (nxt, j, e))
                    if fid == last:  # the same flow seen through another link
                        continue
                    last = fid
                    if take(fid, kb):
                        return chosen
        return None

    def check_invariants(self) -> None:
        """Raise AssertionError if pools and flows disagree (used by tests)."""
        used = np.zeros_like(self.used_ESP1)
        flows = list(self.flows.values())
        if flows:
            routes = [np.concatenate([f.links, f.backup_links]) for f in flows]
            sizes = [r.size for r in routes]
            e = np.concatenate(routes)
            s = np.repeat([f.slice for f in flows], sizes)
            p = np.repeat([f.priority for f in flows], sizes)
            kb = np.repeat([f.kbps for f in flows], sizes)
            np.add.at(used, (e, s, p), kb)
        assert (used == self.used_ESP1).all(), "pools disagree with the flow table"
        assert (self.used_ESP1.sum(-1) == self.used_ES1).all(), "priority split disagrees"
        assert (self.used_ES1 >= 0).all(), "a pool went below zero"
        assert (self.used_ES1 <= self.cap_ES1).all(), "a pool exceeds its capacity"
        assert (self.used_ES1[-1] == 0).all(), "the sentinel link carries traffic"
        index = {(e, i) for e, ids in enumerate(self.on_link) for i in ids}
        truth = {(int(e), f.id) for f in flows for e in np.concatenate([f.links, f.backup_links])}
        assert index == truth, "the link → flow index disagrees with the flow table"
        keyed: set[tuple[int, int, int, int, int]] = set()
        for link, by_sp in enumerate(self.by_link_sp):
            for (s_, p_), by_kb in by_sp.items():
                assert by_kb, "an empty (slice, priority) bucket was left in the index"
                for rate, ids in by_kb.items():
                    assert ids, "an empty kb/s bucket was left in the index"
                    order = list(ids)
                    assert order == sorted(order), "a pre-emption bucket is out of id order"
                    keyed.update((link, i, s_, p_, rate) for i in order)
        truth_k = {
            (e, f.id, f.slice, f.priority, f.kbps) for (e, i) in truth for f in [self.flows[i]]
        }
        assert keyed == truth_k, "the pre-emption index disagrees with the flow table"

    def preemption_plan_reference(
        self, links: np.ndarray, slice_: int, priority: int, kbps: int
    ) -> list[int] | None:
        """:meth:`preemption_plan` computed from the flow table (see the module function)."""
        return _preemption_plan_reference(self, links, slice_, priority, kbps)


def _preemption_plan_reference(
    state: NetworkState, links: np.ndarray, slice_: int, priority: int, kbps: int
) -> list[int] | None:
    """The pre-emption plan as first written: collect and sort every candidate flow.

    Kept as the definition :meth:`NetworkState.preemption_plan` must reproduce exactly
    (tests and ``benchmarks/bench_preempt.py`` compare the two).
    """
    deficit = {
        int(e): kbps - int(state.cap_ES1[e, slice_] - state.used_ES1[e, slice_]) for e in links
    }
    deficit = {e: d for e, d in deficit.items() if d > 0}
    if not deficit:
        return []
    ids = set().union(*(state.on_link[e] for e in deficit))
    cands = [
        f for f in (state.flows[i] for i in ids) if f.slice == slice_ and f.priority > priority
    ]
    cands.sort(key=lambda f: (-f.priority, -f.kbps, f.id))
    chosen: list[int] = []
    for f in cands:
        on = set(map(int, f.links)) | set(map(int, f.backup_links))
        if not any(e in on and d > 0 for e, d in deficit.items()):
            continue
        chosen.append(f.id)
        for e in deficit:
            if e in on:
                deficit[e] -= f.kbps
        if all(d <= 0 for d in deficit.values()):
            return chosen
    return None
