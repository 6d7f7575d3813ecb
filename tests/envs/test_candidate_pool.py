"""State-chosen candidates (``candidate_pool``): the ranking, reach, determinism, the edge
agent offering the same routes, and the hindsight bound still covering the policy."""

from __future__ import annotations

import numpy as np
import pytest

from pcnalloc.baselines.registry import make_policy
from pcnalloc.config import env_config
from pcnalloc.envs.candidates import CandidatePool, slot_ranks
from pcnalloc.envs.power_comm import PowerCommEnv
from pcnalloc.evaluate.runner import run_policy


def _cfg(pool: int | None, **kw):
    return env_config(
        network=kw.pop("network", {"case": "case30"}),
        traffic={"load": kw.pop("load", 1.0), "scenario": kw.pop("scenario", "fiber-cut")},
        episode_requests=kw.pop("requests", 300),
        candidate_pool=pool,
        **kw,
    )


def test_slot_ranks_by_hand() -> None:
    L = 2  # 4 slots: [valid, valid by pre-empting, present invalid, absent]
    mask = np.array([1, 0, 0, 1, 0, 0, 0, 0, 1], dtype=np.int8)
    present = np.array([True, True, True, False])
    assert slot_ranks(mask, present, L).tolist() == [0, 0, 1, 2]
    # the reject action (always valid) does not make a slot valid
    assert slot_ranks(np.array([0] * 8 + [1], np.int8), np.ones(4, bool), L).tolist() == [1] * 4


def test_pool_keeps_the_k_shortest_when_they_can_carry_the_request() -> None:
    from pcnalloc.envs.features import evaluate

    cfg = _cfg(16, scenario="normal", load=0.3)
    env = PowerCommEnv(cfg, observation="compact")
    pool_cfg = cfg.model_copy(update={"k_paths": 16, "candidate_pool": None})
    env.reset(seed=3)
    K, L, checked = cfg.k_paths, cfg.grant_levels, 0
    for _ in range(100):
        pool = env.current_route_pool
        ev = evaluate(
            env.state, pool, env.current_request, env.catalog, pool_cfg, env.current_priority
        )
        if ev.mask_A[: K * L].reshape(K, L).any(axis=1).all():  # the K shortest can carry it
            assert np.array_equal(env.current_candidates.links_KH, pool.links_KH[:K])
            checked += 1
        valid = np.flatnonzero(env.action_masks()[:-1])
        env.step(int(valid[0]) if valid.size else env.reject_action)
    assert checked > 20


def _walk(cfg, seed: int, steps: int, probe_k: int = 16):
    """Per decision: (a valid action is offered, a valid action exists on one of the
    ``probe_k`` shortest routes), playing the first valid action."""
    from pcnalloc.envs.features import evaluate

    env = PowerCommEnv(cfg, observation="compact")
    probe_cfg = cfg.model_copy(update={"k_paths": probe_k, "candidate_pool": None})
    env.reset(seed=seed)
    shown, reachable = [], []
    for _ in range(steps):
        req, st = env.current_request, env.state
        routes = env.paths.candidates(
            req.src,
            req.dst,
            probe_k,
            protected=bool(env.catalog.protected_C[req.cls]),
            failed_E1=st.failed_E1,
            failed_key=st.failed_key,
        )
        ev = evaluate(st, routes, req, env.catalog, probe_cfg, priority=env.current_priority)
        reachable.append(ev.any_valid)
        shown.append(env.current_evaluation.any_valid)
        valid = np.flatnonzero(env.action_masks()[:-1])
        env.step(int(valid[0]) if valid.size else env.reject_action)
    return np.array(shown), np.array(reachable)


