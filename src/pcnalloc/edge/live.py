"""Live state of one region's allocation service: decide, reserve, expire and release flows.

:class:`LiveRegion` keeps the service's own :class:`~pcnalloc.envs.state.NetworkState` of the
whole network (its local view) and decides the requests that originate in its region. An
accepted request reserves its capacity at once, as ``PowerCommEnv.step`` does (same candidate
routes, pre-emption plan and history). A flow holds its capacity for ``holding_s`` seconds of
the :class:`ServiceClock`; expired flows are released before the next request is decided, and
before a release or a metrics read. The HTTP layer is :mod:`pcnalloc.edge.service`.
"""

import heapq
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import numpy as np
from starlette.exceptions import HTTPException

from pcnalloc.config import SLICES
from pcnalloc.edge.agent import EdgeAgent, LocalState
from pcnalloc.envs.observation import History
from pcnalloc.envs.state import NetworkState
from pcnalloc.errors import PcnallocError
from pcnalloc.network.model import CommNetwork
from pcnalloc.traffic.generator import Request

OUTCOMES = ("accepted", "rejected", "blocked", "refused")


class ServiceError(PcnallocError):
    """A service that cannot start: bad token, region, or configuration."""


class ServiceClock:
    """Service time (s): seconds since UTC midnight of the start day, advanced monotonically."""

    def __init__(self) -> None:
        now = datetime.now(timezone.utc)
        self._t0 = (now - now.replace(hour=0, minute=0, second=0, microsecond=0)).total_seconds()
        self._m0 = time.monotonic()

    def __call__(self) -> float:
        return self._t0 + time.monotonic() - self._m0


