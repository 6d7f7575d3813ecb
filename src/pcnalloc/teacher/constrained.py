"""Constrained (Lagrangian, primal-dual) Double DQN with transfer to a new limit.

The constrained MDP of the secure-MEC allocation paper, in this domain: maximise the
episode reward subject to a long-term limit on the **rate of priority ≤ 1 blocking**,

    max_π E[Σ_t r_t]   s.t.   B(π) = E[blocked priority ≤ 1 requests] / E[offered ones] ≤ ε.

(The paper's DoS-probability analogue — Zone I/II flows on distrusted sites — lives in the
distributed-region model, not in this env; critical blocking is the long-term, measured,
per-episode quantity the operator states a limit for, so it is the constraint here.)

Primal-dual learning on the Lagrangian ``L(π, λ) = E[Σ r] − λ·(B(π) − ε)``:

- **primal**: the teacher's Double DQN (:class:`pcnalloc.teacher.DoubleDQN`, unchanged)
  learns Q of the cost-augmented reward ``w·r_t − λ·c_t`` with ``c_t = 1`` when the decision
  blocks a priority ≤ 1 request. The replay (:class:`LagrangianReplay`) keeps r and c apart
  and rewrites the reward column whenever λ moves, so every stored transition is replayed
  under the current multiplier (off-policy Q-learning of the current Lagrangian).
- **dual**: after every ``dual_batch`` finished episodes, projected dual ascent on the
  measured rate of that batch: ``λ ← clip(λ + η·(B̂ − ε), 0, λ_max)`` (:func:`dual_step`):
  λ rises while the constraint is violated and falls while it is slack. ``dual: pid`` is the
  PID Lagrangian of Stooke, Achiam & Abbeel (2020), "Responsive Safety in Reinforcement
  Learning by PID Lagrangian Methods" (:func:`pid_step`): the same integral (η is its gain
  K_I) plus a proportional term K_P·(B̂ − ε) and a derivative term K_D·(B̂ − B̂_prev)⁺, so λ
  answers the violation measured now rather than only after it has been integrated.

**Transfer**: when the limit changes (ε₁ → ε₂), training starts from the ε₁ solution —
Q-networks and λ — instead of from scratch (:class:`ConstrainedTrainer` ``warm_start``), with
the exploration of a fine-tune (``warm_eps_start``). Under ``dual: pid`` the warm run's
integral resumes at λ_old / K_I; why that is the warm-start choice: with plain ascent a warm
run inherits λ fitted to ε₁ and sees only the small violation B(π₁) − ε₂, so λ climbs at
η·(B − ε₂) per update, more slowly than from scratch where the initial violation is large;
the proportional term adds K_P·(B − ε₂) at once, on top of the inherited integral, without
rescaling λ by a guess of how the shadow price moves with ε. :func:`episodes_to_converge` counts
the episodes until the trailing mean of the measured rate stays within the limit.

The unconstrained extremes are the same trainer with ``dual: fixed``: ``lambda_init: 0``
(value only) and ``reward_weight: 0, lambda_init: 1`` (blocking only).

The loop is written here rather than inside :mod:`pcnalloc.teacher.train` because it adds
per-step costs, the dual update and per-episode measurements; it drives the same public
pieces (``DoubleDQN.update``, ``ReplayBuffer.sample_n``, ``epsilon_greedy_batch``,
``TeacherConfig`` schedules and seeds, checkpoints readable by :class:`TeacherPolicy`).
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from pcnalloc.config import build, read_yaml
from pcnalloc.envs import PowerCommEnv
from pcnalloc.fileio import write_atomic
from pcnalloc.nn import EncoderShape, collate
from pcnalloc.teacher.checkpoint import (
    CheckpointError,
    check_compatible,
    load_checkpoint,
    load_state,
    save_checkpoint,
)
from pcnalloc.teacher.config import TeacherConfig
from pcnalloc.teacher.dqn import DoubleDQN, epsilon_greedy_batch
from pcnalloc.teacher.replay import ReplayBuffer

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "constrained.pt"
LOG_FILE = "episodes.csv"
LOG_COLUMNS = (
    "episode",
    "step",
    "lambda",
    "critical_blocking",
    "critical_offered",
    "value_ratio",
    "reward",
    "epsilon_greedy",
)


class ConstrainedConfig(BaseModel):
    """Limit, multiplier and budget of one constrained training run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    teacher: TeacherConfig = Field(
        default_factory=TeacherConfig,
        description="Double DQN, env and seeds (its ``steps`` is replaced by the episode budget)",
    )
    epsilon: float = Field(
        0.02, gt=0, lt=1, description="limit ε on the per-episode priority ≤ 1 blocking rate"
    )
    episodes: int = Field(40, ge=1, description="training episodes (the budget)")
    dual: Literal["ascent", "fixed", "pid"] = Field(
        "ascent",
        description="ascent: projected dual ascent on λ; fixed: λ stays at lambda_init; "
        "pid: PID Lagrangian (Stooke et al. 2020), integral gain lambda_lr, "
        "plus lambda_kp and lambda_kd",
    )
    lambda_init: float = Field(0.0, ge=0, description="initial multiplier λ (reward units)")
    lambda_lr: float = Field(
        20.0, gt=0, description="dual step η: λ moves by η·(measured rate − ε) per update"
    )
    lambda_max: float = Field(50.0, gt=0, description="upper projection bound of λ")
    lambda_kp: float = Field(
        0.0, ge=0, description="dual: pid — proportional gain K_P on (measured rate − ε)"
    )
    lambda_kd: float = Field(
        0.0,
        ge=0,
        description="dual: pid — derivative gain K_D on the rise of the measured rate",
    )
    dual_batch: int = Field(
        0,
        ge=0,
        description="finished episodes per dual update (their pooled blocking rate); "
        "0 = the teacher's n_envs",
    )
    reward_weight: float = Field(
        1.0, ge=0, description="weight w of the env reward in w·r − λ·c (0 = blocking only)"
    )
    warm_eps_start: float = Field(
        0.2, ge=0, le=1, description="initial ε-greedy of a warm-started (transfer) run"
    )
    converge_window: int = Field(
        5, ge=1, description="episodes of the trailing mean that episodes_to_converge reads"
    )


