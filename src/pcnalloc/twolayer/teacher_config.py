"""Configuration of the access teacher (``pcnalloc access train``).

Light on purpose (pydantic only: no torch, no access model, no SciPy): the CLI reads the
option defaults and help texts of ``access train`` from these fields when it starts;
:mod:`pcnalloc.twolayer.teacher` re-exports the class.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pcnalloc.core.limits import EPISODES_MAX, SEED_MAX

ENCODERS: tuple[str, ...] = ("mlp", "gnn")
"""Accepted values of :attr:`AccessTeacherConfig.encoder`."""

TRAIN_SEED_BASE = 1_000_000
"""Same base as :data:`pcnalloc.teacher.TRAIN_SEED_BASE` (not imported: that package pulls in
the backbone trainer); evaluation seeds stay below it."""


class AccessTeacherConfig(BaseModel):
    """Budget and hyper-parameters of one access teacher run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    episodes: int = Field(
        120, ge=1, le=EPISODES_MAX, description="training episodes (V epochs each)"
    )
    gamma: float = Field(0.9, ge=0, lt=1, description="discount per epoch")
    lr: float = Field(1e-3, gt=0, description="Adam learning rate")
    batch_size: int = Field(256, ge=1, description="device transitions per gradient step")
    hidden: tuple[int, ...] = Field(
        (64, 64), description="hidden widths of the Q network (of its head with encoder gnn)"
    )
    encoder: Literal["mlp", "gnn"] = Field(
        "gnn",
        description="gnn: GATv2 message passing over the device–subchannel graph, then the "
        "per-device head; mlp: the shared per-device MLP on the device rows (faster to train)",
    )
    gnn_hidden: int = Field(32, ge=1, description="node embedding width of the gnn encoder")
    gnn_rounds: int = Field(
        1, ge=1, le=4, description="device → subchannel → device rounds of the gnn encoder"
    )
    gnn_batch_epochs: int = Field(
        8,
        ge=1,
        description="with encoder gnn: whole epochs (I device transitions each) per gradient "
        "step, in place of batch_size",
    )
    gnn_updates_per_epoch: int = Field(
        2,
        ge=0,
        description="with encoder gnn: gradient steps per env step, in place of updates_per_epoch",
    )
    gnn_top_k: int = Field(
        8,
        ge=0,
        description="edges per device and mode of the gnn graph, its best subchannels by mean "
        "SINR (0: every device–subchannel pair)",
    )
    updates_per_epoch: int = Field(4, ge=0, description="gradient steps per env step (epoch)")
    warmup: int = Field(2_000, ge=1, description="device transitions before the first update")
    replay: int = Field(200_000, ge=1, description="replay capacity (device transitions)")
    target_update: int = Field(200, ge=1, description="gradient steps between target syncs")
    eps_start: float = Field(1.0, ge=0, le=1, description="exploration at the first episode")
    eps_end: float = Field(0.05, ge=0, le=1, description="exploration after the decay")
    eps_decay: float = Field(
        0.6, gt=0, le=1, description="share of the episodes over which ε decays linearly"
    )
    huber_delta: float = Field(1.0, gt=0, description="Huber loss δ")
    max_grad_norm: float = Field(10.0, gt=0, description="gradient clipping")
    seed: int = Field(
        0, ge=0, le=SEED_MAX, description="seed of weights, exploration and episode seeds"
    )
    threads: int = Field(1, ge=1, description="torch intra-op threads")

    def train_seed(self, episode: int) -> int:
        """Env seed of training episode ``episode`` (≥ TRAIN_SEED_BASE)."""
        return TRAIN_SEED_BASE + 10_000 * self.seed + episode
