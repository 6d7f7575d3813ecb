"""``pcnalloc/Access-v0`` passes gymnasium's checker, masks unreachable modes, is seeded."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium.utils.env_checker import check_env

import pcnalloc.envs  # noqa: F401  (registers the env ids)
from pcnalloc.access.env import AccessEnv

SMALL = dict(devices=12, plc_subchannels=10, g5_subchannels=4, quota=3, epochs=2, slots_per_epoch=3)


def test_check_env_and_registration() -> None:
    env = gym.make("pcnalloc/Access-v0", config=SMALL)
    check_env(env.unwrapped, skip_render_check=True)


def test_episode_masks_and_determinism() -> None:
    def play(seed: int) -> list[float]:
        env = AccessEnv(SMALL)
        obs, _ = env.reset(seed=seed)
        assert env.observation_space.contains(obs)
        out, done = [], False
        while not done:
            mask = env.action_masks().reshape(-1, 2)
            assert mask.any(axis=1).all()
            act = np.where(mask[:, 1], 1, 0)  # 5G where allowed: C4 gets repaired
            obs, r, done, _, info = env.step(act)
            assert info["repaired"] >= 12 - 4 - (~mask[:, 1]).sum()
            out.append(r)
        return out

    assert play(5) == play(5)
    assert play(5) != play(6)
