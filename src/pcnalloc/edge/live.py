"""Live state of one region's allocation service: decide, reserve, expire and release flows.

:class:`LiveRegion` keeps the service's own :class:`~pcnalloc.envs.state.NetworkState` of the
whole network (its local view) and decides the requests that originate in its region. An
accepted request reserves its capacity at once, as ``PowerCommEnv.step`` does (same candidate
routes, pre-emption plan and history). A flow holds its capacity for ``holding_s`` seconds of
the :class:`ServiceClock`; expired flows are released before the next request is decided, and
before a release or a metrics read. Every change is written to the audit log as it happens
(records in :mod:`pcnalloc.edge.flowbook`), so a service killed at any instant restarts
from its log with the same flows, pools and ids. The HTTP layer is
:mod:`pcnalloc.edge.service`.
"""

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import numpy as np
from starlette.exceptions import HTTPException

from pcnalloc.config import SLICES
from pcnalloc.edge.agent import EdgeAgent, LocalState
from pcnalloc.edge.flowbook import FlowBook, read_records
from pcnalloc.envs.observation import History
from pcnalloc.envs.state import NetworkState
from pcnalloc.errors import PcnallocError
from pcnalloc.network.model import CommNetwork
from pcnalloc.traffic.generator import Request

log = logging.getLogger(__name__)

OUTCOMES = ("accepted", "rejected", "blocked", "refused")
RESUMED_TYPES = frozenset({"decision", "outcome", "expiry", "release", "restart"})


class ServiceError(PcnallocError):
    """A service that cannot start: bad token, region, configuration or audit log."""


def utc_midnight(now_unix: float | None = None) -> float:
    """Unix time (s) of the UTC midnight that starts the day of ``now_unix`` (default now)."""
    now = datetime.fromtimestamp(time.time() if now_unix is None else now_unix, timezone.utc)
    return now.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


class ServiceClock:
    """Service time (s): seconds since ``epoch_unix``, advanced monotonically.

    Args:
        epoch_unix: unix time of service time 0 (default: UTC midnight of today). A service
            resuming its log keeps the epoch the log's header names, so flow end times stay
            meaningful across restarts (and days).
        at_least_s: start no earlier than this service time (the last time in the log), so
            service time never runs backwards across a restart even if the wall clock does.
    """

    def __init__(self, epoch_unix: float | None = None, at_least_s: float = 0.0) -> None:
        self.epoch_unix = utc_midnight() if epoch_unix is None else float(epoch_unix)
        self._t0 = max(time.time() - self.epoch_unix, at_least_s)
        self._m0 = time.monotonic()

    def __call__(self) -> float:
        return self._t0 + time.monotonic() - self._m0