class LiveRegion:
    """The live network state of one region's service and what executes its decisions.

    Args:
        agent: the region's edge agent (with its rule engine and audit log).
        network: the communication network.
        region: region index whose requests are decided; None = every region.
        clock: service time in seconds (default :class:`ServiceClock`).
        latency_window: decisions kept for latency percentiles.
    """

    def __init__(
        self,
        agent: EdgeAgent,
        network: CommNetwork,
        region: int | None,
        *,
        clock: Callable[[], float] | None = None,
        latency_window: int = 8192,
    ) -> None:
        if region is not None and not 0 <= region < network.n_regions:
            raise ServiceError(
                f"region {region} is not in network {network.name!r}; accepted: "
                f"0..{network.n_regions - 1}"
            )
        self.agent, self.net, self.region = agent, network, region
        self.cfg, self.catalog = agent.cfg, agent.catalog
        self.clock = clock or ServiceClock()
        self.state = NetworkState(network)
        self.history = History(agent.cfg.history, agent.catalog)
        self.emergency_R = np.zeros(network.n_regions, dtype=np.int64)
        from pcnalloc.network.paths import shared_path_cache

        self.paths = shared_path_cache(
            network, int(self.cfg.network.path_cache or self.cfg.k_paths)
        )
        self.region_sites = [
            n
            for i, n in enumerate(network.site_names)
            if region is None or int(network.site_region[i]) == region
        ]
        self.site_index = {n: i for i, n in enumerate(network.site_names)}
        self.flow_of: dict[str, int] = {}  # public flow id → state flow id
        self.public_of: dict[int, str] = {}
        self._expiry: list[tuple[float, int]] = []
        self.counts: Counter[str] = Counter()
        self.latency_us = np.zeros(latency_window)
        self.n_requests = 0
        self.started = time.monotonic()
        self._prefix = f"r{region}-" if region is not None else "all-"

    def expire(self, now: float) -> None:
        """Release every flow whose holding time ended at or before ``now``."""
        q = self._expiry
        while q and q[0][0] <= now:
            _, fid = heapq.heappop(q)
            if self.state.release(fid) is not None:
                del self.flow_of[self.public_of.pop(fid)]
                self.counts["expired"] += 1

    def _sites(self, nodes: np.ndarray, src: int) -> list[str]:
        """Site names of a route, oriented from ``src`` (cached routes are undirected)."""
        idx = [i for i in nodes.tolist() if i < self.net.n_sites]
        if idx and idx[0] != src:
            idx.reverse()
        return [self.net.site_names[i] for i in idx]

    def allocate(
        self, cls_name: str, src: str, dst: str, holding_s: float, request_id: str | None
    ) -> dict[str, Any]:
        """Decide one request on the live state and reserve its capacity if accepted.

        Returns:
            The fields of :class:`AllocationResponse`.

        Raises:
            HTTPException: 409 when ``request_id`` names a flow that is still active.
        """
        t0 = time.perf_counter_ns()
        now = float(self.clock())
        self.expire(now)
        if request_id is not None and request_id in self.flow_of:
            raise HTTPException(
                409,
                f"request_id {request_id!r} names an active flow; "
                "release it first or send a new id",
            )
        rid = request_id or f"{self._prefix}{self.n_requests}"
        cat, st, cfg = self.catalog, self.state, self.cfg
        c = cat.names.index(cls_name)
        req = Request(
            self.n_requests, now, c, self.site_index[src], self.site_index[dst], float(holding_s)
        )
        self.n_requests += 1
        cs = self.paths.candidates(
            req.src,
            req.dst,
            cfg.k_paths,
            protected=bool(cat.protected_C[c]),
            failed_E1=st.failed_E1,
            failed_key=st.failed_key,
        )
        d = self.agent.decide(LocalState(st, req, self.emergency_R, self.history, cs))
        ev = self.agent.last_evaluation
        assert ev is not None
        a, L, E = d.action, cfg.grant_levels, self.net.n_links
        out: dict[str, Any] = {
            "path": None,
            "backup_path": None,
            "latency_ms": None,
            "expires_at_s": None,
            "flow_id": None,
            "preempted_flow_ids": [],
        }
        grant = 0.0
        if a == cfg.n_actions - 1:
            outcome = "rejected" if ev.any_valid else "blocked"
        elif not ev.mask_A[a]:
            outcome = "refused"  # the network cannot carry it (rules file without capacity)
        else:
            k = a // L
            links = cs.links_KH[k][cs.links_KH[k] < E]
            backup = (
                cs.backup_links_KB[k][cs.backup_links_KB[k] < E]
                if cs.has_backup_K[k]
                else links[:0]
            )
            s, kbps = int(cat.slice_C[c]), int(ev.kbps_A[a])
            plan: list[int] | None = []
            if ev.needs_preempt_A[a]:
                plan = st.preemption_plan(np.concatenate([links, backup]), s, d.priority, kbps)
            if plan is None:
                outcome = "refused"
            else:
                for fid in plan:
                    if st.release(fid) is not None:
                        pub = self.public_of.pop(fid)
                        del self.flow_of[pub]
                        out["preempted_flow_ids"].append(pub)
                flow = st.admit(
                    cls=c,
                    slice_=s,
                    priority=d.priority,
                    kbps=kbps,
                    links=links,
                    backup_links=backup,
                    end_s=now + req.holding_s,
                    src=req.src,
                    dst=req.dst,
                    value=float(cat.value_C[c] * ev.grant_A[a]),
                    counted=True,
                )
                heapq.heappush(self._expiry, (flow.end_s, flow.id))
                self.flow_of[rid], self.public_of[flow.id] = flow.id, rid
                outcome, grant = "accepted", float(ev.grant_A[a])
                out.update(
                    path=self._sites(cs.nodes_KN[k], req.src),
                    flow_id=rid,
                    latency_ms=float(ev.latency_ms_K[k]),
                    expires_at_s=flow.end_s,
                )
                if cs.has_backup_K[k]:
                    out["backup_path"] = self._sites(cs.backup_nodes_KN[k], req.src)
                self.counts["preempted"] += len(out["preempted_flow_ids"])
        self.history.push(req, grant, outcome == "accepted")
        us = (time.perf_counter_ns() - t0) / 1e3
        self.latency_us[self.counts["decisions"] % self.latency_us.shape[0]] = us
        self.counts["decisions"] += 1
        self.counts[outcome] += 1
        self.counts["intercepted"] += d.intercepted
        out.update(
            request_id=rid,
            outcome=outcome,
            action=a,
            proposal=d.proposal,
            grant=grant,
            granted_mbps=grant * float(cat.bandwidth_kbps_C[c]) / 1000.0,
            bound_ms=float(cat.max_latency_ms_C[c]),
            intercepted=d.intercepted,
            rule_ids=list(d.rule_ids),
            reasons=[{"rule_id": r, "reason": m} for r, m in d.reasons],
            soft_rule_ids=list(d.soft_ids),
            priority=d.priority,
            note=d.note,
            decision_latency_us=us,
        )
        return out

    def release(self, flow_id: str) -> dict[str, Any]:
        """Release an active flow now.

        Raises:
            HTTPException: 404 when the flow is not active.
        """
        now = float(self.clock())
        self.expire(now)
        fid = self.flow_of.pop(flow_id, None)
        if fid is None:
            raise HTTPException(
                404,
                f"flow {flow_id!r} is not active (unknown, expired, "
                "released or pre-empted); active flows: "
                f"{len(self.flow_of)}",
            )
        del self.public_of[fid]
        f = self.state.release(fid)
        assert f is not None
        self.counts["released"] += 1
        if self.agent.audit is not None:
            self.agent.audit.append("release", {"flow_id": flow_id, "time_s": round(now, 6)})
        return {
            "flow_id": flow_id,
            "released": True,
            "service_class": self.catalog.names[f.cls],
            "mbps": f.kbps / 1000.0,
            "remaining_s": max(f.end_s - now, 0.0),
        }

    def metrics(self) -> dict[str, Any]:
        self.expire(float(self.clock()))
        n = int(self.counts["decisions"])
        lat = self.latency_us[: min(n, self.latency_us.shape[0])]
        pct = np.percentile(lat, [50, 99]) if lat.size else (0.0, 0.0)
        util = self.state.utilisation_ES().max(axis=0) if self.net.n_links else np.zeros(3)
        return {
            "decisions": n,
            "outcomes": {o: int(self.counts[o]) for o in OUTCOMES},
            "intercepted": int(self.counts["intercepted"]),
            "interception_rate": self.counts["intercepted"] / n if n else 0.0,
            "preempted": int(self.counts["preempted"]),
            "released": int(self.counts["released"]),
            "expired": int(self.counts["expired"]),
            "active_flows": len(self.flow_of),
            "invalid_requests": int(self.counts["invalid"]),
            "unauthorized": int(self.counts["unauthorized"]),
            "max_utilisation": {s: float(u) for s, u in zip(SLICES, util, strict=True)},
            "decision_latency_us": {
                "p50": float(pct[0]),
                "p99": float(pct[1]),
                "window": int(lat.size),
            },
        }


__all__ = ["OUTCOMES", "LiveRegion", "ServiceClock", "ServiceError"]
