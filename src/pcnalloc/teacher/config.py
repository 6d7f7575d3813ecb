"""Frozen configuration of the Double-DQN teacher (DESIGN §5); one docstring per field.

Seeds: training episode ``i`` of run seed ``s`` resets the env with
``TRAIN_SEED_BASE + 10_000·s + i`` (≥ 1,000,000); evaluation seeds must stay below
``TRAIN_SEED_BASE`` so that they are never seen in training.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pcnalloc.config import EnvConfig, build, read_yaml
from pcnalloc.core.limits import REQUESTS_MAX, SEED_MAX, STEPS_MAX
from pcnalloc.core.overrides import apply_sets
from pcnalloc.nn.encoder import EncoderShape

ENCODER_SIZES = ("hidden", "gnn_hidden", "gnn_layers", "heads", "lstm_hidden", "q_hidden")
"""The teacher's layer sizes: fields of both :class:`TeacherConfig` and
:class:`~pcnalloc.nn.EncoderShape`, whose defaults the config's fields take."""

TRAIN_SEED_BASE = 1_000_000
"""Training env seeds start here; held-out evaluation seeds lie below."""


class TeacherConfig(BaseModel):
    """Double DQN over the 128-d joint state; defaults fit in ≈ 30 min on 2 CPU cores."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: EnvConfig = Field(
        default_factory=EnvConfig,
        description="environment (case, traffic, reward weights) the teacher is trained on",
    )
    loads: tuple[float, ...] = Field(
        (1.0,), min_length=1, description="offered loads ρ cycled over training episodes"
    )
    steps: int = Field(
        30_000, ge=1, le=STEPS_MAX, description="environment steps (decisions) to train for"
    )
    seed: int = Field(
        0, ge=0, le=SEED_MAX, description="seed of network init, exploration and replay"
    )
    threads: int = Field(1, ge=1, description="torch intra-op threads")
    n_envs: int = Field(
        8,
        ge=1,
        le=256,
        description="envs stepped together (one batched forward per vector step); each "
        "env runs its own episodes, with its own exploration generator per episode",
    )
    # network sizes: the defaults are the encoder's own (pcnalloc.nn.EncoderShape), written once
    hidden: int = Field(
        EncoderShape.hidden, ge=8, description="width of each embedding before fusion"
    )
    gnn_hidden: int = Field(
        EncoderShape.gnn_hidden, ge=8, description="node embedding width inside the GNN"
    )
    gnn_layers: int = Field(EncoderShape.gnn_layers, ge=1, le=6, description="GATv2 layers")
    heads: int = Field(
        EncoderShape.heads, ge=1, le=8, description="attention heads per GATv2 layer"
    )
    lstm_hidden: int = Field(
        EncoderShape.lstm_hidden, ge=4, description="hidden width per LSTM direction"
    )
    q_hidden: int = Field(
        EncoderShape.q_hidden, ge=8, description="hidden width of the shared Q head"
    )
    # learning
    lr: float = Field(1e-3, gt=0, description="Adam learning rate")
    batch_size: int = Field(64, ge=1, description="transitions per gradient step")
    buffer_size: int = Field(30_000, ge=100, description="replay capacity (transitions)")
    learning_starts: int = Field(1_000, ge=1, description="env steps before the first update")
    train_every: int = Field(4, ge=1, description="env steps between gradient steps")
    gamma: float = Field(
        0.9,
        ge=0,
        lt=1,
        description="discount per τ seconds of simulated time (discount=time) or per "
        "decision (discount=decision)",
    )
    discount: Literal["time", "decision"] = Field(
        "decision",
        description="time: semi-Markov γ^(Δt/τ) over the simulated time between decisions; "
        "decision: γ per decision (the default until the time discount is shown to train "
        "on case30: with it the 6,000-step teacher collapsed to value 0.22 vs 0.98)",
    )
    tau_s: float = Field(
        600.0,
        gt=0,
        description="time scale τ of the discount, seconds (600 s = holding time of the most "
        "frequent class; the arrival-weighted mean holding time of the default catalog is "
        "≈ 860 s)",
    )
    n_step: int = Field(1, ge=1, le=64, description="steps of the n-step return")
    normalise_time_q: bool = Field(
        True,
        description="discount=time: multiply rewards by 1 − γ^(Δt̄/τ) (Δt̄ = mean time between "
        "requests) so Q is a discounted mean reward per decision, not a sum over thousands",
    )
    # demonstrations (DQfD, Hester et al. 2018): off unless demo_policy names a heuristic
    demo_policy: str | None = Field(
        None,
        description="policy spec whose transitions seed a separate demonstration replay and "
        "a large-margin term (e.g. cspf-pe); it must act on the teacher's action space "
        "(same k_paths and grant_levels); None = no demonstrations",
    )
    demo_episodes: int = Field(
        2, ge=1, description="demonstration episodes per training load (own seeds, see demo_seed)"
    )
    demo_pretrain: int = Field(
        500, ge=0, description="gradient steps on demonstrations alone before acting"
    )
    demo_ratio: float = Field(
        0.25,
        ge=0,
        lt=1,
        description="share of each batch drawn from the demonstration replay after pre-training",
    )
    demo_margin: float = Field(
        0.8, ge=0, description="margin l of the large-margin term (scaled reward units)"
    )
    demo_weight: float = Field(
        1.0, ge=0, description="weight λ_E of the large-margin term on demonstration rows"
    )
    target_update: int = Field(
        500, ge=1, description="gradient steps between target-network updates"
    )
    tau: float = Field(
        1.0, gt=0, le=1, description="Polyak factor at each target update (1 = hard copy)"
    )
    huber_delta: float = Field(1.0, gt=0, description="Huber loss threshold (scaled reward units)")
    max_grad_norm: float = Field(10.0, gt=0, description="gradient clipping (global L2 norm)")
    reward_scale: float = Field(
        0.1, gt=0, description="multiplier on env rewards inside the learner (Q is in these units)"
    )
    eps_start: float = Field(1.0, ge=0, le=1, description="initial ε of ε-greedy")
    eps_end: float = Field(0.05, ge=0, le=1, description="final ε of ε-greedy")
    eps_fraction: float = Field(
        0.3, gt=0, le=1, description="share of ``steps`` over which ε decays linearly"
    )
    # bookkeeping
    eval_every: int = Field(5_000, ge=0, description="env steps between evaluations (0 = off)")
    eval_seeds: tuple[int, ...] = Field(
        (90_001, 90_002), description="held-out env seeds of the periodic evaluation"
    )
    eval_requests: int = Field(
        500, ge=1, le=REQUESTS_MAX, description="requests per evaluation episode"
    )
    eval_baseline: str = Field("ksp-ff", description="baseline policy the evaluation compares to")
    eval_scenario: str | None = Field(
        None,
        description="scenario family of the periodic evaluation (learning curves on storms or "
        "cuts); None = the training env's own traffic",
    )
    checkpoint_every: int = Field(5_000, ge=1, description="env steps between checkpoints")
    log_every: int = Field(1_000, ge=1, description="env steps between CSV log rows")
    keep_checkpoints: int = Field(3, ge=1, description="step checkpoints kept on disk")
    target_kind: Literal["double"] = Field("double", description="TD target (Double DQN)")
    tensorboard: Path | None = Field(
        None, description="also write the CSV log rows as TensorBoard scalars here (off: None)"
    )

    @field_validator("eval_seeds")
    @classmethod
    def _held_out(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        bad = [s for s in v if s >= TRAIN_SEED_BASE or s < 0]
        if bad:
            raise ValueError(f"eval_seeds must lie in [0, {TRAIN_SEED_BASE}), got {bad}")
        return v

    @field_validator("eval_scenario")
    @classmethod
    def _family(cls, v: str | None) -> str | None:
        if v is not None:
            from pcnalloc.config import load_scenario

            load_scenario(v)  # an unknown family fails at config time, before training
        return v

    @model_validator(mode="after")
    def _eps(self) -> TeacherConfig:
        if self.eps_end > self.eps_start:
            raise ValueError(f"eps_end {self.eps_end} must be ≤ eps_start {self.eps_start}")
        return self

    def epsilon(self, step: int) -> float:
        """Linear ε schedule at env step ``step``."""
        frac = min(step / max(self.eps_fraction * self.steps, 1.0), 1.0)
        return self.eps_start + frac * (self.eps_end - self.eps_start)

    def explore_rng(self, episode: int):
        """Exploration generator of training episode ``episode`` (independent of n_envs)."""
        import numpy as np

        return np.random.default_rng([self.seed, episode])

    def train_seed(self, episode: int) -> int:
        """Env seed of training episode ``episode`` (never an evaluation seed)."""
        return TRAIN_SEED_BASE + 10_000 * self.seed + episode

    def demo_seed(self, index: int) -> int:
        """Env seed of demonstration episode ``index``: counted down from the top of this run
        seed's training block, so demonstrations and training episodes (counted up from its
        bottom) never share a seed while together they stay under 10,000 episodes."""
        return TRAIN_SEED_BASE + 10_000 * self.seed + 9_999 - index

    def env_for_load(self, load: float) -> EnvConfig:
        """The training env config at offered load ``load``."""
        d = self.env.model_dump()
        d["traffic"]["load"] = load
        return EnvConfig.model_validate(d)

    def encoder_sizes(self) -> dict[str, int]:
        """Layer sizes passed to :meth:`pcnalloc.nn.EncoderShape.for_env`."""
        return {k: getattr(self, k) for k in ENCODER_SIZES}


def teacher_config(
    file: str | Path | None = None, *, sets: Sequence[str] = (), **overrides: Any
) -> TeacherConfig:
    """Build a :class:`TeacherConfig` from an optional YAML file plus keyword overrides.

    Nested ``env`` overrides merge into the file's ``env`` mapping (e.g.
    ``env={"network": {"case": "case30"}}``); then the dotted ``sets``
    (``env.traffic.load=1.5``, see :mod:`pcnalloc.core.overrides`) merge over both.

    Raises:
        ConfigError: naming every bad field.
    """
    data: dict[str, Any] = read_yaml(file) if file is not None else {}
    for k, v in overrides.items():
        if k == "env" and isinstance(v, dict):
            data["env"] = _merge(data.get("env", {}) or {}, v)
        else:
            data[k] = v
    data = apply_sets(data, sets, TeacherConfig)
    return build(TeacherConfig, data, "teacher config")


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
