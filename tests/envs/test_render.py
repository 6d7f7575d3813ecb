"""Rendering: ansi text and rgb_array utilisation map on both envs, Gymnasium's checks and
errors, and that rendering never changes a seeded trajectory."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from pettingzoo.test.render_test import collect_render_results

import pcnalloc
from pcnalloc.distributed import parallel_env as regional
from pcnalloc.envs import ENV_ID, FLAT_ENV_ID, PowerCommEnv
from pcnalloc.envs.render import RENDER_MODES, RenderModeError, render_ansi
from pcnalloc.errors import ConfigError


@pytest.fixture(scope="module")
def cfg(small_pool_graph_file, make_config):
    return make_config(small_pool_graph_file, events="stress", traffic={"load": 1.5})


def _valid(env: PowerCommEnv, rng: np.random.Generator) -> int:
    valid = np.flatnonzero(env.action_masks())
    return int(valid[rng.integers(valid.size)])


def test_metadata_lists_the_modes() -> None:
    assert PowerCommEnv.metadata["render_modes"] == ["ansi", "rgb_array", "human"]
    assert regional.RegionalParallelEnv.metadata["render_modes"] == list(RENDER_MODES)
    assert PowerCommEnv.metadata["render_fps"] > 0


def test_ansi_names_request_candidates_and_links(cfg) -> None:
    env = PowerCommEnv(cfg, observation="compact", render_mode="ansi")
    env.reset(seed=2)
    rng = np.random.default_rng(0)
    for _ in range(20):
        env.step(_valid(env, rng))
    text = env.render()
    assert isinstance(text, str) and text.endswith("\n")
    req = env.current_request
    assert env.catalog.names[req.cls] in text
    assert f"{env.net.site_names[req.src]} → {env.net.site_names[req.dst]}" in text
    assert "candidates" in text and f"reject = action {env.reject_action}" in text
    for k in range(env.cfg.k_paths):
        assert f"k={k}:" in text
    assert f"links: {env.net.n_links}" in text and "busiest:" in text
    assert len(text.splitlines()) <= env.cfg.k_paths + 8  # a short summary
    # a valid grant level is starred, a masked one dotted: the text follows the mask
    ev = env.current_evaluation
    assert ("*" in text) == bool((ev.mask_A[:-1] & ~ev.needs_preempt_A[:-1]).any())


def test_ansi_before_reset_says_so(cfg) -> None:
    env = PowerCommEnv(cfg, observation="compact", render_mode="ansi")
    assert "reset" in env.render()


def test_rgb_array_is_an_image_of_the_utilisation(cfg) -> None:
    env = PowerCommEnv(cfg, observation="compact", render_mode="rgb_array")
    env.reset(seed=2)
    first = env.render()
    assert first.dtype == np.uint8 and first.ndim == 3 and first.shape[2] == 3
    assert first.shape == (480, 640, 3)
    assert np.array_equal(first, env.render())  # the same state draws the same frame
    rng = np.random.default_rng(0)
    for _ in range(40):
        env.step(_valid(env, rng))
    later = env.render()
    assert later.shape == first.shape
    assert not np.array_equal(first, later)  # utilisation (and the request) changed
    # planted fault: redraw the same frame with every link empty — the link pixels change,
    # so the image really follows the utilisation, not only the title
    env.state.used_ES1[:] = 0
    empty = env.render()
    assert not np.array_equal(later[40:440], empty[40:440])


def test_render_without_mode_warns_and_returns_none(cfg) -> None:
    env = PowerCommEnv(cfg, observation="compact")
    env.reset(seed=0)
    with pytest.warns(UserWarning, match="render_mode"):
        assert env.render() is None


@pytest.mark.parametrize("mode", ["rgb", "text", "rgb_array_list", 3])
def test_unknown_mode_is_gymnasium_unsupported_mode(cfg, mode: Any) -> None:
    with pytest.raises(RenderModeError, match="accepted: None, 'ansi', 'rgb_array'") as e:
        PowerCommEnv(cfg, render_mode=mode)
    assert isinstance(e.value, gym.error.UnsupportedMode)
    assert isinstance(e.value, ConfigError)
    with pytest.raises(gym.error.UnsupportedMode):
        regional.parallel_env(config=cfg, render_mode=mode)


def test_gym_make_passes_render_mode(cfg) -> None:
    assert pcnalloc  # registration happens on import
    env = gym.make(FLAT_ENV_ID, config=cfg, render_mode="ansi")
    assert env.render_mode == "ansi"
    env.reset(seed=0)
    assert isinstance(env.render(), str)
    frames = gym.make(ENV_ID, config=cfg, render_mode="rgb_array_list")
    frames.reset(seed=0)
    frames.step(frames.unwrapped.reject_action)
    out = frames.render()  # Gymnasium's RenderCollection: one frame per reset/step
    assert len(out) == 2 and out[0].shape == (480, 640, 3)
    with pytest.raises(gym.error.UnsupportedMode), pytest.warns(UserWarning, match="bogus"):
        gym.make(ENV_ID, config=cfg, render_mode="bogus")


@pytest.mark.parametrize("mode", RENDER_MODES)
def test_gymnasium_render_check_passes(cfg, mode: str) -> None:
    # through make, so the checker also builds the env in the other render modes from its spec
    check_env(gym.make(FLAT_ENV_ID, config=cfg, render_mode=mode).unwrapped)


def _run(env: PowerCommEnv, seed: int, steps: int, render: bool) -> list[Any]:
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    out: list[Any] = [obs.copy()]
    for _ in range(steps):
        if render:
            env.render()
        a = _valid(env, rng) if rng.random() < 0.8 else int(rng.integers(env.action_space.n))
        obs, reward, _, trunc, info = env.step(a)
        out.append((obs.copy(), reward, trunc, info["outcome"], info["time_s"]))
    return out


@pytest.mark.parametrize("mode", RENDER_MODES)
def test_rendering_keeps_the_trajectory(cfg, mode: str) -> None:
    steps = 60 if mode == "rgb_array" else 200
    plain = _run(PowerCommEnv(cfg, observation="flat"), 5, steps, render=False)
    drawn = _run(PowerCommEnv(cfg, observation="flat", render_mode=mode), 5, steps, render=True)
    assert np.array_equal(plain[0], drawn[0])
    for x, y in zip(plain[1:], drawn[1:], strict=True):
        assert np.array_equal(x[0], y[0]) and x[1:] == y[1:]
    # the comparison can fail: another seed gives another trajectory
    other = _run(PowerCommEnv(cfg, observation="flat"), 6, steps, render=False)
    assert any(a[1:] != b[1:] for a, b in zip(plain[1:], other[1:], strict=True))


@pytest.mark.parametrize("mode", RENDER_MODES)
def test_parallel_env_renders(cfg, mode: str) -> None:
    results = collect_render_results(regional.env(config=cfg, render_mode=mode))
    for res in results:
        if mode == "ansi":
            assert isinstance(res, str) and "candidates" in res
        elif mode == "rgb_array":
            assert res.dtype == np.uint8 and res.shape == (480, 640, 3)
        else:  # human draws in a window (here none: no display) and returns None
            assert res is None
    par = regional.parallel_env(config=cfg, render_mode=mode)
    assert par.render_mode == mode
    par.reset(seed=0)
    if mode == "ansi":
        assert par.render() == render_ansi(par.env)
