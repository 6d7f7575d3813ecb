"""Pydantic request and response models of the edge allocation service's HTTP API.

The request model is built per deployment (:func:`request_model`) so that the class and site
names it accepts appear as enums in the OpenAPI schema; the responses are fixed.
"""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
"""Accepted request and flow ids."""

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
    """One broken rule of a proposal: its id and why it fired."""

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
    """The answer to ``DELETE /v1/flows/{flow_id}``: the flow released and what it freed."""

    flow_id: str = Field(description="the released flow")
    released: bool = Field(description="always true (unknown flows get 404)")
    service_class: str = Field(description="its service class")
    mbps: float = Field(description="bandwidth freed on each of its links (Mb/s)")
    remaining_s: float = Field(description="holding time it had left (s)")


class HealthResponse(BaseModel):
    """The answer to ``GET /v1/health``: the running artifact, its key and the clock."""

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
    """Decision latency percentiles over the latest decisions (µs)."""

    p50: float = Field(description="median decision latency (µs)")
    p99: float = Field(description="99th percentile decision latency (µs)")
    window: int = Field(description="decisions the percentiles cover (the latest)")


class MetricsResponse(BaseModel):
    """The answer to ``GET /v1/metrics``: counters since the service started."""

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


class ActiveFlow(BaseModel):
    """One flow holding capacity: its class, bandwidth, routes and expiry."""

    flow_id: str = Field(description="public flow id")
    service_class: str = Field(description="its service class")
    kbps: int = Field(description="reserved bandwidth (kb/s) on each link")
    links: list[int] = Field(description="link indices of the primary route")
    backup_links: list[int] = Field(description="link indices of the backup route")
    expires_at_s: float = Field(description="service time (s) the flow is released at")


class FlowsResponse(BaseModel):
    """The answer to ``GET /v1/flows``: the live state, enough to check a replay against."""

    pools_sha256: str = Field(description="SHA-256 of the per-link, slice, priority pools")
    next_request: int = Field(description="number of the next request")
    log_records: int | None = Field(
        description="audit records written when this was read (a replay of that many records "
        "rebuilds this state); None without an audit log"
    )
    flows: list[ActiveFlow] = Field(description="active flows, by flow id")


class ErrorResponse(BaseModel):
    """The body of every 4xx answer: what was wrong and what is accepted."""

    reason: str = Field(description="what was wrong and what is accepted")
    detail: list[dict[str, Any]] | None = Field(None, description="one entry per problem")


__all__ = [
    "ID_PATTERN",
    "ActiveFlow",
    "AllocationResponse",
    "ErrorResponse",
    "FlowsResponse",
    "HealthResponse",
    "LatencySummary",
    "MetricsResponse",
    "ReleaseResponse",
    "RuleReason",
    "request_model",
]
