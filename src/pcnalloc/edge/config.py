"""Configuration of the edge service: one object that ``pcnalloc serve`` and its app read.

Light on purpose (pydantic only: no FastAPI, no torch), so the CLI builds its option defaults
and help texts from these fields when it starts; :mod:`pcnalloc.edge.service` re-exports it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ServiceConfig(BaseModel):
    """What ``pcnalloc serve`` needs to build the agent of one region and serve it.

    ``pcnalloc serve`` takes its option defaults and help texts from these fields.
    """

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
    integrity_only: bool = Field(
        False,
        description="accept an audit log without a signing key (hash chain and tree only: "
        "nothing proves who wrote it)",
    )
    precision: Literal["fp32", "int8"] = Field("fp32", description="model precision to run")
    max_holding_s: float = Field(366 * 86400.0, gt=0, description="longest holding_s accepted")
    latency_window: int = Field(8192, ge=16, description="decisions kept for latency percentiles")
    host: str = Field(
        "127.0.0.1", min_length=1, description="bind address (loopback unless TLS is in front)"
    )
    log_level: Literal["critical", "error", "warning", "info", "debug", "trace"] = Field(
        "info", description="uvicorn log level"
    )
