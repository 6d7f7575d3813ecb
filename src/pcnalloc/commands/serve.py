"""``pcnalloc serve``: one region's edge allocation service over HTTP (FastAPI + uvicorn)."""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from pcnalloc.commands._common import console
from pcnalloc.commands._fields import field_help
from pcnalloc.edge.config import ServiceConfig

_SC = ServiceConfig.model_fields
"""The defaults of the options below: the service config's fields (written once there)."""

log = logging.getLogger(__name__)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve_cmd(
    artifact: Annotated[Path, typer.Option("--artifact", help="signed artifact folder")],
    public_key: Annotated[
        Path, typer.Option("--public-key", help="the signer's Ed25519 public key (PEM)")
    ],
    region: Annotated[int, typer.Option("--region", help="region index to decide", min=0)],
    port: Annotated[int, typer.Option("--port", help="TCP port", min=1, max=65535)],
    host: Annotated[
        str,
        typer.Option("--host", help=field_help(ServiceConfig, "host")),
    ] = _SC["host"].default,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file", help="file holding the bearer token (else $PCNALLOC_SERVE_TOKEN)"
        ),
    ] = None,
    case: Annotated[
        str | None, typer.Option("--case", help=field_help(ServiceConfig, "case"))
    ] = _SC["case"].default,
    rules: Annotated[
        Path | None, typer.Option("--rules", help=field_help(ServiceConfig, "rules"))
    ] = _SC["rules"].default,
    audit: Annotated[
        Path | None, typer.Option("--audit", help=field_help(ServiceConfig, "audit"))
    ] = _SC["audit"].default,
    audit_key: Annotated[
        Path | None, typer.Option("--audit-key", help=field_help(ServiceConfig, "audit_key"))
    ] = _SC["audit_key"].default,
    integrity_only: Annotated[
        bool,
        typer.Option("--integrity-only", help=field_help(ServiceConfig, "integrity_only")),
    ] = _SC["integrity_only"].default,
    precision: Annotated[
        str, typer.Option(help=field_help(ServiceConfig, "precision", "fp32 or int8"))
    ] = _SC["precision"].default,
    ssl_certfile: Annotated[Path | None, typer.Option(help="TLS certificate (PEM)")] = None,
    ssl_keyfile: Annotated[Path | None, typer.Option(help="TLS private key (PEM)")] = None,
    log_level: Annotated[
        str, typer.Option(help=field_help(ServiceConfig, "log_level", "critical … trace"))
    ] = _SC["log_level"].default,
) -> None:
    """Serve POST /v1/allocate, DELETE /v1/flows/{id}, GET /v1/health and /v1/metrics.

    The artifact is verified before the port opens: a tampered artifact, a wrong key or a
    missing token stops the command with a one-line error and a non-zero exit status.
    """
    import uvicorn

    from pcnalloc.config import build
    from pcnalloc.edge.service import create_app, read_token
    from pcnalloc.fileio import check_output

    if audit is not None:  # an existing log is resumed; a folder or a bad parent is refused
        check_output(audit, kind="file", overwrite=True, flag="--audit")
    token = read_token(token_file)
    sc: ServiceConfig = build(
        ServiceConfig,
        {
            "artifact": artifact,
            "public_key": public_key,
            "region": region,
            "case": case,
            "rules": rules,
            "audit": audit,
            "audit_key": audit_key,
            "integrity_only": integrity_only,
            "precision": precision,
            "host": host,
            "log_level": log_level,
        },
        "serve options",
    )
    app = create_app(sc, token)
    live = app.state.live
    tls = ssl_certfile is not None
    if not _loopback(host) and not tls:
        log.warning("serving plain HTTP on %s: the bearer token crosses the network in clear", host)
    table = Table(title="pcnalloc serve")
    table.add_column("field")
    table.add_column("value", overflow="fold")
    table.add_row("url", f"{'https' if tls else 'http'}://{host}:{port}/v1/allocate")
    table.add_row("network", f"{live.net.name} ({live.net.n_sites} sites)")
    table.add_row("region", f"{region} ({len(live.region_sites)} sites)")
    table.add_row("model", f"{live.agent.precision} sha256 {live.agent.model_sha256[:16]}…")
    table.add_row("signed by", live.agent.artifact.key_id)
    table.add_row("rules", str(rules or "packaged defaults"))
    resumed = live.resumed or {}
    table.add_row(
        "audit",
        f"{audit} (resumed {resumed.get('active_flows', 0)} flows from "
        f"{resumed.get('replayed_records', 0)} records)"
        if audit and resumed
        else str(audit or "off"),
    )
    console.print(table)
    uvicorn.run(
        app,
        host=sc.host,
        port=port,
        log_level=sc.log_level,
        ssl_certfile=str(ssl_certfile) if ssl_certfile else None,
        ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None,
    )


def register(app: typer.Typer) -> None:
    """Add the ``serve`` verbs to the CLI app."""
    app.command("serve")(serve_cmd)
