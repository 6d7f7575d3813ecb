"""``pcnalloc/Access-v0`` takes ``render_mode`` through ``gymnasium.make`` (ansi, rgb_array)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import pcnalloc  # noqa: F401  (registers the env ids)
from pcnalloc.access.env import AccessEnv
from pcnalloc.access.render import AccessRenderModeError

SMALL = dict(devices=12, plc_subchannels=10, g5_subchannels=4, quota=3, epochs=2, slots_per_epoch=3)


def _play(env: gym.Env, seed: int) -> tuple[list[float], list[object]]:
    env.reset(seed=seed)
    rewards, frames, done = [], [env.render()], False
    while not done:
        mask = env.unwrapped.action_masks().reshape(-1, 2)
        _, r, done, _, _ = env.step(np.where(mask[:, 1], 1, 0))
        rewards.append(r)
        frames.append(env.render())
    return rewards, frames


@pytest.mark.parametrize("mode", ["ansi", "rgb_array"])
def test_make_with_a_render_mode_renders_and_changes_nothing(mode: str) -> None:
    """Before render_mode was accepted, gym.make(..., render_mode=...) raised TypeError."""
    env = gym.make("pcnalloc/Access-v0", config=SMALL, render_mode=mode)
    assert env.render_mode == mode and mode in env.metadata["render_modes"]
    rewards, frames = _play(env, 3)
    assert rewards == _play(gym.make("pcnalloc/Access-v0", config=SMALL), 3)[0]
    if mode == "ansi":
        assert all(isinstance(f, str) for f in frames)
        assert "epoch 0/2" in frames[0] and "epoch 2/2" in frames[-1]
        assert "last epoch: weighted sum" in frames[-1]
    else:
        for f in frames:
            assert isinstance(f, np.ndarray) and f.shape == (240, 320, 3) and f.dtype == np.uint8
        # after an epoch the bars carry the mode colours: PLC orange and 5G blue both appear
        colours = {tuple(c) for c in np.unique(frames[-1].reshape(-1, 3), axis=0)}
        assert {(230, 140, 30), (40, 110, 220)} <= colours


def test_gymnasium_render_check_passes() -> None:
    check_env(AccessEnv(SMALL, render_mode="ansi"))


def test_an_unknown_render_mode_is_refused() -> None:
    with pytest.raises(AccessRenderModeError, match="'ansi', 'rgb_array'"):
        gym.make("pcnalloc/Access-v0", config=SMALL, render_mode="video")
    assert AccessEnv(SMALL).render() is None
