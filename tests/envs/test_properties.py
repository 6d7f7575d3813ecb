"""Property tests: after any action sequence (valid, masked, reject, out-of-mask), under grid
faults, bursts, fiber cuts and repairs, the environment keeps its invariants.

* every pool stays within [0, capacity]; pools agree with the flow table (``check_invariants``);
* no flow leaks across slices: each slice's usage is exactly the flows of its classes;
* every request ends in exactly one outcome, and masked actions are refused without admission;
* every admitted flow is released at most once, and at the end active + released == admitted;
* the action mask agrees with an independent recomputation of the hard rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pcnalloc.envs import OUTCOMES, PowerCommEnv
from pcnalloc.envs.state import Flow

OPS = st.lists(
    st.tuples(st.sampled_from(("valid", "masked", "reject", "any")), st.integers(0, 2**20)),
    min_size=1,
    max_size=50,
)
"""Decisions: a valid action, a masked one, reject, or any index; the integer picks which."""

SCENARIOS = (
    {"k_paths": 4, "grant_levels": 3, "preemption": True, "warm_start": True},
    {"k_paths": 4, "grant_levels": 3, "preemption": True, "warm_start": False},
    {"k_paths": 1, "grant_levels": 1, "preemption": False, "warm_start": True},
    {"k_paths": 2, "grant_levels": 2, "preemption": True, "warm_start": True},
    {"k_paths": 3, "grant_levels": 3, "preemption": False, "warm_start": False},
)


@dataclass
class Tracker:
    """Records admissions and releases made through ``env.state``."""

    admitted: dict[int, Flow] = field(default_factory=dict)
    released: list[int] = field(default_factory=list)
    admits_in_step: int = 0

    def clear(self) -> None:
        self.admitted.clear()
        self.released.clear()
        self.admits_in_step = 0


def _instrument(env: PowerCommEnv) -> Tracker:
    tr = Tracker()
    admit, release = env.state.admit, env.state.release

    def tracked_admit(**kw: Any) -> Flow:
        flow = admit(**kw)
        assert flow.id not in tr.admitted, f"flow id {flow.id} reused"
        tr.admitted[flow.id] = flow
        tr.admits_in_step += 1
        return flow

    def tracked_release(flow_id: int) -> Flow | None:
        flow = release(flow_id)
        if flow is not None:
            assert flow_id in tr.admitted, f"released flow {flow_id} was never admitted"
            assert flow_id not in tr.released, f"flow {flow_id} released twice"
            tr.released.append(flow_id)
        return flow

    env.state.admit = tracked_admit  # type: ignore[method-assign]
    env.state.release = tracked_release  # type: ignore[method-assign]
    return tr


_ENVS: dict[tuple[str, int], tuple[PowerCommEnv, Tracker]] = {}


def _env(graph: Path, make_config, scenario: int) -> tuple[PowerCommEnv, Tracker]:
    """One instrumented env per (network, scenario), reused across examples (reset per run)."""
    key = (str(graph), scenario)
    if key not in _ENVS:
        sc = dict(SCENARIOS[scenario])
        warm = sc.pop("warm_start")
        cfg = make_config(graph, events="stress", traffic={"load": 2.0, "warm_start": warm}, **sc)
        env = PowerCommEnv(cfg, observation="compact")
        _ENVS[key] = (env, _instrument(env))
    return _ENVS[key]


def _oracle_mask(env: PowerCommEnv) -> tuple[np.ndarray, np.ndarray]:
    """Hard rules recomputed from the state and the request's candidate routes (numpy only).

    Returns:
        (valid, needs_preemption), each shape (K·L,).
    """
    st_, cat, cfg = env.state, env.catalog, env.cfg
    req = env.current_request
    c = req.cls
    K, L = cfg.k_paths, cfg.grant_levels
    E = env.net.n_links
    protected = bool(cat.protected_C[c])
    cs = env.paths.candidates(
        req.src, req.dst, K, protected=protected,
        failed_E1=st_.failed_E1, failed_key=st_.failed_key,
    )  # fmt: skip
    s, prio = int(cat.slice_C[c]), _priority(env)
    cap = st_.cap_ES1[:E, s].astype(float)
    used = st_.used_ES1[:E, s]
    free = cap - used
    lower = st_.used_ESP1[:E, s, prio + 1 :].sum(axis=1) if cfg.preemption else 0 * used
    u = np.minimum(used / cap, cfg.network.util_cap)
    q = cfg.network.queue_q0_ms * u / (1 - u)
    valid = np.zeros(K * L, dtype=bool)
    needs = np.zeros(K * L, dtype=bool)
    for k in range(K):
        if not cs.present_K[k]:
            continue
        prim = cs.links_KH[k][cs.links_KH[k] < E]
        back = cs.backup_links_KB[k][cs.backup_links_KB[k] < E] if cs.has_backup_K[k] else prim[:0]
        route = np.concatenate([prim, back])
        latency = cs.prop_ms_K[k] + q[prim].sum()
        if cs.has_backup_K[k]:
            latency = max(latency, cs.backup_prop_ms_K[k] + q[back].sum())
        ok = not st_.failed_E1[route].any() and latency <= cat.max_latency_ms_C[c]
        ok &= not (protected and not cs.has_backup_K[k])
        resid, rpre = free[route].min(), (free + lower)[route].min()
        for level in range(L):
            g = cat.grant_CL[c, level]
            kb = round(cat.bandwidth_kbps_C[c] * g)
            valid[k * L + level] = ok and g > 0 and rpre >= kb
            needs[k * L + level] = resid < kb <= rpre
    return valid, needs


def _priority(env: PowerCommEnv) -> int:
    """Setup priority of the current request (emergency override when the env has one)."""
    prio = getattr(env, "current_priority", None)
    return int(env.catalog.priority_C[env.current_request.cls] if prio is None else prio)


def _check_slices(env: PowerCommEnv) -> None:
    """Each slice's reserved kb/s per link equals the sum over flows of that slice's classes."""
    st_, cat = env.state, env.catalog
    links: list[int] = []
    rows: list[tuple[int, int, int]] = []  # (class slice, hold priority, kb/s) per route link
    for f in st_.flows.values():
        assert f.slice == cat.slice_C[f.cls], f"flow {f.id} of class {f.cls} in slice {f.slice}"
        route = f.links.tolist() + f.backup_links.tolist()
        assert len(set(route)) == len(route), "route reserves a link twice"
        links += route
        rows += [(int(cat.slice_C[f.cls]), f.priority, f.kbps)] * len(route)
    expect = np.zeros_like(st_.used_ESP1)
    if links:
        s, p, kb = np.array(rows).T
        np.add.at(expect, (np.array(links), s, p), kb)
    np.testing.assert_array_equal(st_.used_ESP1, expect)


def _pick(env: PowerCommEnv, op: str, n: int) -> int:
    mask = env.current_evaluation.mask_A
    if op == "valid" and mask[:-1].any():
        v = np.flatnonzero(mask[:-1])
        return int(v[n % v.size])
    if op == "masked" and (mask == 0).any():
        m = np.flatnonzero(mask == 0)
        return int(m[n % m.size])
    if op == "any":
        return n % int(env.action_space.n)
    return env.reject_action


def _play(env: PowerCommEnv, tr: Tracker, seed: int, ops: list[tuple[str, int]]) -> None:
    tr.clear()
    env.reset(seed=seed)
    warm = set(tr.admitted)
    assert warm == set(env.state.flows) | set(tr.released)  # warm start only
    env.state.check_invariants()
    outcomes: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
    decided: set[int] = set()
    refused0 = env.counters["refused"]
    for op, n in ops:
        req, ev = env.current_request, env.current_evaluation
        assert req.id not in decided, "a request was decided twice"
        decided.add(req.id)
        valid, needs = _oracle_mask(env)
        np.testing.assert_array_equal(ev.mask_A[:-1].astype(bool), valid)
        np.testing.assert_array_equal(ev.needs_preempt_A[:-1] & valid, needs & valid)
        assert ev.mask_A[-1] == 1
        a = _pick(env, op, n)
        prio = _priority(env)
        tr.admits_in_step = 0
        _, reward, terminated, _, info = env.step(a)
        assert not terminated and np.isfinite(reward)
        outcome = info["outcome"]
        outcomes[outcome] += 1
        if a == env.reject_action:
            assert outcome == ("rejected" if valid.any() else "blocked")
        elif valid[a]:
            assert outcome == "accepted"
            assert info["latency_ms"] <= info["bound_ms"] + 1e-9
        else:
            assert outcome == "refused" and info["violated"]
        assert tr.admits_in_step == (1 if outcome == "accepted" else 0)
        if outcome == "accepted":
            flow = tr.admitted[max(tr.admitted)]
            assert (flow.cls, flow.src, flow.dst) == (req.cls, req.src, req.dst)
            assert flow.priority == prio and flow.kbps == info["kbps"]
        env.state.check_invariants()
        _check_slices(env)
        for f in env.state.flows.values():
            assert f.end_s >= env.now - 1e-6, "a flow outlived its holding time"
    # Exactly one outcome per decided request.
    assert sum(outcomes.values()) == len(ops) == len(decided)
    assert env.counters["refused"] - refused0 == outcomes["refused"]
    # Every admitted flow is either still active or was released exactly once.
    active, released = set(env.state.flows), set(tr.released)
    assert len(released) == len(tr.released)
    assert not active & released
    assert active | released == set(tr.admitted)
    assert len(tr.admitted) - len(warm) == outcomes["accepted"]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(seed=st.integers(0, 2**31 - 1), scenario=st.integers(0, len(SCENARIOS) - 1), ops=OPS)
def test_invariants_on_tiny_network(congested_graph_file, make_config, seed, scenario, ops):
    env, tr = _env(congested_graph_file, make_config, scenario)
    _play(env, tr, seed, ops)


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(seed=st.integers(0, 2**31 - 1), ops=OPS)
def test_invariants_on_case14(case_network, make_config, seed, ops):
    key = ("case14", -1)
    if key not in _ENVS:
        cfg = make_config("case14", events="stress", traffic={"load": 3.0, "warm_start": False})
        env = PowerCommEnv(cfg, observation="compact", network=case_network("case14"))
        _ENVS[key] = (env, _instrument(env))
    env, tr = _ENVS[key]
    _play(env, tr, seed, ops)


def test_stress_run_exercises_every_event(congested_graph_file, make_config) -> None:
    """A long deterministic run of the same checks, so the events are surely exercised."""
    env, tr = _env(congested_graph_file, make_config, 0)
    rng = np.random.default_rng(0)
    kinds = ["valid", "valid", "masked", "reject", "any"]
    ops = [(str(rng.choice(kinds)), int(rng.integers(2**20))) for _ in range(300)]
    _play(env, tr, 123, ops)
    c = env.counters
    assert c["faults"] > 0 and c["fiber_cuts"] > 0 and c["interrupted"] > 0
    assert c["preempted"] > 0 and c["refused"] > 0
    assert tr.released, "no flow departed or was released"


@pytest.fixture(autouse=True, scope="module")
def _drop_envs():
    yield
    _ENVS.clear()
