"""Configuration of the compile stage: one object that ``pcnalloc compile`` and the main job read.

Light on purpose (pydantic only, no torch): the CLI builds its option defaults and help texts
from these fields when it starts, and the run config composes it as its ``compile`` stage.
"""

from __future__ import annotations

from pydantic import Field

from pcnalloc.config import _Frozen
from pcnalloc.core.limits import ROWS_MAX


class CompileConfig(_Frozen):
    """ONNX export, parity and int8 gates, signed manifest."""

    int8: bool = Field(
        True,
        description="also ship an int8 model when it keeps min_agreement of the fp32 "
        "argmaxes (else the fp32 model alone is shipped and the reason reported)",
    )
    rows: int = Field(
        4096, ge=1, le=ROWS_MAX, description="library rows sampled for the parity and int8 gates"
    )
    min_agreement: float = Field(
        0.995, ge=0, le=1, description="minimum int8/fp32 argmax agreement on those rows"
    )


COMPILE_DEFAULTS = CompileConfig()
"""The defaults, for function signatures and CLI options (written once, above)."""
