"""Frozen configuration of constrained policy distillation (DESIGN §6); one docstring per field.

Defaults follow Rusu et al. 2016 ("Policy Distillation": a sharp teacher softmax with a small
temperature τ, here tuned on a case30 library) plus the constraint terms of the
power-communication distillation method (a squared hard-violation probability and an L2
soft-violation penalty).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field

from pcnalloc.config import build, read_yaml
from pcnalloc.core.limits import EPOCHS_MAX, SEED_MAX
from pcnalloc.core.overrides import apply_sets


class DistillConfig(BaseModel):
    """Loss weights, optimiser and data split of one distillation run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tau: float = Field(
        0.001,
        gt=0,
        description="teacher temperature τ in softmax(Q_T/τ), in teacher-Q units (the case30 "
        "teacher's top-2 valid Q gap has median ≈ 1e-3, so larger τ flattens the target and "
        "lowers top-1 agreement)",
    )
    lambda_hard: float = Field(
        1.0, ge=0, description="weight λ_hard of (Σ_a π_S(a)·h(s,a))², the hard-violation term"
    )
    lambda_soft: float = Field(
        0.1, ge=0, description="weight λ_soft of ‖π_S ⊙ c(s,·)‖₂², the soft-violation term"
    )
    beta_schedule: Literal["fixed", "increasing", "decreasing"] = Field(
        "fixed",
        description="schedule of the imitation weight β over epochs (algorithm distillation): "
        "fixed = beta_max; increasing = linear beta_min → beta_max; decreasing = linear "
        "beta_max → beta_min",
    )
    beta_min: float = Field(0.0, ge=0, description="smallest β of a schedule")
    beta_max: float = Field(1.0, ge=0, description="largest β of a schedule (fixed: β)")
    task_weight: float = Field(
        0.0,
        ge=0,
        description="weight of the teacher-free task term (reward-weighted log-likelihood of "
        "the logged action, see pcnalloc.distill.loss); 0 = pure constrained distillation",
    )
    task_eta: float = Field(
        1.0, gt=0, description="temperature η (reward units) of the task term's weights"
    )
    margin_weight: float = Field(
        0.1,
        ge=0,
        description="weight of the logit-margin hinge (teacher's best valid action over its "
        "closest rival on clear rows, see pcnalloc.distill.loss) that keeps decisions through "
        "int8 quantisation; 0 = off (0.1 measured on two case30 main-job libraries, 8 "
        "training seeds: worst-seed decision agreement 99.63 → 99.83 %, held-out top-1 kept; "
        "docs/distill.md)",
    )
    margin: float = Field(1.0, gt=0, description="logit gap m of the margin hinge (logit units)")
    lr: float = Field(3e-3, gt=0, description="Adam learning rate")
    weight_decay: float = Field(0.0, ge=0, description="Adam L2 weight decay")
    batch_size: int = Field(512, ge=1, description="rows per gradient step")
    epochs: int = Field(
        60, ge=1, le=EPOCHS_MAX, description="maximum passes over the training rows"
    )
    patience: int = Field(
        8, ge=1, description="epochs without a validation-loss improvement before stopping"
    )
    min_delta: float = Field(
        1e-5, ge=0, description="smallest validation-loss decrease that counts as improvement"
    )
    val_fraction: float = Field(
        0.1, gt=0, lt=1, description="share of episodes (by episode_id) held out for validation"
    )
    test_fraction: float = Field(
        0.1,
        ge=0,
        lt=1,
        description="share of episodes (by episode_id) held out as the test split: never "
        "trained on and never used for model selection; fidelity is reported on it (0 = no "
        "test split, fidelity falls back to the validation split and says so)",
    )
    seed: int = Field(
        0, ge=0, le=SEED_MAX, description="seed of the split, weight init and shuffling"
    )
    read_batch_rows: int = Field(
        16_384, ge=1, description="rows read from Parquet per streamed chunk"
    )
    shuffle_chunks: int = Field(
        8, ge=1, description="streamed chunks mixed in the shuffle buffer (memory ∝ this)"
    )
    cache_rows: int = Field(
        300_000,
        ge=0,
        description="libraries with at most this many rows are kept in memory after the first "
        "pass (prepared tensors, ≈ 1 KB/row); larger ones are streamed every epoch",
    )
    threads: int = Field(1, ge=1, description="torch intra-op threads")
    tensorboard: Path | None = Field(
        None, description="also write the history rows as TensorBoard scalars here (off: None)"
    )


def distill_config(
    file: str | Path | None = None, *, sets: Sequence[str] = (), **overrides: Any
) -> DistillConfig:
    """Build a :class:`DistillConfig` from an optional YAML file plus keyword overrides.

    The dotted ``sets`` (``epochs=3``, see :mod:`pcnalloc.core.overrides`) apply last.

    Raises:
        ConfigError: naming every bad field.
    """
    data: dict[str, Any] = read_yaml(file) if file is not None else {}
    data.update(overrides)
    data = apply_sets(data, sets, DistillConfig)
    cfg: DistillConfig = build(cast(Any, DistillConfig), data, "distill config")
    return cfg
