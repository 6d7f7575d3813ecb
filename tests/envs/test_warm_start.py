"""The compiled warm start places exactly the flows the reference warm start places.

:meth:`PowerCommEnv._warm_start` draws every flow first and places them in one compiled
pass; :meth:`PowerCommEnv._warm_start_reference` evaluates and admits them one by one as
requests. From the same state and generator both must leave the same flow table (ids,
routes, grants, values, ends), pools, departure events and generator state — on congested
pools, with 1+1 classes, failed links, low site trust and an open emergency (which raises
setup priorities).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import pcnalloc.envs.power_comm as pc
from pcnalloc.envs import PowerCommEnv


def _prepared(env: PowerCommEnv, seed: int, case: dict[str, Any]) -> PowerCommEnv:
    """``env`` as reset leaves it just before the warm start, plus the case's changes."""
    env.reset(seed=seed)
    env.np_random = np.random.default_rng(seed)
    env.state.reset()
    env._events, env._seq, env._flow_id = [], 0, -1
    env.emergency_R[:] = 0
    env.now = env.cfg.traffic.start_hour * 3600.0
    rng = np.random.default_rng(seed + 1000)
    if case.get("trust"):
        env.state.trust_N1[:-1] = rng.uniform(0.3, 1.0, size=env.net.n_sites)
    for e in case.get("failed", ()):
        env.state.set_failed(e, True)
    if case.get("emergency"):
        env.emergency_R[0] = 1
    return env


def _snapshot(env: PowerCommEnv) -> dict[str, Any]:
    st = env.state
    flows = [
        (
            f.id,
            f.cls,
            f.slice,
            f.priority,
            f.kbps,
            f.links.tolist(),
            f.backup_links.tolist(),
            f.end_s,
            f.src,
            f.dst,
            f.value,
            f.counted,
            f.full_holding_s,
        )
        for f in (st.flows[i] for i in sorted(st.flows))
    ]
    return {
        "flows": flows,
        "used_ESP": st.used_ESP1.tolist(),
        "used_ES": st.used_ES1.tolist(),
        "events": sorted(env._events, key=lambda x: x[1]),
        "seq": env._seq,
        "flow_id": env._flow_id,
        "rng": env.np_random.bit_generator.state,
        "on_link": [sorted(x) for x in st.on_link],
    }


def _both(env_a: PowerCommEnv, env_b: PowerCommEnv, seed: int, case: dict) -> tuple:
    a = _prepared(env_a, seed, case)
    a._warm_start()
    b = _prepared(env_b, seed, case)
    b._warm_start_reference()
    a.state.check_invariants()
    return _snapshot(a), _snapshot(b)


CASES = {
    "plain": {},
    "trust+failed+emergency": {"trust": True, "failed": (0, 4), "emergency": True},
}


@pytest.fixture
def congested(make_config, congested_graph_file, protection_catalog):
    def make(**over: Any) -> PowerCommEnv:
        cfg = make_config(
            congested_graph_file,
            traffic={"load": 2.5, "catalog": str(protection_catalog)},
            **over,
        )
        return PowerCommEnv(cfg, observation="compact")

    return make


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_congested_protected_equals_reference(congested, name: str, seed: int) -> None:
    over = {"trust_threshold": 0.7} if CASES[name].get("trust") else {}
    fast, ref = _both(congested(**over), congested(**over), seed, CASES[name])
    assert fast == ref
    assert len(fast["flows"]) > 10
    if name == "plain" and seed == 0:
        assert any(f[6] for f in fast["flows"]), "no 1+1 flow was placed: nothing tested"


def test_case30_equals_reference(make_config, case_network) -> None:
    cfg = make_config("case30", traffic={"load": 1.5})
    net = case_network("case30")
    envs = [PowerCommEnv(cfg, observation="compact", network=net) for _ in range(2)]
    fast, ref = _both(*envs, 5, {"trust": True, "failed": (3,)})
    assert len(fast["flows"]) > 1000
    assert fast == ref


def test_a_changed_placement_is_caught(congested, monkeypatch) -> None:
    """Planted fault: the compiled pass skipping each set's first route is caught."""
    pack = pc._pack_sets

    def skip_first(*args: Any) -> tuple:
        present, *rest = pack(*args)
        present = present.copy()
        present[:, 0] = False
        return (present, *rest)

    monkeypatch.setattr(pc, "_pack_sets", skip_first)
    fast, ref = _both(congested(), congested(), 0, {})
    assert fast["flows"] != ref["flows"]


@pytest.mark.parametrize("over", [{"k_paths": 1, "grant_levels": 1}, {"k_paths": 8}])
def test_other_action_shapes_equal_reference(congested, over: dict) -> None:
    fast, ref = _both(congested(**over), congested(**over), 3, {"failed": (2,)})
    assert fast == ref
    assert len(fast["flows"]) > 10
