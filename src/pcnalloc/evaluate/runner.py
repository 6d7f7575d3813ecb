"""Seeded runner: play any policy on any case and load, return metrics and timing."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from pcnalloc.config import EnvConfig
from pcnalloc.core.policy import Policy, bind, summary_of
from pcnalloc.envs.power_comm import PowerCommEnv
from pcnalloc.evaluate.metrics import MetricsRecorder


def env_config_for(policy: Policy, base: EnvConfig, requests: int | None = None) -> EnvConfig:
    """``base`` with the policy's required overrides (e.g. K) and the episode length."""
    update: dict[str, Any] = dict(policy.env_overrides)
    if requests is not None:
        update["episode_requests"] = requests
    merged = base.model_dump()
    merged.update(update)
    return EnvConfig.model_validate(merged)


def run_policy(
    policy: Policy,
    config: EnvConfig,
    *,
    seed: int,
    requests: int,
    progress: Callable[[int], None] | None = None,
    env: PowerCommEnv | None = None,
) -> dict[str, Any]:
    """Play ``policy`` for one episode of ``requests`` decisions from ``reset(seed=seed)``.

    Every executed action is checked by a
    :class:`~pcnalloc.evaluate.checker.SafetyChecker` on the raw state: its count is
    ``metrics["executed_hard_violations"]``. A rule guard's own summary goes to
    ``metrics["guard"]`` (its ``executed_violations`` is the guard's claim, kept apart).

    Returns:
        ``{"policy", "case", "load", "seed", "requests", "metrics", "timing"}`` where
        ``metrics`` is identical for the same inputs and ``timing`` holds wall-clock figures.
    """
    cfg = env_config_for(policy, config, requests)
    env = env or PowerCommEnv(cfg, observation=policy.observation)
    bind(policy, env)  # policies that read env state (rule guard, edge agent) attach here
    policy.reset(seed)
    obs, _ = env.reset(seed=seed)
    rec = MetricsRecorder(env)
    act_ns = np.zeros(requests, dtype=np.int64)
    t0 = time.perf_counter()
    for i in range(requests):
        t = time.perf_counter_ns()
        action = policy.act(obs)
        act_ns[i] = time.perf_counter_ns() - t
        obs, reward, _, _, info = env.step(action)
        rec.record(info, reward)
        if progress is not None and (i + 1) % 100 == 0:
            progress(100)
    wall = time.perf_counter() - t0
    if progress is not None and requests % 100:
        progress(requests % 100)
    metrics = rec.result(model_bytes=policy.model_bytes)
    g = summary_of(policy)
    if g is not None:  # a rule guard reports what it intercepted and what it let through
        metrics["intercepted"] += int(g.get("intercepted", 0))
        metrics["guard"] = g  # the guard's own claim; the checker's count stands apart
    return {
        "policy": policy.name,
        "case": cfg.network.case,
        "load": cfg.traffic.load,
        "scenario": cfg.traffic.scenario,
        "seed": seed,
        "requests": requests,
        "metrics": metrics,
        "timing": {
            "wall_s": round(wall, 4),
            "decisions_per_s": round(requests / wall, 1) if wall > 0 else None,
            "policy_latency_us_p50": round(float(np.percentile(act_ns, 50)) / 1e3, 2),
            "policy_latency_us_p99": round(float(np.percentile(act_ns, 99)) / 1e3, 2),
        },
    }
