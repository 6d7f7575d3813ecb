"""``/v1/metrics`` in the Prometheus exposition format (prometheus_client, optional).

The service's JSON metrics (:meth:`~pcnalloc.edge.live.LiveRegion.metrics`) are also served as
Prometheus text, read from the same dict at scrape time so both formats always agree:

- ``GET /v1/metrics/prometheus`` always answers in the exposition format;
- ``GET /v1/metrics`` answers in it too when the client asks for it, i.e. its ``Accept``
  header names ``application/openmetrics-text`` or ``text/plain`` but not
  ``application/json`` — what a Prometheus scraper sends. Browsers, curl and JSON clients
  still get JSON.

The format within the exposition family follows the same ``Accept`` header
(prometheus_client's ``choose_encoder``): a client that names
``application/openmetrics-text`` (Prometheus does, first) gets OpenMetrics 1.0 (``# EOF``
terminated, ``application/openmetrics-text; version=1.0.0``), any other gets the classic text
format (``text/plain; version=0.0.4``).

Both paths need the bearer token like every other route (Prometheus: ``authorization:
{credentials_file: ...}`` in the scrape config). The negotiation is a path rewrite that runs
*before* the token check, so it cannot open a path.

Metric names follow Prometheus conventions (``_total`` counters, base units): decisions per
outcome, interceptions, pre-emptions, releases, expiries, refused requests, active flows, the
highest link utilisation per slice, decision latency quantiles (seconds) over the latest
window, and a ``pcnalloc_service_info`` with the model, signer and rule-set hashes.

Without ``prometheus_client`` the JSON route is unchanged, the Prometheus path is not served,
and the log says once which extra installs it (``pcnalloc[edge]``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from fastapi import Request
from fastapi.responses import Response

log = logging.getLogger(__name__)

PROMETHEUS_PATH = "/v1/metrics/prometheus"
JSON_PATH = "/v1/metrics"

_COUNTERS: tuple[tuple[str, str, str], ...] = (
    ("decisions", "pcnalloc_decisions", "requests decided"),
    ("intercepted", "pcnalloc_intercepted", "student proposals the rule engine replaced"),
    ("preempted", "pcnalloc_preempted_flows", "flows pre-empted"),
    ("released", "pcnalloc_released_flows", "flows released by DELETE"),
    ("expired", "pcnalloc_expired_flows", "flows released at the end of their holding time"),
    ("invalid_requests", "pcnalloc_invalid_requests", "requests refused as malformed (4xx)"),
    ("unauthorized", "pcnalloc_unauthorized_requests", "requests refused for the token (401)"),
)
"""JSON field → Prometheus counter name (``_total`` is added) and help text."""


def wants_prometheus(accept: str) -> bool:
    """Whether an ``Accept`` header asks for the exposition format rather than JSON."""
    a = accept.lower()
    if "application/json" in a:
        return False
    return "application/openmetrics-text" in a or "text/plain" in a


def collect(metrics: dict[str, Any], info: dict[str, str]) -> Iterator[Any]:
    """The metric families of one JSON metrics dict (prometheus_client's core types)."""
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        InfoMetricFamily,
    )

    yield InfoMetricFamily("pcnalloc_service", "the served artifact and rule set", value=info)
    for key, name, doc in _COUNTERS:
        yield CounterMetricFamily(name, doc, value=float(metrics[key]))
    out = CounterMetricFamily("pcnalloc_outcomes", "decisions per outcome", labels=["outcome"])
    for outcome, n in metrics["outcomes"].items():
        out.add_metric([outcome], float(n))
    yield out
    yield GaugeMetricFamily(
        "pcnalloc_active_flows", "flows holding capacity", value=float(metrics["active_flows"])
    )
    yield GaugeMetricFamily(
        "pcnalloc_interception_ratio",
        "intercepted / decisions",
        value=float(metrics["interception_rate"]),
    )
    util = GaugeMetricFamily(
        "pcnalloc_max_link_utilisation_ratio", "highest link utilisation", labels=["slice"]
    )
    for slice_name, u in metrics["max_utilisation"].items():
        util.add_metric([slice_name], float(u))
    yield util
    lat = metrics["decision_latency_us"]
    q = GaugeMetricFamily(
        "pcnalloc_decision_latency_seconds",
        f"decision latency quantiles over the latest {int(lat['window'])} decisions",
        labels=["quantile"],
    )
    q.add_metric(["0.5"], float(lat["p50"]) * 1e-6)
    q.add_metric(["0.99"], float(lat["p99"]) * 1e-6)
    yield q
    yield GaugeMetricFamily(
        "pcnalloc_decision_latency_window",
        "decisions the latency quantiles cover",
        value=float(lat["window"]),
    )


def exposition(
    metrics: dict[str, Any], info: dict[str, str], accept: str = ""
) -> tuple[bytes, str]:
    """The exposition of one JSON metrics dict in the format ``accept`` asks for, and its
    content type: OpenMetrics when it names ``application/openmetrics-text``, else the classic
    Prometheus text (prometheus_client's own negotiation, ``choose_encoder``). Rendered from a
    private registry (no process-wide default collectors, so several apps in one process
    never clash)."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.exposition import choose_encoder

    class _Collector:
        def collect(self) -> Iterator[Any]:
            return collect(metrics, info)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector())
    encoder, content_type = choose_encoder(accept)
    out: bytes = encoder(registry)
    return out, content_type


class _Negotiate:
    """ASGI middleware: ``GET /v1/metrics`` asking for the exposition format is routed to
    :data:`PROMETHEUS_PATH` (added outermost, so the token check still sees the request)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == JSON_PATH:
            accept = next((v for k, v in scope["headers"] if k == b"accept"), b"")
            if wants_prometheus(accept.decode("latin-1")):
                scope = {**scope, "path": PROMETHEUS_PATH, "raw_path": PROMETHEUS_PATH.encode()}
        await self.app(scope, receive, send)


def service_info(live: Any) -> dict[str, str]:
    """Labels of ``pcnalloc_service_info``: what this service runs."""
    import pcnalloc

    agent = live.agent
    return {
        "version": pcnalloc.__version__,
        "network": str(live.net.name),
        "region": "all" if live.region is None else str(live.region),
        "model_sha256": str(agent.model_sha256),
        "precision": str(agent.precision),
        "key_id": str(agent.artifact.key_id),
        "ruleset_sha256": agent.engine.sha256 if agent.engine is not None else "",
    }


def add_prometheus_metrics(app: Any, live: Any) -> bool:
    """Serve ``live.metrics()`` in the exposition format on ``app`` (see the module docstring).

    Call after the token middleware was added. Returns False (and logs once) when
    prometheus_client is not installed.
    """
    try:
        import prometheus_client.exposition  # noqa: F401
    except ImportError:
        log.warning(
            "Prometheus metrics off: prometheus_client is not installed (install pcnalloc[edge])"
        )
        return False

    @app.get(
        PROMETHEUS_PATH,
        response_class=Response,
        responses={
            200: {
                "content": {"text/plain": {}, "application/openmetrics-text": {}},
                "description": "metrics (OpenMetrics when the Accept header names it)",
            },
            401: {"description": "missing or wrong bearer token"},
        },
        summary="The metrics in the Prometheus or OpenMetrics exposition format",
    )
    async def prometheus_metrics(request: Request) -> Response:
        body, content_type = exposition(
            live.metrics(), service_info(live), request.headers.get("accept", "")
        )
        return Response(body, media_type=content_type)

    app.add_middleware(_Negotiate)
    return True


__all__ = ["PROMETHEUS_PATH", "add_prometheus_metrics", "exposition", "wants_prometheus"]
