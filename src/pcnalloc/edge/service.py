"""Edge allocation service: one region's :class:`EdgeAgent` behind an authenticated HTTP API.

An SDN controller sends each service request to ``POST /v1/allocate`` and gets the decision
back: the action, the route as site names, the grant, the rule ids that fired and whether the
rule engine intercepted the student's proposal. ``GET /v1/health`` (open) and
``GET /v1/metrics`` report the artifact, uptime, counts and decision latency; the OpenAPI
schema is served at ``/openapi.json``.

Live state. The service keeps its own :class:`~pcnalloc.envs.state.NetworkState` of the
whole network (its local view) and decides the requests that originate in its region. An
accepted request reserves its capacity at once, as ``PowerCommEnv.step`` does (same candidate
routes, pre-emption plan and history), so the in-process agent on an env and this service
decide a request sequence identically (tested).

Departures. A flow holds its capacity for ``holding_s`` seconds of the service clock (seconds
since UTC midnight of the start day, advanced monotonically): expired flows are released
before the next request is decided, and before a release or a metrics read.
``DELETE /v1/flows/{flow_id}`` releases a flow earlier (the controller tore it down).
Pre-empted flows are released at once and listed in the response; the controller tears them
down and may request them again.

Security. Every route but health and the schema needs ``Authorization: Bearer <token>``, checked
with :func:`hmac.compare_digest` before the body is read. Malformed bodies get a 4xx whose
``reason`` names the bad value and what is accepted. Building the app verifies the artifact
(:func:`~pcnalloc.edge.artifact.load_artifact`), so a tampered one never serves.

Concurrency. Handlers are ``async`` and never await while deciding, so one event loop decides
one request at a time on one state. Run one worker process per region: several workers would
each hold a private copy of the network and over-commit links.
"""

import heapq
import hmac
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Callable
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import Depends, FastAPI
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator
from starlette.exceptions import HTTPException

import pcnalloc
from pcnalloc.config import SLICES, EnvConfig, build
from pcnalloc.edge.agent import EdgeAgent, LocalState
from pcnalloc.edge.artifact import load_artifact
from pcnalloc.envs.observation import History
from pcnalloc.envs.state import NetworkState
from pcnalloc.errors import PcnallocError, choices
from pcnalloc.network.model import CommNetwork
from pcnalloc.traffic.generator import Request

log = logging.getLogger(__name__)

