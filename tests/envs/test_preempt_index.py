"""The indexed pre-emption plan equals the reference plan (same flow ids, same order).

Seeded CSPF-PE episodes under stress events (faults, bursts, cuts) on case30 and case118:
every plan the environment asks for is computed both ways, and at every step random
queries (random links, slice, setup priority and size, feasible or not) are compared too.
The index is checked against the flow table along the way (``check_invariants``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from pcnalloc.baselines import make_policy
from pcnalloc.envs import PowerCommEnv
from pcnalloc.envs.state import N_PRIORITIES, NetworkState, _preemption_plan_reference


def _random_query(st: NetworkState, rng: np.random.Generator) -> tuple:
    """Links where pools are busy, a slice, a setup priority and a size around the deficit."""
    E, S = st.cap_ES1.shape[0] - 1, st.cap_ES1.shape[1]
    s = int(rng.integers(S))
    busy = np.flatnonzero(st.used_ES1[:E, s] > 0)
    pool = busy if busy.size else np.arange(E)
    links = rng.choice(pool, size=int(rng.integers(1, min(6, pool.size) + 1)), replace=False)
    free = int((st.cap_ES1[links, s] - st.used_ES1[links, s]).min())
    kbps = max(1, free + int(rng.integers(-500, 20_000)))
    return links.astype(np.int64), s, int(rng.integers(-1, N_PRIORITIES)), kbps


def _episode(
    env: PowerCommEnv, seed: int, steps: int, queries: int, check_every: int
) -> dict[str, int]:
    """Run CSPF-PE, compare the env's own plans and random ones; return what was compared."""
    st = env.state
    indexed = st.preemption_plan
    seen = {"env_plans": 0, "nonempty": 0, "none": 0, "multi": 0}

    def both(links: np.ndarray, slice_: int, priority: int, kbps: int) -> Any:
        plan = indexed(links, slice_, priority, kbps)
        assert plan == _preemption_plan_reference(st, links, slice_, priority, kbps)
        seen["env_plans"] += 1
        return plan

    st.preemption_plan = both  # type: ignore[method-assign]
    pol = make_policy("cspf-pe")
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    for t in range(steps):
        obs, *_ = env.step(pol.act(obs))
        if t % check_every == check_every - 1:
            st.check_invariants()
        for _ in range(queries):
            q = _random_query(st, rng)
            plan = indexed(*q)
            assert plan == _preemption_plan_reference(st, *q), q
            if plan is None:
                seen["none"] += 1
            elif plan:
                seen["nonempty"] += 1
                seen["multi"] += len(plan) > 1
    return seen


def _env(make_config: Callable, case_network: Callable, case: str) -> PowerCommEnv:
    pol = make_policy("cspf-pe")
    cfg = make_config(case, events="stress", traffic={"load": 1.5}, **pol.env_overrides)
    return PowerCommEnv(cfg, observation="compact", network=case_network(case))


@pytest.mark.parametrize("seed", [0, 1])
def test_indexed_plan_equals_reference_case30(make_config, case_network, seed: int) -> None:
    env = _env(make_config, case_network, "case30")
    seen = _episode(env, seed, steps=400, queries=3, check_every=100)
    assert seen["env_plans"] > 0, "the episode never pre-empted: the comparison saw nothing"
    assert seen["nonempty"] > 0 and seen["none"] > 0 and seen["multi"] > 0, seen


@pytest.mark.slow
def test_indexed_plan_equals_reference_case118(make_config, case_network) -> None:
    env = _env(make_config, case_network, "case118")
    seen = _episode(env, 0, steps=300, queries=3, check_every=300)
    assert seen["env_plans"] > 0 and seen["nonempty"] > 0 and seen["multi"] > 0, seen


def _loaded_state(make_config, case_network) -> NetworkState:
    env = _env(make_config, case_network, "case30")
    pol = make_policy("cspf-pe")
    obs, _ = env.reset(seed=3)
    for _ in range(100):
        obs, *_ = env.step(pol.act(obs))
    return env.state


def test_planted_index_fault_is_caught(make_config, case_network) -> None:
    """A flow dropped from the index (but still holding capacity) is seen by both checks."""
    st = _loaded_state(make_config, case_network)
    st.check_invariants()
    # the lowest-priority, largest flow on the busiest link: the first a plan would take
    e = int(np.argmax([len(ids) for ids in st.on_link[:-1]]))
    f = min((st.flows[i] for i in st.on_link[e]), key=lambda f: (-f.priority, -f.kbps, f.id))
    s = f.slice
    free = int(st.cap_ES1[e, s] - st.used_ES1[e, s])
    q = (np.array([e]), s, -1, free + 1)
    assert st.preemption_plan(*q) == _preemption_plan_reference(st, *q) == [f.id]
    del st.by_link_sp[e][(s, f.priority)][f.kbps][f.id]
    with pytest.raises(AssertionError, match="pre-emption index"):
        st.check_invariants()
    assert st.preemption_plan(*q) != _preemption_plan_reference(st, *q)


def test_planted_order_fault_is_caught(make_config, case_network) -> None:
    """A bucket whose ids are out of admission order fails the invariant check."""
    st = _loaded_state(make_config, case_network)
    for by_sp in st.by_link_sp:
        for by_kb in by_sp.values():
            for kb, ids in by_kb.items():
                if len(ids) > 1:
                    by_kb[kb] = dict.fromkeys(reversed(list(ids)))
                    with pytest.raises(AssertionError, match="out of id order"):
                        st.check_invariants()
                    return
    pytest.fail("no bucket with two flows to plant the fault in")