def constrained_config(file: str | Path | None = None, **overrides: Any) -> ConstrainedConfig:
    """Build a :class:`ConstrainedConfig` from an optional YAML file plus overrides.

    Raises:
        ConfigError: naming every bad field (e.g. ε outside (0, 1)).
    """
    data: dict[str, Any] = read_yaml(file) if file is not None else {}
    data.update(overrides)
    cfg: ConstrainedConfig = build(cast(Any, ConstrainedConfig), data, "constrained config")
    return cfg


def dual_step(lam: float, measured: float, epsilon: float, lr: float, lam_max: float) -> float:
    """Projected dual ascent: ``clip(λ + η·(measured − ε), 0, λ_max)``."""
    return float(min(max(lam + lr * (measured - epsilon), 0.0), lam_max))


@dataclass
class PIDState:
    """State of the PID Lagrangian: the integral of (rate − ε) and the previous rate."""

    integral: float = 0.0
    prev: float | None = None


def pid_step(
    state: PIDState,
    measured: float,
    epsilon: float,
    *,
    kp: float,
    ki: float,
    kd: float,
    lam_max: float,
) -> tuple[float, PIDState]:
    """One update of the PID Lagrangian multiplier (Stooke, Achiam & Abbeel 2020, Alg. 2).

    ``Δ = measured − ε``; ``I ← clip(I + Δ, 0, λ_max/K_I)`` (projected, so the integral does
    not wind up beyond what λ_max allows); ``∂ = (measured − prev)⁺``;
    ``λ = clip(K_P·Δ + K_I·I + K_D·∂, 0, λ_max)``. With K_P = K_D = 0 this is exactly
    :func:`dual_step` (λ = K_I·I). Returns (λ, new state).
    """
    delta = measured - epsilon
    cap = lam_max / ki if ki > 0 else float("inf")
    integral = min(max(state.integral + delta, 0.0), cap)
    deriv = max(measured - state.prev, 0.0) if state.prev is not None else 0.0
    lam = min(max(kp * delta + ki * integral + kd * deriv, 0.0), lam_max)
    return float(lam), PIDState(integral=integral, prev=float(measured))


