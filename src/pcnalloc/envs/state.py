"""Live network state: per-link slice pools by priority, active flows, failures, trust.

Bandwidth is held in integer kb/s so the pool invariants (0 ≤ used ≤ capacity) are exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pcnalloc.network.model import CommNetwork

N_PRIORITIES = 8
_BIG = np.int64(1) << 50


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
        self.on_link: list[set[int]] = [set() for _ in range(self.cap_ES1.shape[0])]
        self._next_id = 0

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
        all_links = np.concatenate([links, backup_links])
        free = self.cap_ES1[all_links, slice_] - self.used_ES1[all_links, slice_]
        if (free < kbps).any() or self.failed_E1[all_links].any():
            raise RuntimeError("admit() called without capacity; state left unchanged")
        self.used_ES1[all_links, slice_] += kbps
        self.used_ESP1[all_links, slice_, priority] += kbps
        flow = Flow(
            id=self._next_id,
            cls=cls,
            slice=slice_,
            priority=priority,
            kbps=kbps,
            links=links,
            backup_links=backup_links,
            end_s=end_s,
            src=src,
            dst=dst,
            value=value,
            counted=counted,
            full_holding_s=full_holding_s,
        )
        self.flows[flow.id] = flow
        for e in all_links.tolist():
            self.on_link[e].add(flow.id)
        self._next_id += 1
        return flow

    def release(self, flow_id: int) -> Flow | None:
        """Free a flow's capacity; returns None if it was already gone (pre-empted, cut)."""
        flow = self.flows.pop(flow_id, None)
        if flow is None:
            return None
        all_links = np.concatenate([flow.links, flow.backup_links])
        for e in all_links.tolist():
            self.on_link[e].discard(flow_id)
        self.used_ES1[all_links, flow.slice] -= flow.kbps
        self.used_ESP1[all_links, flow.slice, flow.priority] -= flow.kbps
        return flow

    def flows_on(self, link: int) -> list[Flow]:
        """Flows whose primary or backup route uses ``link``, in admission order."""
        return [self.flows[i] for i in sorted(self.on_link[link])]

    def preemption_plan(
        self, links: np.ndarray, slice_: int, priority: int, kbps: int
    ) -> list[int] | None:
        """Flows to pre-empt so ``kbps`` fits on ``links`` in ``slice_``, or None if impossible.

        RSVP-TE style: only flows whose hold priority is strictly lower (numerically greater)
        than the request's setup priority; the lowest priority first, then the largest, so the
        fewest and least important flows go.
        """
        deficit = {
            int(e): kbps - int(self.cap_ES1[e, slice_] - self.used_ES1[e, slice_]) for e in links
        }
        deficit = {e: d for e, d in deficit.items() if d > 0}
        if not deficit:
            return []
        ids = set().union(*(self.on_link[e] for e in deficit))
        cands = [
            f for f in (self.flows[i] for i in ids) if f.slice == slice_ and f.priority > priority
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
