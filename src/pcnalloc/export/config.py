"""Configuration of the compile stage: one object that ``pcnalloc compile`` and the main job read.

Light on purpose (pydantic only, no torch): the CLI builds its option defaults and help texts
from these fields when it starts, and the run config composes it as its ``compile`` stage.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from pcnalloc.config import _Frozen
from pcnalloc.core.limits import REQUESTS_MAX, ROWS_MAX, SEED_MAX

CLEAR_GAP_Q = 1e-3
"""Teacher-Q tie tolerance: ``pcnalloc.distill.metrics.CLEAR_GAP`` (kept equal by a test; this
module stays free of torch)."""


class CompileConfig(_Frozen):
    """ONNX export, parity and int8 gates, signed manifest."""

    int8: bool = Field(
        True,
        description="also ship an int8 model when it keeps min_agreement of the fp32 "
        "decisions and min_value_ratio of its closed-loop value (else the fp32 model alone is "
        "shipped and the reason reported)",
    )
    rows: int = Field(
        4096, ge=1, le=ROWS_MAX, description="library rows sampled for the parity and int8 gates"
    )
    min_agreement: float = Field(
        0.995,
        ge=0,
        le=1,
        description="minimum int8/fp32 decision-relevant agreement on those rows (judged "
        "row by row; a pick whose teacher value ties the fp32 choice within tie_tol_q agrees, "
        "a masked pick never does)",
    )
    tie_tol_q: float = Field(
        CLEAR_GAP_Q,
        ge=0,
        description="teacher-Q tolerance under which the int8 pick ties the fp32 choice "
        "(teacher Q units; the distillation metrics' clear-decision gap)",
    )
    tie_tol_logit: float = Field(
        0.0, ge=0, description="fp32-logit tolerance under which the int8 pick ties (0 = off)"
    )
    int8_mode: Literal["dynamic", "static"] = Field(
        "dynamic",
        description="onnxruntime quantisation: dynamic (activations quantised per call) or "
        "static (activation scales calibrated on library rows)",
    )
    int8_per_channel: bool = Field(
        False,
        description="one int8 weight scale per output channel (else one per tensor, "
        "onnxruntime's default)",
    )
    int8_format: Literal["qdq", "qoperator"] = Field(
        "qoperator", description="graph format of a static int8 model"
    )
    int8_keep_fp32: tuple[Literal["first", "last"], ...] = Field(
        (), description="layers a static int8 model keeps in float32"
    )
    closed_loop: bool = Field(
        True,
        description="also play the int8 and fp32 models on the same seeded episodes and ship "
        "int8 only if it keeps min_value_ratio of fp32's weighted value (compact students)",
    )
    closed_loop_seeds: tuple[Annotated[int, Field(ge=0, le=SEED_MAX)], ...] = Field(
        (500, 501, 502, 503),
        min_length=1,
        description="episode seeds of the closed-loop check (apart from the other ranges)",
    )
    closed_loop_requests: int = Field(
        1000, ge=1, le=REQUESTS_MAX, description="decisions per closed-loop episode"
    )
    min_value_ratio: float = Field(
        0.995,
        ge=0,
        le=1,
        description="int8 mean weighted value / fp32's on the closed-loop episodes, required",
    )


COMPILE_DEFAULTS = CompileConfig()
"""The defaults, for function signatures and CLI options (written once, above)."""
