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

Crash safety. The audit log is the service's state. Every change (decision intent, executed
outcome, expiry, release) is appended before the response is sent, so a service killed at
any instant (``kill -9``) restarts from its log: it verifies the log with its own key,
replays it (:mod:`pcnalloc.edge.flowbook`), resumes the flows still alive with their ids,
continues the request numbers and writes a ``restart`` record. A torn last line blocks the
start until ``pcnalloc audit repair`` keeps the verified prefix. The tail is signed at
shutdown and, while idle, at the log's time cadence. ``GET /v1/flows`` lists the active
flows and a digest of the pools, for a controller reconciling after a restart.

Concurrency. One :class:`~pcnalloc.edge.live.LiveRegion` per process holds the state behind
one re-entrant lock, taken for the whole of each decision, release, expiry, tick and read;
so a decision is atomic whichever thread calls it (the async handlers run on the event loop,
the idle tick runs between requests, and library users may call from threads — tested with 8
threads). Run one worker process per region: several workers would each hold a private
copy of the network and over-commit links (and share one log, which the log's lock
refuses).

Ids. Client request ids and automatic ids (``r<region>-<n>``) share one namespace: a request
naming an active flow gets 409, and an automatic id never takes one a client holds.
"""

import asyncio
import hmac
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from starlette.exceptions import HTTPException

import pcnalloc
from pcnalloc.config import EnvConfig, build
from pcnalloc.edge.agent import EdgeAgent
from pcnalloc.edge.artifact import load_artifact
from pcnalloc.edge.config import ServiceConfig as ServiceConfig
from pcnalloc.edge.live import OUTCOMES as OUTCOMES
from pcnalloc.edge.live import LiveRegion, ServiceClock, ServiceError
from pcnalloc.edge.service_docs import DOCS_OPEN_PATHS, add_offline_docs
from pcnalloc.edge.service_metrics import add_prometheus_metrics
from pcnalloc.edge.service_models import (
    ID_PATTERN,
    AllocationResponse,
    ErrorResponse,
    FlowsResponse,
    HealthResponse,
    MetricsResponse,
    ReleaseResponse,
    request_model,
)
from pcnalloc.edge.service_models import LatencySummary as LatencySummary
from pcnalloc.edge.service_models import RuleReason as RuleReason
from pcnalloc.errors import choices
from pcnalloc.network.model import CommNetwork

log = logging.getLogger(__name__)

TOKEN_ENV = "PCNALLOC_SERVE_TOKEN"
"""Environment variable read for the bearer token when no token file is given."""
MIN_TOKEN_CHARS = 16
MAX_BODY_BYTES = 64 * 1024
OPEN_PATHS = (
    frozenset({"/v1/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
    | DOCS_OPEN_PATHS  # the offline docs pages' own JS/CSS
)
"""Paths served without the token; every other path (a future route too) needs it."""


# ---------------------------------------------------------------------------- configuration
def build_agent(cfg: ServiceConfig) -> EdgeAgent:
    """Verify the artifact, then build its agent with the packaged (or given) rules and audit.

    The env config is the one recorded in the (verified) manifest, with ``case`` and
    ``rules`` replaced when given.

    Raises:
        ArtifactError: the artifact is missing, tampered with or signed by another key.
        ConfigError: the resulting env config is invalid.
    """
    from pcnalloc.edge.audit import AuditLog
    from pcnalloc.edge.live import utc_midnight
    from pcnalloc.network.builder import cached_network
    from pcnalloc.rules.engine import build_engine
    from pcnalloc.traffic.catalog import load_catalog

    if cfg.audit is not None and cfg.audit_key is None and not cfg.integrity_only:
        raise ServiceError(
            "an audit log without a signing key proves nothing about who wrote it; pass "
            "--audit-key KEY (pcnalloc keys new), or --integrity-only to accept that"
        )
    art = load_artifact(cfg.artifact, cfg.public_key)  # before trusting any manifest field
    data = dict(art.manifest.get("env_config") or {})
    if cfg.case is not None:
        data["network"] = {**data.get("network", {}), "case": cfg.case}
    if cfg.rules is not None:
        data["rules"] = str(cfg.rules)
    env_cfg: EnvConfig = build(EnvConfig, data, "service env config")
    # the network the artifact ships (signed with it) unless another case is asked for: an
    # edge controller then needs neither pandapower nor a built-network cache
    if art.has_network and cfg.case is None:
        net = art.network()
    else:
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
        meta = {
            "service": "pcnalloc serve",
            "region": cfg.region,
            "model": agent.model_sha256,
            "clock_epoch_unix": utc_midnight(),  # a new log only; a resumed one keeps its own
        }
        agent.audit = AuditLog(cfg.audit, private_key=cfg.audit_key, meta=meta)
    return agent


async def _idle_ticks(live: LiveRegion, period_s: float) -> None:
    """Expire flows and sign the audit tail at its time cadence while no request comes."""
    while True:
        await asyncio.sleep(period_s)
        try:
            live.tick()
        except Exception as err:  # a full disk must not stop the service's answers
            log.error("idle tick failed: %r", err)


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
            if why is None:
                # A chunked body has no Content-Length: read it (up to the cap) here.
                receive, over = await _capped(receive)
                status, why = (413, f"body over {MAX_BODY_BYTES} bytes") if over else (200, None)
            if why is not None:
                self.counts["unauthorized" if status == 401 else "invalid"] += 1
                hdr = {"WWW-Authenticate": 'Bearer realm="pcnalloc"'} if status == 401 else None
                await JSONResponse({"reason": why}, status, headers=hdr)(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _capped(receive: Any) -> tuple[Any, bool]:
    """Read the whole request body, stopping past :data:`MAX_BODY_BYTES`; a ``receive`` that
    hands the body on, and whether it went over the cap."""
    parts, n, more = [], 0, True
    while more:
        msg = await receive()
        if msg["type"] != "http.request":  # the client went away: hand that on
            parts.append(msg)
            break
        n += len(msg.get("body", b""))
        if n > MAX_BODY_BYTES:
            return receive, True
        parts.append(msg)
        more = msg.get("more_body", False)
    body = b"".join(m.get("body", b"") for m in parts if m["type"] == "http.request")
    queue = [{"type": "http.request", "body": body, "more_body": False}]
    queue += [m for m in parts if m["type"] != "http.request"]

    async def replay() -> Any:
        return queue.pop(0) if queue else await receive()

    return replay, False


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
    tick_s: float = 1.0,
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
        tick_s: period (s) of the idle task that expires flows and signs the log's tail
            at its time cadence (:meth:`LiveRegion.tick`).

    Raises:
        ArtifactError: the artifact is missing, tampered with or signed by another key.
        ServiceError: a token too weak, a region the network lacks, or an audit log that
            does not verify or replay (the service resumes from its log).
    """
    secret = check_token(token)
    if isinstance(agent_or_config, ServiceConfig):
        sc = agent_or_config
        agent = build_agent(sc)
        region, max_holding_s, latency_window = sc.region, sc.max_holding_s, sc.latency_window
    else:
        agent = agent_or_config
    if network is None:
        network = agent.network
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
        ticker = asyncio.create_task(_idle_ticks(live, tick_s))
        try:
            yield
        finally:
            ticker.cancel()
            if agent.audit is not None:
                with live.lock:  # signs the tail
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

    @app.get(
        "/v1/flows",
        response_model=FlowsResponse,
        dependencies=auth,
        responses=refused,
        summary="Active flows and a digest of the pools (reconcile after a restart)",
    )
    async def flows() -> dict[str, Any]:
        return live.flows()

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

    add_offline_docs(app)  # /docs and /redoc without a CDN
    add_prometheus_metrics(app, live)  # after BearerAuth: the token still applies
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
