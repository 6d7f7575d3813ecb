"""Operator heuristics: valid actions only, first-fit / least-loaded semantics, sensible ranking."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pcnalloc.baselines import Policy, make_policy
from pcnalloc.baselines.heuristics import F_PRE, F_UTIL, F_VALID
from pcnalloc.envs import PowerCommEnv
from pcnalloc.errors import ConfigError, PcnallocError, UnknownPolicyError
from pcnalloc.evaluate import env_config_for, run_policy

HEURISTICS = ("random", "sp-ff", "ksp-ff", "ksp-ff:16", "llp", "cspf-pe")


def _play(policy: Policy, cfg, seed: int, steps: int):
    """Yield (obs, action, info) while ``policy`` plays ``steps`` decisions."""
    env = PowerCommEnv(env_config_for(policy, cfg), observation=policy.observation)
    policy.reset(seed)
    obs, _ = env.reset(seed=seed)
    for _ in range(steps):
        a = policy.act(obs)
        nxt, _, _, _, info = env.step(a)
        yield env, obs, a, info
        obs = nxt


@pytest.fixture(scope="module")
def loaded(small_pool_graph_file: Path, make_config):
    """Small pools, warm start, overload and frequent cuts: every branch of a heuristic runs."""
    return make_config(small_pool_graph_file, events="stress", traffic={"load": 1.5})


@pytest.mark.parametrize("spec", HEURISTICS)
def test_heuristics_only_choose_valid_actions(spec: str, loaded) -> None:
    policy = make_policy(spec)
    assert isinstance(policy, Policy) and policy.model_bytes == 0
    outcomes = []
    for _env, obs, a, info in _play(policy, loaded, seed=0, steps=300):
        mask = obs["action_mask"]
        assert 0 <= a < mask.size and mask[a] == 1, (spec, a)
        assert info["outcome"] != "refused"
        plain = (mask[:-1] == 1) & (obs["candidates"][:-1, F_PRE] == 0)
        if a == mask.size - 1:  # rejected: only when nothing it may take was valid
            if spec in ("random", "cspf-pe"):
                assert not mask[:-1].any()
            else:
                assert not plain.any()
        outcomes.append(info["outcome"])
    assert "accepted" in outcomes


def test_first_fit_takes_the_first_plain_candidate_grant_first(loaded) -> None:
    policy = make_policy("ksp-ff")
    K, L = 4, 3
    order = np.arange(K * L).reshape(K, L).T.ravel()  # full grant on every path, then degrade
    checked = 0
    for _, obs, a, _ in _play(policy, loaded, seed=1, steps=300):
        cand = obs["candidates"]
        plain = (cand[order, F_VALID] > 0) & (cand[order, F_PRE] == 0)
        expected = int(order[np.argmax(plain)]) if plain.any() else K * L
        assert a == expected
        checked += plain.any()
    assert checked > 0


def test_sp_ff_uses_the_shortest_path_only(loaded) -> None:
    policy = make_policy("sp-ff")
    assert policy.env_overrides["k_paths"] == 1
    for env, _, a, _ in _play(policy, loaded, seed=2, steps=100):
        assert env.action_space.n == 1 * 3 + 1
        assert a // 3 == 0 or a == 3


def test_least_loaded_picks_least_utilised_path_at_best_grant(loaded) -> None:
    policy = make_policy("llp")
    K, L = 4, 3
    for _, obs, a, _ in _play(policy, loaded, seed=3, steps=300):
        cand = obs["candidates"][:-1].reshape(K, L, -1)
        ok = (cand[..., F_VALID] > 0) & (cand[..., F_PRE] == 0)
        if not ok.any():
            assert a == K * L
            continue
        level = int(np.flatnonzero(ok.any(axis=0))[0])
        k, lvl = divmod(a, L)
        assert lvl == level and ok[k, lvl]
        assert cand[k, lvl, F_UTIL] == cand[ok[:, level], level, F_UTIL].min()


def test_random_valid_is_seeded() -> None:
    obs = {"action_mask": np.array([1, 0, 1, 1, 0, 1, 0, 0, 1, 0, 1, 0, 1], dtype=np.int8)}
    p, q = make_policy("random"), make_policy("random")
    p.reset(5)
    q.reset(5)
    a = [p.act(obs) for _ in range(50)]
    assert a == [q.act(obs) for _ in range(50)]
    assert set(a) == {0, 2, 3, 5, 8, 10}  # every valid non-reject action, never the reject


def _total(results: list[dict], key: str) -> float:
    return sum(r["metrics"][key] for r in results)


def _rank(cfg, seeds: tuple[int, ...], requests: int) -> dict[str, list[dict]]:
    out = {}
    for spec in ("sp-ff", "ksp-ff", "cspf-pe"):
        out[spec] = [run_policy(make_policy(spec), cfg, seed=s, requests=requests) for s in seeds]
        for r in out[spec]:
            assert r["metrics"]["outcomes"]["refused"] == 0
            assert r["metrics"]["executed_hard_violations"] == 0
    return out


def _assert_sensible(res: dict[str, list[dict]]) -> None:
    sp, ksp, pe = res["sp-ff"], res["ksp-ff"], res["cspf-pe"]
    assert _total(ksp, "blocking_probability") <= _total(sp, "blocking_probability")
    assert _total(ksp, "weighted_value_ratio") >= _total(sp, "weighted_value_ratio")
    # Pre-emption serves critical traffic at least as well as plain first fit.
    assert _total(pe, "blocking_priority_le1") <= _total(ksp, "blocking_priority_le1")
    assert _total(sp, "blocking_probability") > 0  # the network really was loaded


def test_ksp_ff_blocks_no_more_than_sp_ff_small_network(loaded) -> None:
    _assert_sensible(_rank(loaded, seeds=(0, 1, 2), requests=1000))


@pytest.mark.slow
def test_ksp_ff_blocks_no_more_than_sp_ff_case30(make_config) -> None:
    cfg = make_config("case30", traffic={"load": 1.5})
    _assert_sensible(_rank(cfg, seeds=(0, 1, 2), requests=1000))


# ----------------------------------------------------------------------------- registry


def test_unknown_policy_names_value_and_choices() -> None:
    with pytest.raises(UnknownPolicyError, match="'greedy-magic'") as err:
        make_policy("greedy-magic")
    for name in ("ksp-ff", "sp-ff", "llp", "cspf-pe", "random"):
        assert name in str(err.value)
    assert isinstance(err.value, PcnallocError)


@pytest.mark.parametrize(("spec", "needle"), [("ksp-ff:0", "0"), ("ksp-ff:17", "17"),
                                                ("ksp-ff:x", "'x'")])  # fmt: skip
def test_bad_k_in_policy_spec(spec: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        make_policy(spec)


def test_policy_spec_sets_k_and_env_overrides(loaded) -> None:
    p = make_policy("ksp-ff:16")
    assert p.name == "ksp-ff:16" and p.env_overrides == {
        "k_paths": 16,
        "grant_levels": 3,
        "candidate_pool": None,  # its own K shortest routes, whatever the base env says
    }
    cfg = env_config_for(p, loaded, requests=10)
    assert cfg.k_paths == 16 and cfg.episode_requests == 10 and cfg.network.path_cache >= 16


def test_heuristic_refuses_mismatched_observation() -> None:
    p = make_policy("ksp-ff")
    with pytest.raises(ValueError, match="13 actions"):
        p.act({"candidates": np.zeros((5, 11), dtype=np.float32)})
