"""Accounting (DESIGN §4): restorations earn only their remaining share; the block penalty
needs a non-pre-empting valid action."""

from __future__ import annotations

import numpy as np
import pytest

from pcnalloc.envs import PowerCommEnv
from pcnalloc.traffic.generator import KIND_RESTORATION, Request


def test_value_fraction_of_a_restoration() -> None:
    fresh = Request(id=0, time_s=0.0, cls=0, src=0, dst=1, holding_s=100.0)
    rest = Request(
        id=1,
        time_s=0.0,
        cls=0,
        src=0,
        dst=1,
        holding_s=25.0,
        kind=KIND_RESTORATION,
        full_holding_s=100.0,
    )
    assert fresh.value_fraction == 1.0 and rest.value_fraction == pytest.approx(0.25)


def _env(make_config, graph, **over) -> PowerCommEnv:
    cfg = make_config(graph, events="calm", traffic={"warm_start": False}, **over)
    return PowerCommEnv(cfg, observation="compact")


def test_preempted_then_restored_flow_earns_only_its_remaining_share(
    make_config, small_pool_graph_file
) -> None:
    env = _env(make_config, small_pool_graph_file)
    env.reset(seed=0)
    # admit the request on show on its first valid action, then cut every link of its route
    obs = env._observe()
    a = int(np.flatnonzero(env.current_evaluation.mask_A[:-1])[0])
    _, _, _, _, info = env.step(a)
    fid = info["flow_id"]
    flow = env.state.flows[fid]
    full_value = info["earned_value"]
    assert full_value == pytest.approx(info["value"] * info["grant"])
    assert flow.full_holding_s == pytest.approx(info["holding_s"])
    # move time on to half of the flow's holding and interrupt it (a cut of its first link)
    env.now = info["time_s"] + 0.5 * info["holding_s"]
    env.cut_link(int(flow.links[0]))
    rest = [r for r in env._pending if r.kind == KIND_RESTORATION and r.cls == flow.cls]
    assert rest, "the interrupted flow comes back as a restoration"
    r = rest[0]
    assert r.full_holding_s == pytest.approx(flow.full_holding_s)
    assert r.value_fraction == pytest.approx(0.5, rel=1e-6)
    del obs


def test_block_penalty_only_when_a_plain_valid_action_existed(
    make_config, small_pool_graph_file
) -> None:
    env = _env(make_config, small_pool_graph_file)
    env.reset(seed=1)
    pen = env.cfg.reward.block_penalty
    seen_plain = seen_pre_only = False
    for _ in range(400):
        ev = env.current_evaluation
        plain = bool((ev.mask_A[:-1] & ~ev.needs_preempt_A[:-1]).any())
        pre_only = bool(ev.mask_A[:-1].any()) and not plain
        _, reward, _, _, info = env.step(env.reject_action)
        assert info["plain_valid_existed"] == plain
        if plain:
            seen_plain = True
            assert reward == pytest.approx(-pen * info["offered_value"])
        else:
            seen_pre_only |= pre_only
            assert reward == 0.0
    assert seen_plain
    del seen_pre_only  # pre-emption-only states are rare on this graph; the rule is above
