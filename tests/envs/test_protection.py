"""Fiber cuts: 1+1 protected flows survive on their backup; unprotected flows are restored."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pcnalloc.envs import PowerCommEnv
from pcnalloc.envs.state import Flow
from pcnalloc.traffic.generator import KIND_RESTORATION


@pytest.fixture
def env(tiny_graph_file: Path, protection_catalog: Path, make_config) -> PowerCommEnv:
    """Tiny network, no random faults or cuts, half the requests 1+1 teleprotection."""
    cfg = make_config(
        tiny_graph_file,
        events="calm",
        traffic={
            "catalog": str(protection_catalog),
            "warm_start": False,
            "events": {"repair_minutes": 1e6},  # cut links stay down for the whole test
        },
    )
    e = PowerCommEnv(cfg, observation="compact")
    e.reset(seed=0)
    return e


def _admit_next(env: PowerCommEnv, cls_name: str) -> Flow:
    """Reject requests until one of ``cls_name`` arrives, accept it on its first valid action."""
    c = env.catalog.index(cls_name)
    for _ in range(200):
        if env.current_request.cls == c and env.current_evaluation.any_valid:
            a = int(np.flatnonzero(env.current_evaluation.mask_A[:-1])[0])
            before = set(env.state.flows)
            info = env.step(a)[4]
            assert info["outcome"] == "accepted"
            (new,) = set(env.state.flows) - before
            return env.state.flows[new]
        env.step(env.reject_action)
    raise AssertionError(f"no {cls_name} request in 200 steps")


def _next_requests(env: PowerCommEnv, n: int) -> list:
    seen = []
    for _ in range(n):
        seen.append(env.current_request)
        env.step(env.reject_action)
    return seen


def test_protected_flow_survives_a_cut_of_its_primary(env: PowerCommEnv) -> None:
    flow = _admit_next(env, "teleprotection")
    assert flow.backup_links.size > 0
    assert not set(flow.links.tolist()) & set(flow.backup_links.tolist())
    link = int(flow.links[0])
    on_link = env.state.flows_on(link)
    n_protected = sum(f.backup_links.size > 0 for f in on_link)
    n_plain = len(on_link) - n_protected
    before = dict(env.counters)

    env._cut(link, env.now)

    assert env.state.failed_E1[link] and link in env.state.failed_key
    assert flow.id in env.state.flows, "1+1 flow dropped on a cut of its primary"
    assert env.counters["protection_switchovers"] == before["protection_switchovers"] + n_protected
    assert env.counters["interrupted"] == before["interrupted"] + n_plain
    assert env.counters["fiber_cuts"] == before["fiber_cuts"] + 1
    env.state.check_invariants()
    # It keeps its reservation and stays up while later requests are decided.
    _next_requests(env, 5)
    assert flow.id in env.state.flows


def test_protected_flow_dies_when_both_paths_are_cut(env: PowerCommEnv) -> None:
    flow = _admit_next(env, "teleprotection")
    env._cut(int(flow.links[0]), env.now)
    interrupted = env.counters["interrupted"]
    env._cut(int(flow.backup_links[0]), env.now)
    assert flow.id not in env.state.flows
    assert env.counters["interrupted"] >= interrupted + 1
    env.state.check_invariants()
    restored = [r for r in _next_requests(env, 6) if r.kind == KIND_RESTORATION]
    assert any(r.cls == flow.cls and (r.src, r.dst) == (flow.src, flow.dst) for r in restored), (
        "no restoration request for the interrupted 1+1 flow"
    )


def test_unprotected_flow_is_interrupted_and_restored(env: PowerCommEnv) -> None:
    flow = _admit_next(env, "scada")
    assert flow.backup_links.size == 0
    link = int(flow.links[-1])
    used_before = int(env.state.used_ES1[link, flow.slice])
    before = dict(env.counters)
    t_cut = env.now

    env._cut(link, t_cut)

    assert flow.id not in env.state.flows
    assert env.counters["interrupted"] >= before["interrupted"] + 1
    assert env.counters["protection_switchovers"] >= before["protection_switchovers"]
    assert env.state.used_ES1[link, flow.slice] <= used_before - flow.kbps
    env.state.check_invariants()
    restored = [r for r in _next_requests(env, 6) if r.kind == KIND_RESTORATION]
    match = [r for r in restored if r.cls == flow.cls and (r.src, r.dst) == (flow.src, flow.dst)]
    assert match, "no restoration request for the interrupted flow"
    assert match[0].holding_s == pytest.approx(flow.end_s - t_cut)


def test_candidates_avoid_a_cut_link(env: PowerCommEnv) -> None:
    flow = _admit_next(env, "scada")
    link = int(flow.links[0])
    env._cut(link, env.now)
    # The request on show was evaluated before the cut; decide it without routing.
    env.step(env.reject_action)
    for _ in range(30):
        assert env.state.failed_E1[link]
        ev = env.current_evaluation
        valid = np.flatnonzero(ev.mask_A[:-1])
        before = set(env.state.flows)
        a = int(valid[0]) if valid.size else env.reject_action
        env.step(a)
        for fid in set(env.state.flows) - before:
            f = env.state.flows[fid]
            assert link not in f.links.tolist() and link not in f.backup_links.tolist()


def test_protection_under_random_cuts(small_pool_graph_file: Path, make_config) -> None:
    """With frequent cuts, no active flow is left without a fully working route."""
    cfg = make_config(small_pool_graph_file, events="stress")
    env = PowerCommEnv(cfg, observation="compact")
    env.reset(seed=1)
    for _ in range(300):
        valid = np.flatnonzero(env.current_evaluation.mask_A[:-1])
        env.step(int(valid[0]) if valid.size else env.reject_action)
        failed = env.state.failed_E1
        for f in env.state.flows.values():
            primary_up = not failed[f.links].any()
            backup_up = f.backup_links.size > 0 and not failed[f.backup_links].any()
            assert primary_up or backup_up, f
    assert env.counters["fiber_cuts"] > 0 and env.counters["protection_switchovers"] > 0