def episodes_to_converge(
    rates: Sequence[float], epsilon: float, window: int, tol: float = 0.0
) -> int | None:
    """Episodes until the constraint holds for good: the smallest e such that the trailing
    mean of ``rates`` over ``window`` episodes is ≤ ε + ``tol`` at episode e and every later
    episode (1-based count; None if it never settles within the run). A primal-dual learner
    settles *at* the limit, so its measured rate hovers around ε: ``tol`` (absolute) is the
    band a stated convergence allows."""
    r = np.asarray(rates, dtype=float)
    if r.size == 0:
        return None
    c = np.cumsum(np.insert(r, 0, 0.0))
    idx = np.arange(1, r.size + 1)
    lo = np.maximum(idx - window, 0)
    trailing = (c[idx] - c[lo]) / (idx - lo)
    ok = trailing <= epsilon + tol + 1e-12
    if not ok[-1]:
        return None
    bad = np.flatnonzero(~ok)
    return int(bad[-1] + 2) if bad.size else 1


def episodes_to_reach(
    rates: Sequence[float], epsilon: float, window: int, tol: float = 0.0
) -> int | None:
    """Episodes until the trailing mean of ``rates`` (over ``window``) first reaches
    ε + ``tol`` (1-based; None if never) — the first passage, where
    :func:`episodes_to_converge` asks that it stay there."""
    r = np.asarray(rates, dtype=float)
    if r.size == 0:
        return None
    c = np.cumsum(np.insert(r, 0, 0.0))
    idx = np.arange(1, r.size + 1)
    lo = np.maximum(idx - window, 0)
    ok = np.flatnonzero((c[idx] - c[lo]) / (idx - lo) <= epsilon + tol + 1e-12)
    return int(ok[0] + 1) if ok.size else None


def episodes_to_settle(values: Sequence[float], window: int, rel_tol: float = 0.02) -> int | None:
    """Episodes until the trailing mean of ``values`` stays within ``rel_tol`` (relative) of
    its final trailing mean (1-based; None for an empty run)."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return None
    c = np.cumsum(np.insert(v, 0, 0.0))
    idx = np.arange(1, v.size + 1)
    lo = np.maximum(idx - window, 0)
    trailing = (c[idx] - c[lo]) / (idx - lo)
    final = trailing[-1]
    ok = np.abs(trailing - final) <= rel_tol * max(abs(final), 1e-12)
    bad = np.flatnonzero(~ok)
    return int(bad[-1] + 2) if bad.size else 1


class LagrangianReplay(ReplayBuffer):
    """Replay that stores the env reward and the constraint cost apart and keeps the learner's
    reward column at ``w·r − λ·c`` for the current multiplier (see :meth:`set_multiplier`)."""

    def __init__(self, capacity: int, example: Mapping[str, Any], streams: int = 1) -> None:
        super().__init__(capacity, example, streams)
        self.raw_reward_C = np.zeros(self.capacity, np.float32)
        self.cost_C = np.zeros(self.capacity, np.float32)
        self.lam = 0.0
        self.reward_weight = 1.0

    def record(self, slot: int, action: int, reward: float, cost: float, dt_s: float) -> None:
        """The action from ``slot``, its env reward, its cost and the time to the next
        decision; the learner's reward is stored as ``w·reward − λ·cost``."""
        self.raw_reward_C[slot] = reward
        self.cost_C[slot] = cost
        self.set_step(slot, action, self.reward_weight * reward - self.lam * cost, dt_s)

    def set_multiplier(self, lam: float, reward_weight: float | None = None) -> None:
        """Rewrite every stored reward for a new λ (and weight): ``w·r − λ·c``."""
        self.lam = float(lam)
        if reward_weight is not None:
            self.reward_weight = float(reward_weight)
        np.subtract(
            self.reward_weight * self.raw_reward_C,
            np.float32(self.lam) * self.cost_C,
            out=self.reward_C,
        )