TOKEN_ENV = "PCNALLOC_SERVE_TOKEN"
"""Environment variable read for the bearer token when no token file is given."""
MIN_TOKEN_CHARS = 16
MAX_BODY_BYTES = 64 * 1024
ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
OUTCOMES = ("accepted", "rejected", "blocked", "refused")
OPEN_PATHS = frozenset({"/v1/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
"""Paths served without the token; every other path (a future route too) needs it."""


class ServiceError(PcnallocError):
    """A service that cannot start: bad token, region, or configuration."""


# ---------------------------------------------------------------------------- configuration
class ServiceConfig(BaseModel):
    """What ``pcnalloc serve`` needs to build the agent of one region."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    artifact: Path = Field(description="signed artifact folder (pcnalloc compile)")
    public_key: Path | None = Field(
        description="signer's Ed25519 public key (PEM); None trusts the artifact's own "
        "signer.pub (integrity only, not origin)"
    )
    region: int | None = Field(0, ge=0, description="region index decided; None = every region")
    case: str | None = Field(None, description="grid case; None = the artifact's env config")
    rules: Path | None = Field(None, description="rule file merged over the packaged rules")
    audit: Path | None = Field(None, description="hash-chained audit log of every decision")
    audit_key: Path | None = Field(None, description="Ed25519 key signing audit checkpoints")
    precision: Literal["fp32", "int8"] = Field("fp32", description="model precision to run")
    max_holding_s: float = Field(366 * 86400.0, gt=0, description="longest holding_s accepted")
    latency_window: int = Field(8192, ge=16, description="decisions kept for latency percentiles")


def build_agent(cfg: ServiceConfig) -> EdgeAgent:
    """Verify the artifact, then build its agent with the packaged (or given) rules and audit.

    The env config is the one recorded in the (verified) manifest, with ``case`` and
    ``rules`` replaced when given.

    Raises:
        ArtifactError: the artifact is missing, tampered with or signed by another key.
        ConfigError: the resulting env config is invalid.
    """
    from pcnalloc.edge.audit import AuditLog
    from pcnalloc.edge.engine import build_engine
    from pcnalloc.network.builder import cached_network
    from pcnalloc.traffic.catalog import load_catalog

    art = load_artifact(cfg.artifact, cfg.public_key)  # before trusting any manifest field
    data = dict(art.manifest.get("env_config") or {})
    if cfg.case is not None:
        data["network"] = {**data.get("network", {}), "case": cfg.case}
    if cfg.rules is not None:
        data["rules"] = str(cfg.rules)
    env_cfg: EnvConfig = build(EnvConfig, data, "service env config")
    net = cached_network(env_cfg.network.case, env_cfg.network)
    catalog = load_catalog(env_cfg.traffic.catalog, max_levels=env_cfg.grant_levels)
    engine = build_engine(env_cfg.rules, catalog, trust_threshold=env_cfg.trust_threshold)
    agent = EdgeAgent(
        cfg.artifact,
        cfg.public_key,
        env_cfg,
        network=net,
        catalog=catalog,
        rules=engine,
        precision=cfg.precision,
    )
    if cfg.audit is not None:
        meta = {"service": "pcnalloc serve", "region": cfg.region, "model": agent.model_sha256}
        agent.audit = AuditLog(cfg.audit, private_key=cfg.audit_key, meta=meta)
    return agent


def check_token(token: str) -> bytes:
    """The token as bytes, if it is a usable bearer token.

    Raises:
        ServiceError: shorter than :data:`MIN_TOKEN_CHARS` or not printable ASCII.
    """
    if len(token) < MIN_TOKEN_CHARS or not re.fullmatch(r"[\x21-\x7e]+", token):
        raise ServiceError(
            f"bearer token of {len(token)} characters is not accepted; accepted: at least "
            f"{MIN_TOKEN_CHARS} printable ASCII characters without spaces "
            '(e.g. python -c "import secrets; print(secrets.token_urlsafe(32))")'
        )
    return token.encode("ascii")


def read_token(token_file: str | Path | None = None, env: dict[str, str] | None = None) -> str:
    """The bearer token from ``token_file`` (stripped) or else ``$PCNALLOC_SERVE_TOKEN``.

    Raises:
        ServiceError: neither is set, or the file cannot be read.
    """
    if token_file is not None:
        p = Path(token_file)
        try:
            token = p.read_text().strip()
        except OSError as err:
            raise ServiceError(f"token file {str(p)!r} cannot be read ({err.strerror})") from None
        if p.stat().st_mode & 0o077:
            log.warning("token file %s is readable by other users; chmod 600 it", p)
        return token
    token = (os.environ if env is None else env).get(TOKEN_ENV, "")
    if not token:
        raise ServiceError(f"no bearer token: pass --token-file FILE or set ${TOKEN_ENV}")
    return token


class ServiceClock:
    """Service time (s): seconds since UTC midnight of the start day, advanced monotonically."""

    def __init__(self) -> None:
        now = datetime.now(timezone.utc)
        self._t0 = (now - now.replace(hour=0, minute=0, second=0, microsecond=0)).total_seconds()
        self._m0 = time.monotonic()

    def __call__(self) -> float:
        return self._t0 + time.monotonic() - self._m0


# ---------------------------------------------------------------------------- live state
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


# ---------------------------------------------------------------------------- HTTP schema
_DOC = {
    "service_class": "service class name from the catalog (e.g. scada, teleprotection)",
    "src": "originating site (a site of this service's region)",
    "dst": "destination site (e.g. the control center)",
    "holding_s": "how long the flow is needed (s of service time); released after it",
    "request_id": "client id of the request; becomes the flow id (default: assigned)",
}


class _AllocationBase(BaseModel):
    """A service request (the accepted names are listed in the schema of each deployment)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    service_class: str = Field(description=_DOC["service_class"])
    src: str = Field(description=_DOC["src"])
    dst: str = Field(description=_DOC["dst"])
    holding_s: float = Field(gt=0, allow_inf_nan=False, description=_DOC["holding_s"])
    request_id: str | None = Field(None, pattern=ID_PATTERN, description=_DOC["request_id"])

    @model_validator(mode="after")
    def _two_sites(self) -> "_AllocationBase":
        if self.src == self.dst:
            raise ValueError(f"src and dst are both {self.src!r}; accepted: two different sites")
        return self


def request_model(
    classes: list[str], src_sites: list[str], sites: list[str], max_holding_s: float
) -> type[_AllocationBase]:
    """The request model of one deployment: class and site names as enums in the schema."""

    def enum(values: list[str], key: str) -> Any:
        return (Literal[tuple(values)], Field(description=_DOC[key], examples=[values[0]]))

    return create_model(
        "AllocationRequest",
        __base__=_AllocationBase,
        service_class=enum(classes, "service_class"),
        src=enum(src_sites, "src"),
        dst=enum(sites, "dst"),
        holding_s=(
            float,
            Field(gt=0, le=max_holding_s, allow_inf_nan=False, description=_DOC["holding_s"]),
        ),
    )


class RuleReason(BaseModel):
    rule_id: str = Field(description="id of a critical/hard rule the proposal broke")
    reason: str = Field(description="why it broke the rule")


class AllocationResponse(BaseModel):
    """The decision on one request."""

    request_id: str = Field(description="the client's request id, or the one assigned")
    flow_id: str | None = Field(description="reserved flow (accepted only); DELETE to release")
    outcome: Literal["accepted", "rejected", "blocked", "refused"] = Field(
        description="accepted; rejected although a route existed; blocked (none existed); "
        "refused (the chosen action was infeasible; nothing reserved)"
    )
    action: int = Field(description="action index k·L + l (route k, grant slot l); last = reject")
    proposal: int = Field(description="the student's proposed action")
    path: list[str] | None = Field(description="route as site names, source first")
    backup_path: list[str] | None = Field(description="disjoint backup route (1+1 classes)")
    grant: float = Field(description="granted fraction of the class bandwidth (0 if not)")
    granted_mbps: float = Field(description="reserved bandwidth (Mb/s)")
    latency_ms: float | None = Field(description="route latency at decision time (ms)")
    bound_ms: float = Field(description="the class latency bound (ms)")
    intercepted: bool = Field(description="the rule engine replaced the student's proposal")
    rule_ids: list[str] = Field(description="critical/hard rules the proposal broke")
    reasons: list[RuleReason] = Field(description="why each of those rules fired")
    soft_rule_ids: list[str] = Field(description="soft rules firing on the executed action")
    preempted_flow_ids: list[str] = Field(description="flows released to make room")
    priority: int = Field(description="effective setup priority (0 = highest)")
    note: str = Field(description="how the action was chosen (allowed, substituted, …)")
    expires_at_s: float | None = Field(description="service time (s) the flow is released at")
    decision_latency_us: float = Field(description="features → model → rules → reserve (µs)")


class ReleaseResponse(BaseModel):
    flow_id: str = Field(description="the released flow")
    released: bool = Field(description="always true (unknown flows get 404)")
    service_class: str = Field(description="its service class")
    mbps: float = Field(description="bandwidth freed on each of its links (Mb/s)")
    remaining_s: float = Field(description="holding time it had left (s)")


class HealthResponse(BaseModel):
    status: Literal["ok"] = Field(description="ok while the service answers")
    version: str = Field(description="pcnalloc version")
    region: int | None = Field(description="region decided (None = every region)")
    region_sites: int = Field(description="sites whose requests this service decides")
    network: str = Field(description="network (grid case) name")
    model_sha256: str = Field(description="sha256 of the running ONNX model (signed manifest)")
    precision: str = Field(description="fp32 or int8")
    key_id: str = Field(description="fingerprint of the key that signed the artifact")
    ruleset_sha256: str = Field(description="sha256 of the rule set")
    uptime_s: float = Field(description="seconds since the service started")
    service_time_s: float = Field(description="service clock (s since UTC midnight, start day)")
    active_flows: int = Field(description="flows holding capacity")


class LatencySummary(BaseModel):
    p50: float = Field(description="median decision latency (µs)")
    p99: float = Field(description="99th percentile decision latency (µs)")
    window: int = Field(description="decisions the percentiles cover (the latest)")


class MetricsResponse(BaseModel):
    decisions: int = Field(description="requests decided")
    outcomes: dict[str, int] = Field(description="decisions per outcome")
    intercepted: int = Field(description="proposals the rule engine replaced")
    interception_rate: float = Field(description="intercepted / decisions")
    preempted: int = Field(description="flows pre-empted")
    released: int = Field(description="flows released by DELETE")
    expired: int = Field(description="flows released at the end of their holding time")
    active_flows: int = Field(description="flows holding capacity")
    invalid_requests: int = Field(description="requests refused as malformed (4xx)")
    unauthorized: int = Field(description="requests refused for a missing/wrong token (401)")
    max_utilisation: dict[str, float] = Field(description="highest link utilisation per slice")
    decision_latency_us: LatencySummary


class ErrorResponse(BaseModel):
    reason: str = Field(description="what was wrong and what is accepted")
    detail: list[dict[str, Any]] | None = Field(None, description="one entry per problem")


# ---------------------------------------------------------------------------- errors, auth
def _shown(v: Any) -> str:
    if isinstance(v, str):
        return repr(v if len(v) <= 60 else v[:57] + "...")
    if v is None or isinstance(v, (bool, int, float)):
        return repr(v)
    kinds: dict[type, str] = {dict: "an object", list: "an array"}
    return kinds.get(type(v), type(v).__name__)


def validation_body(errors: Any, accepted: dict[str, list[str]]) -> dict[str, Any]:
    """A 422 body: ``reason`` (one line naming each bad value and what is accepted), ``detail``."""
    detail, parts = [], []
    for e in errors:
        loc = [str(x) for x in e.get("loc", ()) if x != "body"]
        where, typ = ".".join(loc) or "body", str(e.get("type", ""))
        if typ == "literal_error" and loc and loc[-1] in accepted:
            why = f"{where}: {_shown(e.get('input'))} is not accepted; accepted: "
            why += choices(accepted[loc[-1]])
        elif typ == "json_invalid":
            why = f"malformed JSON ({(e.get('ctx') or {}).get('error', e.get('msg'))})"
        elif typ == "missing":
            why = f"{where}: missing; required fields: {choices(accepted['required'])}"
        elif typ == "extra_forbidden":
            why = f"{where}: unknown field; accepted: {choices(accepted['fields'])}"
        else:
            why = f"{where}: {e.get('msg')} (got {_shown(e.get('input'))})"
        parts.append(why)
        detail.append({"type": typ, "loc": loc, "reason": why})
    more = f"; … ({len(parts)} problems)" if len(parts) > 4 else ""
    return {"reason": "; ".join(parts[:4]) + more, "detail": detail}


class BearerAuth:
    """ASGI middleware: every path but :data:`OPEN_PATHS` needs the token; bodies are capped.

    Runs before routing and body parsing, so an unauthenticated client learns nothing about
    the request schema.
    """

    def __init__(self, app: Any, *, token: bytes, counts: Counter[str]) -> None:
        self.app, self._token, self.counts = app, token, counts

    def _authorised(self, headers: list[tuple[bytes, bytes]]) -> str | None:
        value = next((v for k, v in headers if k == b"authorization"), None)
        if value is None:
            return "missing bearer token; send 'Authorization: Bearer <token>'"
        scheme, _, cred = value.partition(b" ")
        if scheme.lower() != b"bearer" or not hmac.compare_digest(cred.strip(), self._token):
            return "bearer token rejected; send 'Authorization: Bearer <token>'"
        return None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path, headers = scope["path"], scope["headers"]
            why, status = None, 401
            if path not in OPEN_PATHS:
                why = self._authorised(headers)
            if why is None:
                size = next((v for k, v in headers if k == b"content-length"), b"0")
                status = 413 if not size.isdigit() or int(size) > MAX_BODY_BYTES else 200
                why = f"body over {MAX_BODY_BYTES} bytes" if status == 413 else None
            if why is not None:
                self.counts["unauthorized" if status == 401 else "invalid"] += 1
                hdr = {"WWW-Authenticate": 'Bearer realm="pcnalloc"'} if status == 401 else None
                await JSONResponse({"reason": why}, status, headers=hdr)(scope, receive, send)
                return
        await self.app(scope, receive, send)


# ---------------------------------------------------------------------------- the app
def create_app(
    agent_or_config: EdgeAgent | ServiceConfig,
    token: str,
    *,
    region: int | None = 0,
    network: CommNetwork | None = None,
    clock: Callable[[], float] | None = None,
    max_holding_s: float = 366 * 86400.0,
    latency_window: int = 8192,
) -> FastAPI:
    """The FastAPI app of one region's allocation service.

    Args:
        agent_or_config: a built :class:`EdgeAgent` (with its rules and audit), or a
            :class:`ServiceConfig` to build one from (verifying the artifact now); a config's
            region, holding limit and latency window replace the keyword arguments.
        token: the bearer token clients must send (see :func:`check_token`).
        region: region index decided with an agent; None = every region.
        network: the live network (default: built from the agent's env config).
        clock: service time in seconds (default :class:`ServiceClock`; tests inject one).
        max_holding_s: longest ``holding_s`` accepted (s).
        latency_window: decisions kept for the latency percentiles.

    Raises:
        ArtifactError: the artifact is missing, tampered with or signed by another key.
        ServiceError: a token too weak or a region the network lacks.
    """
    secret = check_token(token)
    if isinstance(agent_or_config, ServiceConfig):
        sc = agent_or_config
        agent = build_agent(sc)
        region, max_holding_s, latency_window = sc.region, sc.max_holding_s, sc.latency_window
    else:
        agent = agent_or_config
    if network is None:
        from pcnalloc.network.builder import cached_network

        network = cached_network(agent.cfg.network.case, agent.cfg.network)
    live = LiveRegion(agent, network, region, clock=clock, latency_window=latency_window)
    names, sites = list(agent.catalog.names), list(network.site_names)
    Req = request_model(names, live.region_sites, sites, max_holding_s)
    accepted = {
        "service_class": names,
        "src": live.region_sites,
        "dst": sites,
        "fields": list(Req.model_fields),
        "required": [k for k, f in Req.model_fields.items() if f.is_required()],
    }

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        log.info("serving region %s of %s (model %s)", region, network.name, agent.model_sha256)
        yield
        if agent.audit is not None:
            agent.audit.close()

    app = FastAPI(
        title="pcnalloc edge allocation service",
        version=pcnalloc.__version__,
        description=(__doc__ or "").split("\n\n")[0],
        lifespan=lifespan,
    )
    app.state.live = live
    app.add_middleware(BearerAuth, token=secret, counts=live.counts)
    auth = [Depends(HTTPBearer(auto_error=False, description="the service's bearer token"))]
    err: dict[str, Any] = {"model": ErrorResponse}
    refused: dict[int | str, dict[str, Any]] = {
        401: {**err, "description": "missing or wrong bearer token"}
    }
    invalid: dict[int | str, dict[str, Any]] = {
        400: {**err, "description": "body that cannot be parsed (e.g. not UTF-8)"},
        413: {**err, "description": f"body over {MAX_BODY_BYTES} bytes"},
        422: {**err, "description": "malformed request; reason names the value"},
    }

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Any, exc: RequestValidationError) -> JSONResponse:
        live.counts["invalid"] += 1
        return JSONResponse(validation_body(exc.errors(), accepted), status_code=422)

    @app.exception_handler(HTTPException)
    async def _http(_: Any, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"reason": str(exc.detail)}, exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _crash(_: Any, exc: Exception) -> JSONResponse:
        log.error("request failed: %r", exc, exc_info=exc)
        return JSONResponse({"reason": "internal error; see the service log"}, 500)

    @app.post(
        "/v1/allocate",
        response_model=AllocationResponse,
        dependencies=auth,
        responses={**refused, **invalid, 409: {**err, "description": "request_id is active"}},
        summary="Decide a service request and reserve its capacity",
    )
    async def allocate(body: Req) -> dict[str, Any]:  # type: ignore[valid-type]
        b: Any = body
        return live.allocate(b.service_class, b.src, b.dst, b.holding_s, b.request_id)

    @app.delete(
        "/v1/flows/{flow_id}",
        response_model=ReleaseResponse,
        dependencies=auth,
        responses={**refused, **invalid, 404: {**err, "description": "flow not active"}},
        summary="Release a flow before its holding time ends",
    )
    async def release(
        flow_id: Annotated[str, PathParam(pattern=ID_PATTERN, description="flow id")],
    ) -> dict[str, Any]:
        return live.release(flow_id)

    @app.get("/v1/metrics", response_model=MetricsResponse, dependencies=auth, responses=refused)
    async def metrics() -> dict[str, Any]:
        return live.metrics()

    @app.get("/v1/health", response_model=HealthResponse)
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "version": pcnalloc.__version__,
            "region": region,
            "region_sites": len(live.region_sites),
            "network": network.name,
            "model_sha256": agent.model_sha256,
            "precision": agent.precision,
            "key_id": agent.artifact.key_id,
            "ruleset_sha256": agent.engine.sha256 if agent.engine is not None else "",
            "uptime_s": time.monotonic() - live.started,
            "service_time_s": float(live.clock()),
            "active_flows": len(live.flow_of),
        }

    return app


__all__ = [
    "TOKEN_ENV",
    "AllocationResponse",
    "BearerAuth",
    "LiveRegion",
    "ServiceClock",
    "ServiceConfig",
    "ServiceError",
    "build_agent",
    "check_token",
    "create_app",
    "read_token",
    "request_model",
    "validation_body",
]
