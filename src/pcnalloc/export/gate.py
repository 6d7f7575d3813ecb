"""The int8 gates: decision-relevant agreement with fp32 on library rows, and closed-loop value.

**Agreement** is judged row by row (batch 1), as the edge runs the model: a dynamically
quantised model takes its activation range from each call, so a whole-batch run (one range
for thousands of rows) measures another model (on the case30 main-job student 74 % raw
agreement on the batch against 98 % row by row).

On row i let a8 be the int8 model's raw argmax (what the edge proposes), a32 the fp32 raw
argmax and e32 the fp32 masked argmax (the action the fp32 model gets executed). Then

* **raw** agreement: a8 = a32;
* **decision-relevant** agreement: a8 is valid (``action_mask`` = 1) and either a8 = e32, or
  the teacher values tie, |Q_T(a8) − Q_T(e32)| ≤ ``tie_tol_q`` (teacher-Q units; default
  :data:`~pcnalloc.distill.metrics.CLEAR_GAP`, the gap below which the distillation metrics
  call the teacher indifferent), or the fp32 logits tie, z32(e32) − z32(a8) ≤
  ``tie_tol_logit`` (logit units; default 0, off). A masked action never counts as agreeing,
  whatever its value. It is judged on the rows where the fp32 model's own proposal a32 is
  valid: where fp32 proposes a masked action the edge replaces the model's choice anyway, and
  counting those rows would refuse a faithful int8 model for fp32's own flaw (measured: the
  case30 main-job student proposes a masked action on 0–1 % of library rows depending on its
  training seed, and int8 makes the same proposals there). ``decision_all`` also counts them,
  as disagreements. Without teacher values and masks (rows that are not a library's) every
  action counts as valid and only the logit tie applies.

**Closed loop**: the fp32 and int8 models are played as masked-argmax policies (what
:class:`~pcnalloc.edge.agent.EdgePolicy` does) on the same seeded episodes with the project's
runner (:func:`pcnalloc.distill.fidelity.closed_loop`, fp32 as the reference); the int8 model
must keep ``min_ratio`` of fp32's mean weighted value ratio.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pcnalloc.config import EnvConfig
from pcnalloc.distill.metrics import CLEAR_GAP
from pcnalloc.edge.agent import make_session
from pcnalloc.edge.artifact import OUTPUT_NAME
from pcnalloc.errors import ConfigError

DEFAULT_TIE_TOL_Q = CLEAR_GAP


@dataclass(frozen=True)
class Agreement:
    """int8/fp32 agreement on the sample rows (see the module docstring).

    Attributes:
        raw: share of rows whose raw argmaxes agree.
        decision: share of the judged rows (fp32 proposes a valid action) that agree by
            decision (ties and validity counted); what the gate compares with its floor.
        rows: rows compared.
        tie_tol_q: teacher-Q tie tolerance used (None: no teacher values).
        tie_tol_logit: fp32-logit tie tolerance used.
        masked_picks: rows where the int8 model proposes a masked action.
        ties: rows that agree by decision only through a tie.
        fp32_masked_picks: rows where the fp32 model itself proposes a masked action; its
            share is the ceiling of ``decision`` (a masked pick never agrees, whoever makes it).
    """

    raw: float
    decision: float
    rows: int
    tie_tol_q: float | None
    tie_tol_logit: float
    masked_picks: int
    ties: int
    fp32_masked_picks: int = 0
    decision_all: float | None = None

    @property
    def judged_rows(self) -> int:
        """Rows the decision-relevant agreement is judged on."""
        return self.rows - self.fp32_masked_picks

    def to_json(self) -> dict[str, Any]:
        return {
            "raw": self.raw,
            "decision": self.decision,
            "rows": self.rows,
            "tie_tol_q": self.tie_tol_q,
            "tie_tol_logit": self.tie_tol_logit,
            "masked_picks": self.masked_picks,
            "ties": self.ties,
            "fp32_masked_picks": self.fp32_masked_picks,
            "judged_rows": self.judged_rows,
            "decision_all": self.decision_all,
            "judged": "row by row (batch 1, as deployed)",
        }


def rowwise_logits(model: bytes, input_name: str, rows_ND: np.ndarray) -> np.ndarray:
    """Logits (N, A) of ``model`` run one row per call (one thread), as the edge runs it."""
    sess = make_session(model)
    x = np.ascontiguousarray(rows_ND, np.float32)
    first = sess.run([OUTPUT_NAME], {input_name: x[:1]})[0]
    out = np.empty((len(x), first.shape[1]), np.float32)
    out[0] = first[0]
    for i in range(1, len(x)):
        out[i] = sess.run([OUTPUT_NAME], {input_name: x[i : i + 1]})[0][0]
    return out


def decision_agreement(
    fp32_NA: np.ndarray,
    int8_NA: np.ndarray,
    *,
    q_values_NA: np.ndarray | None = None,
    action_mask_NA: np.ndarray | None = None,
    tie_tol_q: float = DEFAULT_TIE_TOL_Q,
    tie_tol_logit: float = 0.0,
) -> Agreement:
    """Raw and decision-relevant agreement of int8 logits with fp32 logits (module docstring).

    Args:
        fp32_NA, int8_NA: logits (N, A) of the two models on the same rows.
        q_values_NA: the teacher's Q-values on those rows (None: no value tie).
        action_mask_NA: 1 = valid (None: every action valid).
        tie_tol_q: teacher-Q tie tolerance (≥ 0).
        tie_tol_logit: fp32-logit tie tolerance (≥ 0).

    Raises:
        ConfigError: mismatched shapes or a negative tolerance.
    """
    z, z8 = np.asarray(fp32_NA, np.float64), np.asarray(int8_NA, np.float64)
    if z.shape != z8.shape or z.ndim != 2 or len(z) == 0:
        raise ConfigError(f"logits of shapes {z.shape} and {z8.shape}; need equal (N, A), N ≥ 1")
    if tie_tol_q < 0 or tie_tol_logit < 0:
        raise ConfigError(f"tie tolerances must be ≥ 0 (q {tie_tol_q}, logit {tie_tol_logit})")
    n = len(z)
    i = np.arange(n)
    valid = np.ones(z.shape, bool) if action_mask_NA is None else np.asarray(action_mask_NA) > 0
    for name, arr in (("q_values", q_values_NA), ("action_mask", action_mask_NA)):
        if arr is not None and np.shape(arr) != z.shape:
            raise ConfigError(f"{name} has shape {np.shape(arr)}; expected {z.shape}")
    a8, a32 = z8.argmax(axis=1), z.argmax(axis=1)
    e32 = np.where(valid, z, -np.inf).argmax(axis=1)
    ok8 = valid[i, a8]
    tie = z[i, e32] - z[i, a8] <= tie_tol_logit
    if q_values_NA is not None:
        q = np.asarray(q_values_NA, np.float64)
        with np.errstate(invalid="ignore"):
            tie |= np.abs(q[i, a8] - q[i, e32]) <= tie_tol_q
    same = a8 == e32
    agree = ok8 & (same | tie)
    judged = valid[i, a32]
    return Agreement(
        raw=float(np.mean(a8 == a32)),
        decision=float(np.mean(agree[judged])) if judged.any() else 0.0,
        rows=n,
        tie_tol_q=float(tie_tol_q) if q_values_NA is not None else None,
        tie_tol_logit=float(tie_tol_logit),
        masked_picks=int(np.sum(~ok8)),
        ties=int(np.sum(agree & judged & ~same)),
        fp32_masked_picks=int(np.sum(~judged)),
        decision_all=float(np.mean(agree)),
    )


# ---------------------------------------------------------------------------- closed loop
class OnnxPolicy:
    """An in-memory ONNX student as a masked-argmax :class:`~pcnalloc.core.policy.Policy`.

    The gate runs before anything is signed or published, so it cannot load an artifact as
    :class:`~pcnalloc.edge.agent.EdgePolicy` does; this acts the same way (masked argmax of
    the model's logits on ``obs["compact"]``, one row per call) on the bytes themselves.
    """

    observation = "compact"

    def __init__(self, model: bytes, *, input_name: str = "compact", name: str) -> None:
        self.session = make_session(model)
        self.input_name = input_name
        self.name = name
        self.model_bytes = len(model)
        self.env_overrides: dict[str, Any] = {}
        self._x = np.zeros((1, self.session.get_inputs()[0].shape[-1]), np.float32)

    def reset(self, seed: int | None = None) -> None:
        return None

    def act(self, obs: dict[str, np.ndarray]) -> int:
        self._x[0] = obs["compact"]
        z = self.session.run([OUTPUT_NAME], {self.input_name: self._x})[0][0]
        return int(np.argmax(np.where(obs["action_mask"] > 0, z, -np.inf)))


@dataclass(frozen=True)
class ClosedLoopSpec:
    """Episodes of the closed-loop check and the value the int8 model must keep.

    Attributes:
        seeds: env seeds, the same for both models.
        requests: decisions per episode.
        min_ratio: int8 mean weighted value ratio / fp32's, required.
    """

    seeds: tuple[int, ...]
    requests: int
    min_ratio: float

    def __post_init__(self) -> None:
        if not self.seeds or self.requests < 1 or not 0 <= self.min_ratio <= 1:
            raise ConfigError(
                f"closed-loop check: seeds {list(self.seeds)}, requests {self.requests}, "
                f"min_ratio {self.min_ratio}; need ≥ 1 seed, ≥ 1 request, 0 ≤ min_ratio ≤ 1"
            )


@dataclass(frozen=True)
class ClosedLoop:
    """Outcome of the closed-loop check.

    Attributes:
        fp32_value, int8_value: mean weighted value ratio over the episodes.
        ratio: int8_value / fp32_value.
        min_ratio: the ratio required.
        seeds, requests, env: the episodes played.
        identical_episodes: episodes whose value is the same for both models.
    """

    fp32_value: float
    int8_value: float
    ratio: float
    min_ratio: float
    seeds: tuple[int, ...]
    requests: int
    env: str
    identical_episodes: int
    per_episode: dict[str, list[float]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.ratio >= self.min_ratio

    def to_json(self) -> dict[str, Any]:
        return {
            "fp32_value": self.fp32_value,
            "int8_value": self.int8_value,
            "ratio": self.ratio,
            "min_ratio": self.min_ratio,
            "seeds": list(self.seeds),
            "requests": self.requests,
            "env": self.env,
            "identical_episodes": self.identical_episodes,
            "per_episode": self.per_episode,
        }


def closed_loop_check(
    fp32: bytes,
    int8: bytes,
    env_config: EnvConfig,
    spec: ClosedLoopSpec,
    *,
    input_name: str = "compact",
) -> ClosedLoop:
    """Play both models on the same seeded episodes of ``env_config``; compare their value."""
    from pcnalloc.distill.fidelity import closed_loop

    ref = OnnxPolicy(fp32, input_name=input_name, name="fp32")
    q = OnnxPolicy(int8, input_name=input_name, name="int8")
    rep = closed_loop([q], ref, [env_config], seeds=spec.seeds, requests=spec.requests)
    v32 = [float(v) for v in rep["teacher"]["value_ratio_per_episode"]]
    v8 = [float(v) for v in rep["students"]["int8"]["value_ratio_per_episode"]]
    m32, m8 = float(np.mean(v32)), float(np.mean(v8))
    return ClosedLoop(
        fp32_value=m32,
        int8_value=m8,
        ratio=m8 / m32 if m32 > 0 else (1.0 if m8 >= m32 else 0.0),
        min_ratio=spec.min_ratio,
        seeds=tuple(int(s) for s in spec.seeds),
        requests=spec.requests,
        env=rep["envs"][0],
        identical_episodes=int(sum(a == b for a, b in zip(v32, v8, strict=True))),
        per_episode={"fp32": v32, "int8": v8},
    )


__all__ = [
    "DEFAULT_TIE_TOL_Q",
    "Agreement",
    "ClosedLoop",
    "ClosedLoopSpec",
    "OnnxPolicy",
    "closed_loop_check",
    "decision_agreement",
    "rowwise_logits",
]