@dataclass
class ConstrainedResult:
    """What a constrained run produced."""

    checkpoint: Path
    episodes: list[dict[str, Any]]
    lambda_final: float
    steps: int
    wall_s: float
    duals: list[dict[str, float]] = field(default_factory=list)

    def rates(self) -> list[float]:
        return [float(r["critical_blocking"]) for r in self.episodes]

    def values(self) -> list[float]:
        return [float(r["value_ratio"]) for r in self.episodes]


@dataclass
class _Episode:
    crit_off: int = 0
    crit_blk: int = 0
    val_off: float = 0.0
    val_net: float = 0.0
    reward: float = 0.0


class ConstrainedTrainer:
    """One primal-dual run into ``out_dir`` (``constrained.pt``, ``episodes.csv``).

    Args:
        cfg: constrained config.
        out_dir: output folder.
        warm_start: a ``constrained.pt`` (or folder holding one) of an earlier run on the same
            env: its Q-networks and multiplier are the starting point (transfer), and
            exploration starts at ``warm_eps_start``.
        on_episode: called with each finished episode's row.
    """

    def __init__(
        self,
        cfg: ConstrainedConfig,
        out_dir: str | Path,
        *,
        warm_start: str | Path | None = None,
        on_episode: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.cfg = cfg
        t = cfg.teacher
        total = cfg.episodes * t.env.episode_requests
        update: dict[str, Any] = {"steps": total}
        if warm_start is not None:
            update["eps_start"] = cfg.warm_eps_start
        self.tc = t.model_copy(update=update)
        self.out = Path(out_dir)
        self.on_episode = on_episode
        first = self.tc.env_for_load(self.tc.loads[0])
        base = PowerCommEnv(first, observation="full")
        self.envs = [base] + [
            PowerCommEnv(first, observation="full", network=base.net, catalog=base.catalog)
            for _ in range(self.tc.n_envs - 1)
        ]
        self.loads = list(self.tc.loads)
        self.crit_C = np.asarray(base.catalog.priority_C) <= 1
        self.value_C = np.asarray(base.catalog.value_C, dtype=float)
        self.shape = EncoderShape.for_env(self.tc.env, **self.tc.encoder_sizes())
        self.learner = DoubleDQN(self.shape, self.tc)
        self.lam = float(cfg.lambda_init)
        self.pid = PIDState(integral=self.lam / cfg.lambda_lr)
        self.warm_from: str | None = None
        if warm_start is not None:
            self._warm(warm_start)

    def _warm(self, path: str | Path) -> None:
        p = Path(path)
        ck = load_checkpoint(p / CHECKPOINT_FILE if p.is_dir() else p)
        check_compatible(ck, self.shape, self.tc.env.n_actions)
        if ck["env_config"] != self.tc.env.model_dump():
            raise CheckpointError(
                f"warm start {ck['path']} was trained on another env config; transfer needs "
                "the same env (only the limit ε changes)"
            )
        load_state(self.learner.online, ck["online"], ck["path"])
        load_state(self.learner.target, ck["target"], ck["path"])
        if self.cfg.dual in ("ascent", "pid"):
            self.lam = float(ck.get("constrained", {}).get("lambda", self.lam))
            # the integral resumes where the earlier run's multiplier stood
            self.pid = PIDState(integral=self.lam / self.cfg.lambda_lr)
        self.warm_from = str(ck["path"])

    def _payload(self) -> dict[str, Any]:
        return {
            "encoder_shape": self.shape.to_json(),
            "n_actions": self.tc.env.n_actions,
            "env_config": self.tc.env.model_dump(),
            "teacher_config": self.tc.model_dump(mode="json"),
            "online": self.learner.online.state_dict(),
            "target": self.learner.target.state_dict(),
            "optimizer": self.learner.optimizer.state_dict(),
            "train_state": {"step": self.step, "episode": self.episode, "updates": 0},
            "constrained": {
                "lambda": self.lam,
                **self.cfg.model_dump(mode="json", exclude={"teacher"}),
                "warm_from": self.warm_from,
            },
        }

    def run(self) -> ConstrainedResult:
        prev_threads = torch.get_num_threads()
        torch.set_num_threads(self.tc.threads)
        try:
            return self._run()
        finally:
            torch.set_num_threads(prev_threads)

    def _run(self) -> ConstrainedResult:  # noqa: C901 - the vectorised training loop, one frame
        cfg, tc, learner = self.cfg, self.tc, self.learner
        rng = np.random.default_rng(tc.seed)
        N = len(self.envs)
        batch_n = cfg.dual_batch or N
        tau_s = tc.tau_s if tc.discount == "time" else None
        self.step, self.episode = 0, 0
        finished = 0
        t0 = time.perf_counter()
        rows: list[dict[str, Any]] = []
        duals: list[dict[str, float]] = []
        pending: list[_Episode] = []
        buffer: LagrangianReplay | None = None
        obs: list[Any] = [None] * N
        slots = [0] * N
        acc = [_Episode() for _ in range(N)]
        rngs: list[np.random.Generator] = [rng] * N
        active = [False] * N

        def start(i: int) -> None:
            nonlocal buffer
            env = self.envs[i]
            load = self.loads[self.episode % len(self.loads)]
            if env.cfg.traffic.load != load:
                self.envs[i] = env = PowerCommEnv(
                    tc.env_for_load(load),
                    observation="full",
                    network=self.envs[0].net,
                    catalog=self.envs[0].catalog,
                )
            o, _ = env.reset(seed=tc.train_seed(self.episode))
            rngs[i] = tc.explore_rng(self.episode)
            self.episode += 1
            if buffer is None:
                buffer = LagrangianReplay(tc.buffer_size, o, streams=N)
                buffer.set_multiplier(self.lam, cfg.reward_weight)
            obs[i], acc[i], active[i] = o, _Episode(), True
            slots[i] = buffer.add_obs(o, continues=False, stream=i)

        for i in range(N):
            start(i)
        assert buffer is not None
        while finished < cfg.episodes:
            idx = [i for i in range(N) if active[i]]
            eps = tc.epsilon(self.step)

            def q_of(sel: list[int], idx: list[int] = idx) -> np.ndarray:
                return learner.greedy_q(collate([obs[idx[j]] for j in sel]))

            acts = epsilon_greedy_batch(
                q_of,
                [obs[i]["action_mask"] for i in idx],
                eps,
                [rngs[i] for i in idx],
            )
            prev = self.step
            for i, a in zip(idx, acts, strict=True):
                env = self.envs[i]
                o, reward, term, trunc, info = env.step(a)
                c = int(info["cls"])
                blocked = bool(self.crit_C[c]) and info["outcome"] != "accepted"
                e = acc[i]
                e.crit_off += int(self.crit_C[c])
                e.crit_blk += int(blocked)
                e.val_off += float(info.get("offered_value", info["value"]))
                if info["outcome"] == "accepted":
                    e.val_net += float(info.get("earned_value", info["value"] * info["grant"]))
                    e.val_net -= float(info.get("preempted_value", 0.0))
                e.reward += float(reward)
                buffer.record(
                    slots[i], a, float(reward), float(blocked), env.now - float(info["time_s"])
                )
                slots[i] = buffer.add_obs(o, continues=True, stream=i)
                obs[i] = o
                self.step += 1
                if term or trunc:
                    finished += 1
                    row = {
                        "episode": finished,
                        "step": self.step,
                        "lambda": round(self.lam, 5),
                        "critical_blocking": e.crit_blk / e.crit_off if e.crit_off else 0.0,
                        "critical_offered": e.crit_off,
                        "value_ratio": e.val_net / e.val_off if e.val_off else 0.0,
                        "reward": round(e.reward, 4),
                        "epsilon_greedy": round(eps, 4),
                    }
                    rows.append(row)
                    pending.append(e)
                    if self.on_episode is not None:
                        self.on_episode(row)
                    active[i] = False
                    if len(pending) >= batch_n:
                        off = sum(p.crit_off for p in pending)
                        measured = sum(p.crit_blk for p in pending) / off if off else 0.0
                        if cfg.dual == "ascent":
                            self.lam = dual_step(
                                self.lam, measured, cfg.epsilon, cfg.lambda_lr, cfg.lambda_max
                            )
                            buffer.set_multiplier(self.lam)
                        elif cfg.dual == "pid":
                            self.lam, self.pid = pid_step(
                                self.pid,
                                measured,
                                cfg.epsilon,
                                kp=cfg.lambda_kp,
                                ki=cfg.lambda_lr,
                                kd=cfg.lambda_kd,
                                lam_max=cfg.lambda_max,
                            )
                            buffer.set_multiplier(self.lam)
                        duals.append(
                            {"episode": finished, "measured": measured, "lambda": self.lam}
                        )
                        pending = []
                    if self.episode < cfg.episodes:
                        start(i)
            n_up = self.step // tc.train_every - prev // tc.train_every
            if self.step >= tc.learning_starts and buffer.n_transitions >= tc.batch_size:
                for _ in range(n_up):
                    o_b, a_b, r_b, d_b, o2_b = buffer.sample_n(
                        tc.batch_size, rng, n_step=tc.n_step, gamma=tc.gamma, tau_s=tau_s
                    )
                    learner.update(o_b, a_b, r_b, o2_b, d_b)
            if not any(active):
                break
        self.out.mkdir(parents=True, exist_ok=True)
        ck = save_checkpoint(self.out / CHECKPOINT_FILE, self._payload())
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(LOG_COLUMNS))
        w.writeheader()
        w.writerows(rows)
        write_atomic(self.out / LOG_FILE, buf.getvalue())
        return ConstrainedResult(
            checkpoint=ck,
            episodes=rows,
            lambda_final=self.lam,
            steps=self.step,
            wall_s=time.perf_counter() - t0,
            duals=duals,
        )


