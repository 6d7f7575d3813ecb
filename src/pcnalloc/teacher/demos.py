"""Demonstrations for the teacher (DQfD, Hester et al. 2018): a heuristic's transitions.

A tuned operator heuristic (CSPF with pre-emption, trunk reservation …) plays whole
training-seed episodes on the teacher's own envs; its transitions go to a separate replay
that is never overwritten. The learner pre-trains on them (TD + large-margin term, see
:func:`pcnalloc.teacher.dqn.large_margin_loss`) and afterwards draws a fixed share of every
batch from them, so Q starts from the heuristic's ranking and TD learning can only move
away from it where the returns say so. Seeds come from :meth:`TeacherConfig.demo_seed`
(training block, never an evaluation seed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pcnalloc.baselines import make_policy
from pcnalloc.core.policy import bind
from pcnalloc.envs import PowerCommEnv
from pcnalloc.errors import ConfigError
from pcnalloc.evaluate.metrics import MetricsRecorder
from pcnalloc.teacher.config import TeacherConfig
from pcnalloc.teacher.replay import ReplayBuffer


@dataclass
class DemoSet:
    """The demonstration replay and what the demonstrator achieved on it."""

    buffer: ReplayBuffer
    policy: str
    episodes: int
    transitions: int
    value_ratio: dict[float, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "episodes": self.episodes,
            "transitions": self.transitions,
            "value_ratio_by_load": {str(k): round(v, 5) for k, v in self.value_ratio.items()},
        }


def check_action_space(policy: Any, cfg: TeacherConfig) -> None:
    """Refuse a demonstrator that needs another action space than the teacher's.

    Raises:
        ConfigError: naming the policy, the field and both values.
    """
    for key, value in dict(policy.env_overrides).items():
        mine = getattr(cfg.env, key, None)
        if mine is not None and mine != value:
            raise ConfigError(
                f"demo_policy {cfg.demo_policy!r} needs {key}={value} but the teacher's env has "
                f"{key}={mine}; use a spec with the teacher's K (e.g. cspf-pe:{cfg.env.k_paths})"
            )


def collect_demonstrations(cfg: TeacherConfig, envs: Mapping[float, PowerCommEnv]) -> DemoSet:
    """Play ``cfg.demo_policy`` for ``demo_episodes`` episodes at every training load.

    Args:
        cfg: teacher config with ``demo_policy`` set.
        envs: one full-observation env per training load (the trainer's first vector slot).

    Raises:
        ConfigError: no demo policy, or one on another action space.
        UnknownPolicyError: the spec names no policy.
    """
    if not cfg.demo_policy:
        raise ConfigError("collect_demonstrations needs teacher.demo_policy")
    policy = make_policy(cfg.demo_policy)
    check_action_space(policy, cfg)
    if policy.observation not in ("compact", "full"):
        raise ConfigError(f"demo_policy {cfg.demo_policy!r} reads {policy.observation!r} obs")
    per_ep = cfg.env.episode_requests
    capacity = max(per_ep * cfg.demo_episodes * len(cfg.loads) + 2, 200)
    buffer: ReplayBuffer | None = None
    values: dict[float, list[float]] = {}
    index = 0
    for load in cfg.loads:
        env = envs[load]
        bind(policy, env)
        for _ in range(cfg.demo_episodes):
            seed = cfg.demo_seed(index)
            index += 1
            policy.reset(seed)
            obs, _ = env.reset(seed=seed)
            if buffer is None:
                buffer = ReplayBuffer(capacity, obs, streams=1)
            slot = buffer.add_obs(obs, continues=False)
            rec = MetricsRecorder(env)
            done = False
            while not done:
                action = int(policy.act(obs))
                obs, reward, term, trunc, info = env.step(action)
                buffer.set_step(slot, action, float(reward), env.now - float(info["time_s"]))
                slot = buffer.add_obs(obs, continues=True)
                rec.record(info, reward)
                done = bool(term or trunc)
            values.setdefault(load, []).append(rec.result()["weighted_value_ratio"])
    assert buffer is not None
    return DemoSet(
        buffer=buffer,
        policy=cfg.demo_policy,
        episodes=index,
        transitions=buffer.n_transitions,
        value_ratio={k: float(np.nanmean(v)) for k, v in values.items()},
    )