class LiveRegion:
    """The live network state of one region's service and what executes its decisions.

    Every public method holds :attr:`lock` (a re-entrant lock) for its whole duration, so a
    decision (features → model → rules → reservation → audit records) is atomic with respect
    to every other request, release, expiry, tick and read, whichever thread calls it.

    With an audit log on the agent, the log is the state: on construction the log is read
    (and, when keyed, verified with the log's own public key), replayed onto a fresh
    :class:`~pcnalloc.edge.flowbook.FlowBook` (flows still alive resume, ids continue) and a
    ``restart`` record is written. Each change then appends its record before the call
    returns (``outcome``, ``expiry``, ``release``).

    Args:
        agent: the region's edge agent (with its rule engine and audit log).
        network: the communication network.
        region: region index whose requests are decided; None = every region.
        clock: service time in seconds (default :class:`ServiceClock`, on the log's epoch).
        latency_window: decisions kept for latency percentiles.
        resume: replay the agent's audit log (if it has records beyond its header).

    Raises:
        ServiceError: a region the network lacks, or a log that does not verify or replay.
    """

    def __init__(
        self,
        agent: EdgeAgent,
        network: CommNetwork,
        region: int | None,
        *,
        clock: Callable[[], float] | None = None,
        latency_window: int = 8192,
        resume: bool = True,
    ) -> None:
        if region is not None and not 0 <= region < network.n_regions:
            raise ServiceError(
                f"region {region} is not in network {network.name!r}; accepted: "
                f"0..{network.n_regions - 1}"
            )
        self.agent, self.net, self.region = agent, network, region
        self.cfg, self.catalog = agent.cfg, agent.catalog
        self.lock = threading.RLock()
        self.book = FlowBook(network, agent.catalog, agent.cfg.history)
        self.emergency_R = np.zeros(network.n_regions, dtype=np.int64)
        from pcnalloc.network.paths import shared_path_cache

        self.paths = shared_path_cache(
            network, int(self.cfg.network.path_cache or self.cfg.route_pool)
        )
        self.region_sites = [
            n
            for i, n in enumerate(network.site_names)
            if region is None or int(network.site_region[i]) == region
        ]
        self.site_index = {n: i for i, n in enumerate(network.site_names)}
        self.latency_us = np.zeros(latency_window)
        self._n_timed = 0  # decisions timed by this process (replayed ones are not)
        self.started = time.monotonic()
        self._prefix = f"r{region}-" if region is not None else "all-"
        self.resumed: dict[str, Any] | None = None
        epoch = self._resume() if resume and agent.audit is not None else None
        self.clock = clock or ServiceClock(epoch, at_least_s=self.book.last_time_s)
        if self.resumed is not None:
            now = float(self.clock())
            self.resumed["time_s"] = round(now, 6)
            self.audit("restart", dict(self.resumed))
            self._expire(now)

    # ------------------------------------------------------------------ the book's parts
    @property
    def state(self) -> NetworkState:
        return self.book.state

    @property
    def history(self) -> History:
        return self.book.history

    @property
    def counts(self) -> Counter[str]:
        return self.book.counts

    @property
    def flow_of(self) -> dict[str, int]:
        return self.book.flow_of

    @property
    def public_of(self) -> dict[int, str]:
        return self.book.public_of

    @property
    def n_requests(self) -> int:
        return self.book.n_requests

    # ------------------------------------------------------------------ audit
    def audit(self, type_: str, body: dict[str, Any]) -> None:
        if self.agent.audit is not None:
            self.agent.audit.append(type_, body)

    def _resume(self) -> float | None:
        """Verify and replay the agent's log; the clock epoch its header names."""
        from pcnalloc.edge.audit_verify import verify
        from pcnalloc.edge.flowbook import ReplayError

        audit = self.agent.audit
        pub = audit.public_key
        if pub is not None:
            res = verify(audit.path, pub, allow_unsigned_tail=True)
            if not res.ok:
                raise ServiceError(
                    f"audit log {str(audit.path)!r} does not verify, so the service cannot "
                    f"resume from it: {res}; keep the log as evidence and start a new one, "
                    "or `pcnalloc audit repair` a torn tail"
                )
        try:
            recs = read_records(audit.path)
            for rec in recs:
                self.book.apply(rec)
        except ReplayError as err:
            raise ServiceError(f"audit log {str(audit.path)!r} cannot be resumed: {err}") from None
        header = recs[0]["body"] if recs else {}
        if any(r["type"] in RESUMED_TYPES for r in recs):
            self.resumed = {
                "replayed_records": len(recs),
                "active_flows": len(self.book.flow_of),
                "next_request": self.book.n_requests,
                "pools_sha256": self.book.snapshot()["pools_sha256"],
            }
            log.info(
                "resumed %d flows from %d records of %s",
                len(self.book.flow_of),
                len(recs),
                audit.path,
            )
        return header.get("clock_epoch_unix")

    # ------------------------------------------------------------------ changes
    def expire(self, now: float) -> None:
        """Release every flow whose holding time ended at or before ``now``."""
        with self.lock:
            self._expire(now)

    def _expire(self, now: float) -> None:
        gone = self.book.expire(now)
        if gone:
            self.audit("expiry", {"time_s": now, "flows": [[p, f] for p, f in gone]})

    def tick(self) -> None:
        """Idle work: expire ended flows and sign the log's tail if its time cadence is due."""
        with self.lock:
            self._expire(float(self.clock()))
            if self.agent.audit is not None:
                self.agent.audit.tick()

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
        with self.lock:
            return self._allocate(cls_name, src, dst, holding_s, request_id)

    def _allocate(
        self, cls_name: str, src: str, dst: str, holding_s: float, request_id: str | None
    ) -> dict[str, Any]:
        t0 = time.perf_counter_ns()
        now = float(self.clock())
        self._expire(now)
        book = self.book
        if request_id is not None and request_id in book.flow_of:
            raise HTTPException(
                409,
                f"request_id {request_id!r} names an active flow; "
                "release it first or send a new id",
            )
        rid = request_id or book.next_public_id(self._prefix)
        cat, st, cfg = self.catalog, book.state, self.cfg
        c = cat.names.index(cls_name)
        req = Request(
            book.n_requests, now, c, self.site_index[src], self.site_index[dst], float(holding_s)
        )
        book.n_requests += 1
        cs = self.agent.candidates_for(st, req, self.emergency_R)
        d = self.agent.decide(LocalState(st, req, self.emergency_R, book.history, cs))
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
        grant, reason, flow_rec, victims = 0.0, None, None, []
        if a == cfg.n_actions - 1:
            outcome = "rejected" if ev.any_valid else "blocked"
            reason = (
                "rejected although a valid route existed"
                if ev.any_valid
                else "no route satisfies the rules and capacity"
            )
        elif not ev.mask_A[a]:
            outcome = "refused"  # the network cannot carry it (rules file without capacity)
            reason = "the chosen action is infeasible on the live state"
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
                reason = "pre-emption cannot free enough capacity on the chosen route"
            else:
                for fid in plan:
                    pub = book.preempt(fid)
                    if pub is not None:
                        victims.append([pub, fid])
                        out["preempted_flow_ids"].append(pub)
                value = float(cat.value_C[c] * ev.grant_A[a])
                flow = book.admit(
                    rid,
                    cls=c,
                    slice_=s,
                    priority=d.priority,
                    kbps=kbps,
                    links=links,
                    backup_links=backup,
                    end_s=now + req.holding_s,
                    src=req.src,
                    dst=req.dst,
                    value=value,
                    counted=True,
                )
                outcome, grant = "accepted", float(ev.grant_A[a])
                out.update(
                    path=self._sites(cs.nodes_KN[k], req.src),
                    flow_id=rid,
                    latency_ms=float(ev.latency_ms_K[k]),
                    expires_at_s=flow.end_s,
                )
                if cs.has_backup_K[k]:
                    out["backup_path"] = self._sites(cs.backup_nodes_KN[k], req.src)
                book.counts["preempted"] += len(victims)
                flow_rec = {
                    "flow_id": rid,
                    "state_id": flow.id,
                    "slice": s,
                    "priority": d.priority,
                    "kbps": kbps,
                    "links": links.tolist(),
                    "backup_links": backup.tolist(),
                    "path": out["path"],
                    "backup_path": out["backup_path"],
                    "end_s": flow.end_s,
                    "value": value,
                }
        book.decided(req, outcome, grant, d.intercepted)
        if self.agent.audit is not None:
            self.agent.audit.append(
                "outcome",
                {
                    "decision_seq": self.agent.audit.seq,
                    "request_id": rid,
                    "n": req.id,
                    "time_s": now,
                    "cls": cls_name,
                    "src": req.src,
                    "dst": req.dst,
                    "holding_s": req.holding_s,
                    "outcome": outcome,
                    "action": a,
                    "intercepted": bool(d.intercepted),
                    "grant": grant,
                    "reason": reason,
                    "preempted": victims,
                    "flow": flow_rec,
                },
            )
        us = (time.perf_counter_ns() - t0) / 1e3
        self.latency_us[self._n_timed % self.latency_us.shape[0]] = us
        self._n_timed += 1
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
        with self.lock:
            now = float(self.clock())
            self._expire(now)
            fid = self.book.flow_of.get(flow_id)
            f = self.book.release(flow_id)
            if f is None:
                raise HTTPException(
                    404,
                    f"flow {flow_id!r} is not active (unknown, expired, "
                    "released or pre-empted); active flows: "
                    f"{len(self.book.flow_of)}",
                )
            self.audit("release", {"flow_id": flow_id, "state_id": fid, "time_s": now})
            return {
                "flow_id": flow_id,
                "released": True,
                "service_class": self.catalog.names[f.cls],
                "mbps": f.kbps / 1000.0,
                "remaining_s": max(f.end_s - now, 0.0),
            }

    def snapshot(self) -> dict[str, Any]:
        """:meth:`FlowBook.snapshot` of the live book (equal to a replay of the log)."""
        with self.lock:
            return self.book.snapshot()

    def flows(self) -> dict[str, Any]:
        """Active flows and a digest of the pools (for a controller reconciling after a
        restart, and for checking the live state against a replay of the log)."""
        with self.lock:
            self._expire(float(self.clock()))
            snap = self.book.snapshot()
            names = self.catalog.names
            audit = self.agent.audit
            return {
                "pools_sha256": snap["pools_sha256"],
                "next_request": snap["n_requests"],
                "log_records": audit.tree_size if audit is not None else None,
                "flows": [
                    {
                        "flow_id": pub,
                        "service_class": names[cls],
                        "kbps": kbps,
                        "links": list(links),
                        "backup_links": list(backup),
                        "expires_at_s": end,
                    }
                    for pub, _, cls, _, _, kbps, links, backup, end, *_ in snap["flows"]
                ],
            }

    def metrics(self) -> dict[str, Any]:
        with self.lock:
            return self._metrics()

    def _metrics(self) -> dict[str, Any]:
        self._expire(float(self.clock()))
        n = int(self.counts["decisions"])
        lat = self.latency_us[: min(self._n_timed, self.latency_us.shape[0])]
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


__all__ = ["OUTCOMES", "LiveRegion", "ServiceClock", "ServiceError", "utc_midnight"]
