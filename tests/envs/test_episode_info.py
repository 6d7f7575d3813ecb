"""Episode figures in the last step's ``info``: the same numbers ``pcnalloc evaluate``
computes (one MetricsRecorder), on the registered ids and the regional parallel env."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from pcnalloc.baselines.registry import make_policy
from pcnalloc.distributed.parallel_env import parallel_env
from pcnalloc.envs import ENV_ID, FLAT_ENV_ID, PowerCommEnv
from pcnalloc.evaluate.episode import EPISODE_INFO_KEYS, EpisodeMetrics
from pcnalloc.evaluate.metrics import MetricsRecorder
from pcnalloc.evaluate.runner import env_config_for, run_policy

REQUESTS = 300


@pytest.fixture(scope="module")
def cfg(small_pool_graph_file, make_config):
    return make_config(small_pool_graph_file, events="stress", traffic={"load": 1.5})


def _play(env: gym.Env, policy: Any, seed: int) -> tuple[list[dict[str, Any]], int]:
    """Run ``policy`` to the end of the episode; return every info and the truncation step."""
    policy.reset(seed)
    obs, _ = env.reset(seed=seed)
    infos, done_at = [], -1
    for i in range(REQUESTS + 5):
        obs, _, term, trunc, info = env.step(policy.act(obs))
        infos.append(info)
        if term or trunc:
            done_at = i
            break
    return infos, done_at


@pytest.mark.parametrize("spec", ["ksp-ff", "cspf-pe"])
def test_last_info_equals_the_evaluation_runner(cfg, spec: str) -> None:
    policy = make_policy(spec)
    ecfg = env_config_for(policy, cfg, REQUESTS)
    ref = run_policy(make_policy(spec), cfg, seed=9, requests=REQUESTS)["metrics"]
    env = gym.make(ENV_ID, config=ecfg, observation=policy.observation)
    infos, done_at = _play(env, policy, seed=9)
    assert done_at == REQUESTS - 1
    last = infos[-1]
    assert all(k not in info for info in infos[:-1] for k in EPISODE_INFO_KEYS)
    for k in EPISODE_INFO_KEYS:
        assert last[k] == ref[k], k
    assert last["episode_metrics"] == ref
    assert last["executed_hard_violations"] == 0
    assert 0.0 < last["weighted_value_ratio"] <= 1.0


def test_a_skipped_step_would_be_caught(cfg, monkeypatch) -> None:
    """Planted fault: a recorder that misses one step reports other numbers than the runner."""
    policy = make_policy("ksp-ff")
    ecfg = env_config_for(policy, cfg, REQUESTS)
    ref = run_policy(make_policy("ksp-ff"), cfg, seed=9, requests=REQUESTS)["metrics"]
    record = MetricsRecorder.record

    def skip_tenth(self: MetricsRecorder, info: dict[str, Any], reward: float) -> None:
        self._seen = getattr(self, "_seen", 0) + 1
        if self._seen != 10:
            record(self, info, reward)

    monkeypatch.setattr(MetricsRecorder, "record", skip_tenth)
    infos, _ = _play(EpisodeMetrics(PowerCommEnv(ecfg, observation="compact")), policy, seed=9)
    assert infos[-1]["episode_metrics"]["requests"] == REQUESTS - 1
    assert infos[-1]["episode_metrics"] != ref


def test_flat_id_reports_too_and_stays_deterministic(cfg) -> None:
    def run(seed: int) -> dict[str, Any]:
        env = gym.make(FLAT_ENV_ID, config=cfg.model_copy(update={"episode_requests": 200}))
        _, info = env.reset(seed=seed)
        rng = np.random.default_rng(seed)
        while True:
            valid = np.flatnonzero(info["action_mask"])
            _, _, term, trunc, info = env.step(int(valid[rng.integers(valid.size)]))
            if term or trunc:
                return info

    a, b, c = run(1), run(1), run(2)
    assert {k: a[k] for k in EPISODE_INFO_KEYS} == {k: b[k] for k in EPISODE_INFO_KEYS}
    assert a["episode_metrics"]["requests"] == 200
    assert a["episode_metrics"] != c["episode_metrics"]


def test_wrapper_refuses_other_envs() -> None:
    with pytest.raises(TypeError, match="PowerCommEnv"):
        EpisodeMetrics(gym.make("CartPole-v1"))


def test_parallel_env_last_infos_carry_the_episode(cfg) -> None:
    env = parallel_env(config=cfg.model_copy(update={"episode_requests": 150}))
    obs, infos = env.reset(seed=0)
    steps = 0
    while env.agents:
        acts = {a: int(np.flatnonzero(o["action_mask"])[0]) for a, o in obs.items()}
        obs, _, _, truncs, infos = env.step(acts)
        steps += 1
        if not all(truncs.values()):
            assert not any(k in i for i in infos.values() for k in EPISODE_INFO_KEYS)
    assert steps >= 150
    for info in infos.values():
        assert info["episode_metrics"]["requests"] == 150
        assert info["executed_hard_violations"] == 0
        assert set(EPISODE_INFO_KEYS) <= info.keys()
