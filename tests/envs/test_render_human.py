"""``render_mode='human'``: a matplotlib window redrawn per step; headless machines skip it."""

from __future__ import annotations

import gymnasium as gym
import matplotlib
import numpy as np
import pytest

from pcnalloc.envs import PowerCommEnv
from pcnalloc.envs import render as render_mod


@pytest.fixture(scope="module")
def cfg(small_pool_graph_file, make_config):
    return make_config(small_pool_graph_file, events="stress", traffic={"load": 1.5})


def _play(env: PowerCommEnv, n: int, seed: int = 3) -> list[int]:
    env.reset(seed=seed)
    rng = np.random.default_rng(0)
    actions = []
    for _ in range(n):
        valid = np.flatnonzero(env.action_masks())
        a = int(valid[rng.integers(valid.size)])
        actions.append(a)
        env.step(a)
    return actions


def test_headless_human_warns_once_and_draws_nothing(cfg, monkeypatch) -> None:
    assert not render_mod.interactive_backend("agg")
    monkeypatch.setattr(matplotlib, "get_backend", lambda: "agg")
    env = PowerCommEnv(cfg, observation="compact", render_mode="human")
    with pytest.warns(UserWarning, match="needs a display") as rec:
        _play(env, 5)
        assert env.render() is None
    assert len([w for w in rec if "needs a display" in str(w.message)]) == 1
    assert env._window.image is None


def test_on_screen_window_shows_the_utilisation_frame(cfg, monkeypatch) -> None:
    """With an interactive backend (faked on this machine: Agg draws, pause is a no-op) every
    step redraws the window with what ``rgb_array`` would return."""
    import matplotlib.pyplot as plt

    monkeypatch.setattr(render_mod, "interactive_backend", lambda name: True)
    pauses: list[float] = []
    monkeypatch.setattr(plt, "pause", pauses.append)
    env = PowerCommEnv(cfg, observation="compact", render_mode="human")
    twin = PowerCommEnv(cfg, observation="compact", render_mode="rgb_array")
    try:
        acts = _play(env, 12)
        assert _play(twin, 12) == acts  # rendering never changes the trajectory
        assert len(pauses) == 13  # reset + 12 steps
        shown = np.asarray(env._window.image.get_array())
        np.testing.assert_array_equal(shown, twin.render())
    finally:
        env._window.close()


def test_gym_make_accepts_human(cfg, monkeypatch) -> None:
    monkeypatch.setattr(matplotlib, "get_backend", lambda: "agg")
    env = gym.make("pcnalloc/PowerComm-v0", config=cfg, render_mode="human")
    assert env.unwrapped.render_mode == "human"
    with pytest.warns(UserWarning, match="needs a display"):
        env.reset(seed=0)