def train_constrained(
    cfg: ConstrainedConfig,
    out_dir: str | Path,
    *,
    warm_start: str | Path | None = None,
    on_episode: Callable[[dict[str, Any]], None] | None = None,
) -> ConstrainedResult:
    """Train a constrained teacher; see :class:`ConstrainedTrainer`."""
    return ConstrainedTrainer(cfg, out_dir, warm_start=warm_start, on_episode=on_episode).run()


def evaluate_constrained(
    checkpoint: str | Path, seeds: Sequence[int], requests: int, epsilon: float
) -> dict[str, Any]:
    """Greedy play of a constrained teacher on evaluation seeds: mean value ratio, mean
    per-episode priority ≤ 1 blocking, and whether that mean meets ε."""
    from pcnalloc.evaluate import run_policy
    from pcnalloc.teacher.policy import TeacherPolicy

    p = Path(checkpoint)
    pol = TeacherPolicy.load(p / CHECKPOINT_FILE if p.is_dir() else p)
    ms = [run_policy(pol, pol.env_config, seed=int(s), requests=requests)["metrics"] for s in seeds]
    v = [m["weighted_value_ratio"] for m in ms]
    b = [m["blocking_priority_le1"] for m in ms]
    return {
        "value_ratio": float(np.mean(v)),
        "critical_blocking": float(np.mean(b)),
        "value_per_seed": v,
        "critical_blocking_per_seed": b,
        "meets_epsilon": bool(np.mean(b) <= epsilon),
    }


__all__ = [
    "CHECKPOINT_FILE",
    "ConstrainedConfig",
    "ConstrainedResult",
    "ConstrainedTrainer",
    "LagrangianReplay",
    "PIDState",
    "constrained_config",
    "dual_step",
    "episodes_to_converge",
    "episodes_to_reach",
    "episodes_to_settle",
    "evaluate_constrained",
    "pid_step",
    "train_constrained",
]
