"""Configuration of ``pcnalloc access compile``: the access student's ONNX export gates.

Light on purpose (pydantic only, no torch, no onnxruntime): the CLI reads its option defaults
and help texts from these fields when it starts; :mod:`.export` takes its defaults from them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from pcnalloc.core.limits import ROWS_MAX


class AccessCompileConfig(BaseModel):
    """Parity gates of the access student's export."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rows: int = Field(
        100_000,
        ge=1,
        le=ROWS_MAX,
        description="library rows for the parity gates (all of them when the library is "
        "smaller; else a seeded sample)",
    )
    parity_tol: float = Field(
        1e-5,
        gt=0,
        description="accepted max |ONNX − torch logit| relative to max(1, max |logit|)",
    )


ACCESS_COMPILE_DEFAULTS = AccessCompileConfig()
"""The defaults, for function signatures and CLI options (written once, above)."""

__all__ = ["ACCESS_COMPILE_DEFAULTS", "AccessCompileConfig"]
