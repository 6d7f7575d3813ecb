"""The flat ``Box`` observation, its registered id, the mask in ``info``, and Gymnasium's and
Stable-Baselines3's environment checkers on both ids."""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from pcnalloc.envs import ENV_ID, FLAT_ENV_ID, PowerCommEnv
from pcnalloc.envs.features import CANDIDATE_FEATURES
from pcnalloc.envs.observation import compact_dim, request_dim
from pcnalloc.errors import ConfigError

CASE30 = {"traffic": {"warm_start": False}}
"""Registered defaults (case30) without the warm start, which only pre-fills pools."""


@pytest.fixture(scope="module")
def cfg(small_pool_graph_file, make_config):
    return make_config(small_pool_graph_file, events="stress", traffic={"load": 1.5})


def test_flat_space_is_the_compact_vector(cfg) -> None:
    env = PowerCommEnv(cfg, observation="flat")
    space = env.observation_space
    assert isinstance(space, gym.spaces.Box) and space.dtype == np.float32
    assert space.shape == (compact_dim(env.catalog, env.cfg),)
    obs, info = env.reset(seed=3)
    assert space.contains(obs)
    ref = PowerCommEnv(cfg, observation="compact")
    ref_obs, _ = ref.reset(seed=3)
    assert np.array_equal(obs, ref_obs["compact"])
    rng = np.random.default_rng(1)
    for _ in range(100):
        valid = np.flatnonzero(info["action_mask"])
        a = int(valid[rng.integers(valid.size)])
        obs, _, _, _, info = env.step(a)
        ref_obs, *_ = ref.step(a)
        assert np.array_equal(obs, ref_obs["compact"])


def test_mask_in_info_matches_action_masks_and_the_vector(cfg) -> None:
    env = PowerCommEnv(cfg, observation="flat")
    obs, info = env.reset(seed=4)
    A, F = env.cfg.n_actions, len(CANDIDATE_FEATURES)
    start = request_dim(env.catalog)
    col = CANDIDATE_FEATURES.index("valid")
    seen_masked = False
    rng = np.random.default_rng(0)
    for _ in range(200):
        mask = info["action_mask"]
        assert mask.dtype == bool and mask.shape == (A,)
        assert np.array_equal(mask, env.action_masks())
        # the mask is also inside the vector: the per-action "valid" feature
        feats_AF = obs[start : start + A * F].reshape(A, F)
        assert np.array_equal(feats_AF[:, col] > 0.5, mask)
        seen_masked |= not mask.all()
        obs, _, _, _, info = env.step(int(rng.integers(A)))
    assert seen_masked  # the check can fail: some actions were masked on the way
    # the dict modes keep their info as it was (no mask there: it is in the observation)
    _, info = PowerCommEnv(cfg, observation="compact").reset(seed=4)
    assert "action_mask" not in info


def test_unknown_observation_mode(cfg) -> None:
    with pytest.raises(ConfigError, match="accepted: full, compact, flat"):
        PowerCommEnv(cfg, observation="flattened")


@pytest.mark.parametrize("env_id", [ENV_ID, FLAT_ENV_ID])
def test_gymnasium_check_env_on_registered_ids(env_id: str) -> None:
    env = gym.make(env_id, config=CASE30)
    assert env.unwrapped.net.name == "case30"
    expect = gym.spaces.Box if env_id == FLAT_ENV_ID else gym.spaces.Dict
    assert isinstance(env.observation_space, expect)
    check_env(env.unwrapped, skip_render_check=True)
    with pytest.warns(UserWarning, match="different from the unwrapped"):
        check_env(env, skip_render_check=True)  # through the registered wrappers too


def test_import_pcnalloc_then_make_flat_in_a_fresh_process() -> None:
    code = (
        "import sys, gymnasium as gym, pcnalloc\n"
        "heavy = sorted(m for m in ('torch', 'pandapower') if m in sys.modules)\n"
        f"env = gym.make('{FLAT_ENV_ID}', config={{'traffic': {{'warm_start': False}}}})\n"
        "obs, info = env.reset(seed=0)\n"
        "print(heavy, type(env.observation_space).__name__, obs.shape, obs.dtype,\n"
        "      int(info['action_mask'].sum() > 0))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["[]", "Box", "(183,)", "float32", "1"]


def test_sb3_check_env_on_flat_id() -> None:
    env_checker = pytest.importorskip("stable_baselines3.common.env_checker")
    env = gym.make(FLAT_ENV_ID, config=CASE30)
    env_checker.check_env(env, warn=True)
    # the mask reaches MaskablePPO through a vectorised env
    pytest.importorskip("sb3_contrib")
    from sb3_contrib.common.maskable.utils import get_action_masks
    from stable_baselines3.common.env_util import make_vec_env

    vec = make_vec_env(FLAT_ENV_ID, n_envs=2, seed=0, env_kwargs={"config": CASE30})
    vec.reset()
    masks = get_action_masks(vec)
    assert masks.shape == (2, env.action_space.n) and masks[:, -1].all()