def test_pool_offers_a_valid_route_whenever_any_pool_route_has_one() -> None:
    shown, reachable = _walk(_cfg(16), seed=205, steps=300)
    assert reachable.sum() > 0
    assert np.array_equal(shown, reachable)
    # the plain K = 4 shortest routes miss some the pool reaches (so the check can fail)
    plain = _cfg(None, network={"case": "case30", "path_cache": 16})
    assert plain.route_pool == 4
    shown4, reach4 = _walk(plain, seed=205, steps=300)
    assert (reach4 & ~shown4).sum() > 0


def test_planted_unranked_pool_misses_valid_routes(monkeypatch: pytest.MonkeyPatch) -> None:
    import pcnalloc.envs.candidates as mod

    monkeypatch.setattr(mod, "slot_ranks", lambda mask, present, L: np.zeros(len(present)))
    shown, reachable = _walk(_cfg(16), seed=205, steps=300)
    assert (reachable & ~shown).sum() > 0  # the first K of the pool are not always usable


def test_pool_lifts_a_k4_first_fit_to_the_reach_of_k16_and_is_deterministic() -> None:
    def value(pool: int | None, seed: int = 205) -> dict:
        pol = make_policy("cspf-pe:4")
        pol.env_overrides["candidate_pool"] = pool
        return run_policy(pol, _cfg(None, requests=600), seed=seed, requests=600)["metrics"]

    a, b, plain = value(16), value(16), value(None)
    assert a == b
    assert a["blocking_priority_le1"] < plain["blocking_priority_le1"]
    assert a["weighted_value_ratio"] > plain["weighted_value_ratio"]


def test_heuristics_play_their_own_k_shortest_routes() -> None:
    assert make_policy("cspf-pe:4").env_overrides["candidate_pool"] is None
    assert make_policy("ksp-ff:16").env_overrides["candidate_pool"] is None


def test_edge_agent_offers_the_env_routes() -> None:
    from pcnalloc.edge.agent import EdgeAgent

    cfg = _cfg(16)
    env = PowerCommEnv(cfg, observation="compact")
    env.reset(seed=205)
    chose = EdgeAgent.candidates_for  # the agent's derivation, run on the env's state
    agent = EdgeAgent.__new__(EdgeAgent)
    agent.cfg, agent.catalog, agent._paths = cfg, env.catalog, None
    agent._n_cached = cfg.route_pool
    agent._pool = CandidatePool(env.catalog, cfg)
    agent._prio_rows = env._prio_table.tolist()
    for _ in range(200):
        mine = chose(agent, env.state, env.current_request, env.emergency_R)
        theirs = env.current_candidates
        assert np.array_equal(mine.links_KH, theirs.links_KH)
        assert np.array_equal(mine.backup_links_KB, theirs.backup_links_KB)
        m = env.action_masks()
        valid = np.flatnonzero(m[:-1])
        env.step(int(valid[-1]) if valid.size else env.reject_action)


def test_bound_covers_a_pool_policy() -> None:
    from pcnalloc.baselines.offline import window_gap

    pol = make_policy("cspf-pe:4")
    pol.env_overrides["candidate_pool"] = 16
    base = env_config(network={"case": "case30"}, traffic={"load": 1.5})
    gap = window_gap([pol], base, [100], 25, time_limit_s=5)
    (row,) = gap["policies"]
    assert row["certified"] and row["within_bound"]


def test_artifact_feature_config_names_the_pool() -> None:
    from pcnalloc.edge.artifact import (
        ArtifactMismatchError,
        check_feature_config,
        feature_config,
    )
    from pcnalloc.traffic.catalog import load_catalog

    plain, pooled = _cfg(None), _cfg(16)
    cat = load_catalog(plain.traffic.catalog, max_levels=plain.grant_levels)
    assert "candidate_pool" not in feature_config(plain, cat)  # older artifacts still match
    manifest = {"feature_config": feature_config(pooled, cat)}
    assert manifest["feature_config"]["candidate_pool"] == 16
    check_feature_config(manifest, pooled, cat)
    with pytest.raises(ArtifactMismatchError, match="candidate_pool"):
        check_feature_config(manifest, plain, cat)
