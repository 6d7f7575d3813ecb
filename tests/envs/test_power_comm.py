"""PowerCommEnv: Gymnasium API, determinism, outcomes, reward, and typed errors on bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from pcnalloc.config import EnvConfig, env_config
from pcnalloc.envs import ENV_ID, OUTCOMES, PowerCommEnv
from pcnalloc.envs.features import HARD_RULES
from pcnalloc.errors import ActionError, ConfigError, PcnallocError, UnknownCaseError


def _check(env: gym.Env) -> None:
    check_env(env.unwrapped, skip_render_check=True)


@pytest.mark.slow
@pytest.mark.parametrize("observation", ["full", "compact"])
def test_check_env_registered_defaults(observation: str) -> None:
    """The literal defaults (case30, warm start): a reset places ~3,600 warm-start flows."""
    env = gym.make(ENV_ID) if observation == "full" else gym.make(ENV_ID, observation=observation)
    assert env.unwrapped.cfg == EnvConfig()
    assert env.unwrapped.net.name == "case30"
    _check(env)


@pytest.mark.parametrize("observation", ["full", "compact"])
def test_check_env_registered_case30(observation: str) -> None:
    """Defaults except the warm start (which only pre-fills pools; see the slow test)."""
    env = gym.make(ENV_ID, config={"traffic": {"warm_start": False}}, observation=observation)
    assert env.unwrapped.net.name == "case30" and env.unwrapped.net.n_sites == 30
    assert env.action_space == gym.spaces.Discrete(4 * 3 + 1)
    assert ("graph" in env.observation_space.spaces) == (observation == "full")
    _check(env)


def test_check_env_tiny_network_with_warm_start_and_events(small_pool_graph_file, make_config):
    cfg = make_config(small_pool_graph_file, events="stress")
    _check(gym.make(ENV_ID, config=cfg))


def _policy_actions(env: PowerCommEnv, rng: np.random.Generator) -> int:
    """Mix of valid, masked and reject actions driven only by ``rng`` and the mask."""
    mask = env.current_evaluation.mask_A
    r = rng.random()
    if r < 0.6 and mask[:-1].any():
        valid = np.flatnonzero(mask[:-1])
        return int(valid[rng.integers(valid.size)])
    if r < 0.8:
        return env.reject_action
    return int(rng.integers(env.action_space.n))


def _trajectory(env: PowerCommEnv, seed: int, steps: int) -> list[tuple[Any, ...]]:
    rng = np.random.default_rng(seed + 1000)
    obs, info = env.reset(seed=seed)
    out: list[tuple[Any, ...]] = [(obs, info["time_s"])]
    for _ in range(steps):
        obs, reward, term, trunc, info = env.step(_policy_actions(env, rng))
        out.append((obs, reward, term, trunc, info))
    return out


def _flat(obs: dict[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    out = {}
    for k, v in obs.items():
        if isinstance(v, dict):
            out.update(_flat(v, prefix + k + "/"))
        else:
            out[prefix + k] = np.asarray(v)
    return out


def _assert_same(a: list[tuple[Any, ...]], b: list[tuple[Any, ...]]) -> None:
    assert len(a) == len(b)
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        fx, fy = _flat(x[0]), _flat(y[0])
        assert fx.keys() == fy.keys()
        for k in fx:
            assert fx[k].dtype == fy[k].dtype and np.array_equal(fx[k], fy[k]), (i, k)
        assert x[1:] == y[1:], i  # reward, terminated, truncated, info (exact)


@pytest.mark.parametrize("observation", ["full", "compact"])
def test_same_seed_same_trajectory(small_pool_graph_file, make_config, observation) -> None:
    cfg = make_config(small_pool_graph_file, events="stress", traffic={"load": 1.5})
    a = _trajectory(PowerCommEnv(cfg, observation=observation), seed=7, steps=300)
    b = _trajectory(PowerCommEnv(cfg, observation=observation), seed=7, steps=300)
    _assert_same(a, b)
    outcomes = {step[4]["outcome"] for step in a[1:]}
    assert outcomes >= {"accepted", "rejected", "refused"}  # the run exercised the branches


def test_reset_with_seed_restarts_exactly(small_pool_graph_file, make_config) -> None:
    """Replaying on the same env instance (after another episode) gives the same run."""
    cfg = make_config(small_pool_graph_file, events="stress")
    env = PowerCommEnv(cfg)
    first = _trajectory(env, seed=3, steps=200)
    _trajectory(env, seed=4, steps=50)
    _assert_same(first, _trajectory(env, seed=3, steps=200))


def test_case30_same_seed_same_trajectory(make_config, case_network) -> None:
    cfg = make_config("case30", traffic={"warm_start": False})
    net = case_network("case30")
    a = _trajectory(PowerCommEnv(cfg, network=net), seed=11, steps=300)
    b = _trajectory(PowerCommEnv(cfg, network=net), seed=11, steps=300)
    _assert_same(a, b)


def test_different_seeds_differ(small_pool_graph_file, make_config) -> None:
    cfg = make_config(small_pool_graph_file, events="stress")
    a = _trajectory(PowerCommEnv(cfg, observation="compact"), seed=1, steps=50)
    b = _trajectory(PowerCommEnv(cfg, observation="compact"), seed=2, steps=50)
    times_a = [s[4]["time_s"] for s in a[1:]]
    times_b = [s[4]["time_s"] for s in b[1:]]
    assert times_a != times_b
    assert [s[4]["cls"] for s in a[1:]] != [s[4]["cls"] for s in b[1:]]


def test_observations_stay_in_space(small_pool_graph_file, make_config) -> None:
    cfg = make_config(small_pool_graph_file, events="stress", traffic={"load": 3.0})
    env = PowerCommEnv(cfg)
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=5)
    for _ in range(200):
        assert env.observation_space.contains(obs)
        assert obs["action_mask"][-1] == 1  # reject is always valid
        np.testing.assert_array_equal(obs["action_mask"], env.action_masks().astype(np.int8))
        obs = env.step(_policy_actions(env, rng))[0]


# ----------------------------------------------------------------------------- step outcomes


@pytest.fixture
def calm_env(tiny_graph_file, make_config) -> PowerCommEnv:
    cfg = make_config(tiny_graph_file, events="calm", traffic={"warm_start": False})
    env = PowerCommEnv(cfg, observation="compact")
    env.reset(seed=0)
    return env


def _count_admits(env: PowerCommEnv) -> list[int]:
    admitted: list[int] = []
    inner = env.state.admit

    def admit(**kw: Any):
        f = inner(**kw)
        admitted.append(f.id)
        return f

    env.state.admit = admit  # type: ignore[method-assign]
    return admitted


def test_accept_reserves_the_grant_and_pays_the_reward(calm_env: PowerCommEnv) -> None:
    env = calm_env
    admitted = _count_admits(env)
    rw = env.cfg.reward
    for _ in range(20):
        ev, req = env.current_evaluation, env.current_request
        a = int(np.flatnonzero(ev.mask_A[:-1])[0])
        k = a // env.cfg.grant_levels
        _, reward, _, _, info = env.step(a)
        assert info["outcome"] == "accepted" and info["cls"] == req.cls
        assert (info["src"], info["dst"]) == (req.src, req.dst)
        assert info["grant"] == ev.grant_A[a] and info["kbps"] == ev.kbps_A[a]
        assert info["latency_ms"] <= info["bound_ms"]
        flow = env.state.flows.get(admitted[-1])
        if flow is not None:  # not already departed
            assert flow.cls == req.cls and flow.kbps == info["kbps"]
            assert flow.slice == env.catalog.slice_C[req.cls]
        expected = (
            info["value"] * info["grant"]
            - rw.w_res * info["kbps"] / 1000.0 * ev.hops_K[k]
            - rw.w_bal * max(0.0, ev.util_after_A[a] - rw.balance_knee)
            - rw.w_lat * info["latency_ms"] / info["bound_ms"]
            - rw.preempt_penalty * info["preempted_value"]
        )
        assert reward == pytest.approx(expected)
    assert len(admitted) == 20


def test_reject_and_blocked_outcomes(calm_env: PowerCommEnv) -> None:
    env = calm_env
    for _ in range(30):
        ev = env.current_evaluation
        _, reward, _, _, info = env.step(env.reject_action)
        if ev.any_valid:
            assert info["outcome"] == "rejected"
            assert reward == pytest.approx(-env.cfg.reward.block_penalty * info["value"])
        else:
            assert info["outcome"] == "blocked" and reward == 0.0


def test_masked_action_is_refused_without_admission(small_pool_graph_file, make_config) -> None:
    env = PowerCommEnv(make_config(small_pool_graph_file, events="calm"), observation="compact")
    env.reset(seed=0)
    admitted = _count_admits(env)
    refused = 0
    for _ in range(300):
        ev = env.current_evaluation
        masked = np.flatnonzero(ev.mask_A == 0)
        if masked.size == 0:
            env.step(env.reject_action)
            continue
        a = int(masked[0])
        _, reward, _, _, info = env.step(a)
        refused += 1
        assert info["outcome"] == "refused"
        assert info["violated"] and set(info["violated"]) <= set(HARD_RULES)
        assert reward == pytest.approx(-env.cfg.reward.invalid_penalty * info["value"])
    assert refused > 0 and env.counters["refused"] == refused
    assert admitted == []


def test_truncation_after_episode_requests(tiny_graph_file, make_config) -> None:
    cfg = make_config(tiny_graph_file, episode_requests=25, traffic={"warm_start": False})
    env = PowerCommEnv(cfg, observation="compact")
    env.reset(seed=0)
    flags = [env.step(env.reject_action)[3] for _ in range(25)]
    assert flags == [False] * 24 + [True]


def test_outcome_names() -> None:
    assert OUTCOMES == ("accepted", "rejected", "blocked", "refused")


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("action", [-1, 13, 10**9, 1.5, "2", None, [1, 2], np.float64(2.5)])
def test_bad_action_is_action_error(calm_env: PowerCommEnv, action: object) -> None:
    before = calm_env.current_request.id
    with pytest.raises(ActionError) as err:
        calm_env.step(action)
    assert repr(action) in str(err.value) or str(action) in str(err.value)
    assert "0..12" in str(err.value)  # names what is accepted
    assert isinstance(err.value, PcnallocError)
    assert calm_env.current_request.id == before  # nothing was decided


def test_integer_like_actions_accepted(calm_env: PowerCommEnv) -> None:
    for a in (np.int64(12), np.int32(12), 12.0):
        assert calm_env.step(a)[4]["outcome"] in ("rejected", "blocked")


@pytest.mark.parametrize(
    ("overrides", "needles"),
    [
        ({"traffic": {"load": -1.0}}, ["traffic.load", "-1.0"]),
        ({"traffic": {"load": 0.0}}, ["traffic.load", "0.0"]),
        ({"k_paths": 0}, ["k_paths", "0"]),
        ({"k_paths": 17}, ["k_paths", "17"]),
        ({"grant_levels": 0}, ["grant_levels", "0"]),
        ({"network": {"slice_shares": {"rt": 1.0}}}, ["slice_shares"]),
        ({"colour": "red"}, ["colour"]),
        ({"traffic": {"events": {"fiber_cuts_per_hour": -2}}}, ["fiber_cuts_per_hour", "-2"]),
    ],
)
def test_bad_config_is_config_error(overrides: dict, needles: list[str]) -> None:
    for make in (
        lambda: env_config(**overrides),
        lambda: PowerCommEnv(overrides),
        lambda: gym.make(ENV_ID, config=overrides),
    ):
        with pytest.raises(ConfigError) as err:
            make()
        for needle in needles:
            assert needle in str(err.value), (needle, str(err.value))


def test_unknown_case_through_the_env() -> None:
    with pytest.raises(UnknownCaseError, match="case_nowhere"):
        PowerCommEnv({"network": {"case": "case_nowhere"}})


def test_unknown_observation_mode(tiny_graph_json: Path) -> None:
    with pytest.raises(ConfigError, match="'pixels'"):
        PowerCommEnv({"network": {"case": str(tiny_graph_json)}}, observation="pixels")
