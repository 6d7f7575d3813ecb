"""The independent safety checker: it flags every kind of planted violation, and none on
ordinary episodes.

Each planted fault bypasses the environment (``NetworkState.admit`` called directly, or a
hand-written admit without its capacity check, or a flow edited in place), so the mask and
the evaluation never saw it: only a checker that works from the raw state can catch it.
"""

from __future__ import annotations

import itertools
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import yaml

from pcnalloc.baselines import make_policy
from pcnalloc.config import SLICES
from pcnalloc.envs import PowerCommEnv
from pcnalloc.envs.state import Flow, NetworkState
from pcnalloc.evaluate import run_policy
from pcnalloc.evaluate.checker import VIOLATION_KINDS, SafetyChecker
from pcnalloc.evaluate.runner import env_config_for

RT, NRT, MGMT = (SLICES.index(s) for s in ("rt", "nrt", "mgmt"))


@pytest.fixture(scope="module")
def tiny_cfg(small_pool_graph_file, make_config):
    return make_config(
        small_pool_graph_file, events="calm", traffic={"load": 0.5, "warm_start": False}
    )


def _fresh(cfg, seed: int = 0) -> tuple[PowerCommEnv, SafetyChecker]:
    env = PowerCommEnv(cfg, observation="compact")
    env.reset(seed=seed)
    chk = SafetyChecker(env)
    assert chk.report.total == 0, chk.summary()["examples"]
    return env, chk


def _site(env: PowerCommEnv, name: str) -> int:
    return env.net.site_names.index(name)


def _route(env: PowerCommEnv, *names: str) -> np.ndarray:
    """Link indices of the walk through the named sites."""
    g, ids = env.net.graph, [_site(env, n) for n in names]
    return np.array([g.edges[a, b]["link"] for a, b in itertools.pairwise(ids)], dtype=np.int64)


def _cls(env: PowerCommEnv, name: str) -> int:
    return env.catalog.names.index(name)


def _admit(env: PowerCommEnv, cls: str, path: tuple[str, ...], **over) -> Flow:
    """``NetworkState.admit`` called directly (no mask, no evaluation), class defaults."""
    cat, c = env.catalog, _cls(env, cls)
    args = {
        "cls": c,
        "slice_": int(cat.slice_C[c]),
        "priority": int(cat.priority_C[c]),
        "kbps": int(cat.bandwidth_kbps_C[c]),
        "links": _route(env, *path),
        "backup_links": np.zeros(0, dtype=np.int64),
        "end_s": env.now + 3600.0,
        "src": _site(env, path[0]),
        "dst": _site(env, path[-1]),
        "value": 1.0,
        "counted": True,
    }
    args.update(over)
    return env.state.admit(**args)


def _raw_admit(st: NetworkState, f: Flow) -> None:
    """What ``NetworkState.admit`` does, minus its capacity and cut-link check."""
    route = np.concatenate([f.links, f.backup_links])
    np.add.at(st.used_ES1[:, f.slice], route, f.kbps)
    np.add.at(st.used_ESP1[:, f.slice, f.priority], route, f.kbps)
    st.flows[f.id] = f
    for e in route.tolist():
        st.on_link[e].add(f.id)
    st._next_id = f.id + 1


def _only(chk: SafetyChecker, kind: str, n: int | None = None, also: tuple = ()) -> None:
    """``kind`` was flagged (``n`` times if given) and nothing else but ``also``."""
    by = chk.summary()["executed_violations_by_kind"]
    assert by[kind] >= 1 if n is None else by[kind] == n, by
    others = {k: v for k, v in by.items() if v and k != kind and k not in also}
    assert not others, (by, chk.summary()["examples"])


def test_clean_bypass_admission_is_not_flagged(tiny_cfg) -> None:
    env, chk = _fresh(tiny_cfg)
    _admit(env, "scada", ("B", "A"))
    _admit(env, "metering", ("C", "D"), kbps=250)  # its 0.5 level
    assert chk.after_step() == 0 and chk.report.checked_admissions == 2


def test_over_commit(tiny_cfg) -> None:
    env, chk = _fresh(tiny_cfg)
    st, c = env.state, _cls(env, "office")
    e = int(_route(env, "A", "B")[0])
    kb = int(env.catalog.bandwidth_kbps_C[c])
    n = int((st.cap_ES1[e, MGMT] - st.used_ES1[e, MGMT]) // kb) + 1
    for _ in range(n):  # every flow is a valid full-rate office flow; together they don't fit
        f = Flow(
            st._next_id, c, MGMT, 6, kb, np.array([e]), np.zeros(0, np.int64),
            env.now + 60.0, _site(env, "A"), _site(env, "B"), 1.0, True,
        )  # fmt: skip
        _raw_admit(st, f)
    chk.after_step()
    _only(chk, "capacity", 1)
    assert chk.summary()["examples"][0]["link"] == e
    chk.after_step()  # the pool stays over: one incident, not one per step
    _only(chk, "capacity", 1)


def test_zone_leak(tiny_cfg) -> None:
    env, chk = _fresh(tiny_cfg)
    _admit(env, "scada", ("A", "B"), slice_=MGMT)  # Zone I flow in the management pool
    chk.after_step()
    _only(chk, "zone", 1)


def test_latency_breach(tmp_path: Path, small_pool_graph_file, make_config) -> None:
    raw = yaml.safe_load((resources.files("pcnalloc") / "data" / "services.yaml").read_text())
    raw["classes"]["scada"]["max_latency_ms"] = 0.5
    cat = tmp_path / "tight.yaml"
    cat.write_text(yaml.safe_dump(raw))
    cfg = make_config(
        small_pool_graph_file,
        events="calm",
        traffic={"load": 0.5, "catalog": str(cat), "warm_start": False},
    )
    env, chk = _fresh(cfg)
    # A-D direct: 80 km → 0.4 ms + 0.05 ms switching, within 0.5 ms on an idle pool.
    _admit(env, "scada", ("A", "D"))
    assert chk.after_step() == 0
    assert next(iter(chk.last_latency_ms.values())) == pytest.approx(0.45)
    # A-B-C-D: 125 km → 0.625 ms + 3 × 0.05 ms: over the bound.
    _admit(env, "scada", ("A", "B", "C", "D"))
    chk.after_step()
    _only(chk, "latency", 1)
    assert next(iter(chk.last_latency_ms.values())) == pytest.approx(0.775, abs=1e-3)


def test_latency_counts_queueing_at_admission(tmp_path: Path, tiny_graph_file, make_config):
    """The same direct path passes on an idle pool and fails once its pool is nearly full."""
    raw = yaml.safe_load((resources.files("pcnalloc") / "data" / "services.yaml").read_text())
    raw["classes"]["scada"]["max_latency_ms"] = 0.6
    cat = tmp_path / "tight.yaml"
    cat.write_text(yaml.safe_dump(raw))
    cfg = make_config(
        tiny_graph_file,
        events="calm",
        traffic={"load": 0.5, "catalog": str(cat), "warm_start": False},
    )
    env, chk = _fresh(cfg)
    e = int(_route(env, "A", "D")[0])
    _admit(env, "scada", ("A", "D"))  # 0.45 ms + q(0) = 0.45 ms
    assert chk.after_step() == 0
    st = env.state
    fill = int(0.9 * (st.cap_ES1[e, RT] - st.used_ES1[e, RT]))
    _admit(env, "pmu_wams", ("A", "D"), kbps=fill)  # not a pmu grant level: a grant fault
    chk.after_step()
    assert chk.summary()["executed_violations_by_kind"]["latency"] == 0
    _admit(env, "scada", ("A", "D"))  # now 0.45 ms + 0.1·0.9/0.1 ms ≈ 1.35 ms > 0.6 ms
    chk.after_step()
    by = chk.summary()["executed_violations_by_kind"]
    assert by["latency"] == 1 and by["grant"] == 1, by
    assert next(iter(chk.last_latency_ms.values())) == pytest.approx(1.351, abs=0.005)


def test_distrusted_site_at_admission(tiny_cfg) -> None:
    env, chk = _fresh(tiny_cfg)
    env.state.trust_N1[_site(env, "B")] = 0.1
    chk.before_step()  # the state changed outside a step: retake the admission snapshot
    _admit(env, "ami_iot", ("A", "B", "C"))  # Zone III: the trust rule does not apply
    assert chk.after_step() == 0
    _admit(env, "scada", ("A", "B", "C"))  # Zone I through B (trust 0.1 < 0.5)
    chk.after_step()
    _only(chk, "trust", 1)
    assert chk.summary()["examples"][0]["sites"] == [_site(env, "B")]


def test_trust_is_judged_at_admission(tiny_cfg) -> None:
    env, chk = _fresh(tiny_cfg)
    _admit(env, "scada", ("A", "B", "C"))
    env.state.trust_N1[_site(env, "B")] = 0.1  # falls after the admission
    assert chk.after_step() == 0


def test_non_disjoint_and_missing_1plus1(tiny_cfg) -> None:
    env, chk = _fresh(tiny_cfg)
    _admit(env, "teleprotection", ("A", "D", "C"), backup_links=_route(env, "A", "F", "C"))
    assert chk.after_step() == 0  # a proper disjoint pair
    _admit(env, "teleprotection", ("A", "D", "C"))
    chk.after_step()
    _only(chk, "protection", 1)  # no backup at all
    _admit(
        env, "teleprotection", ("B", "A", "D"), backup_links=_route(env, "B", "A", "F", "E", "D")
    )
    chk.after_step()
    # The pair shares link B-A. Both copies cross it, so the flows hold 2 × 2.048 Mb/s
    # there, while NetworkState.admit's fancy-index += counts a repeated link once: the
    # checker reports that as counter drift too.
    _only(chk, "protection", 2, also=("counter_drift",))
    (ex,) = [x for x in chk.summary()["examples"] if x["kind"] == "protection" and x["shared"]]
    assert ex["shared"] == _route(env, "B", "A").tolist()


def test_grant_below_minimum(tiny_cfg) -> None:
    env, chk = _fresh(tiny_cfg)
    _admit(env, "metering", ("C", "D"), kbps=100)  # levels 1.0, 0.5 of 500 kb/s
    chk.after_step()
    _only(chk, "grant", 1)


def test_route_not_joining_its_ends_or_over_a_cut(tiny_cfg) -> None:
    env, chk = _fresh(tiny_cfg)
    _admit(env, "scada", ("A", "B"), links=_route(env, "C", "D"))
    chk.after_step()
    _only(chk, "route", 1)
    st = env.state
    e = int(_route(env, "E", "F")[0])
    st.set_failed(e, True)
    chk.before_step()
    c = _cls(env, "office")
    f = Flow(
        st._next_id, c, MGMT, 6, 2500, np.array([e]), np.zeros(0, np.int64), env.now + 60.0,
        _site(env, "E"), _site(env, "F"), 1.0, True,
    )  # fmt: skip
    _raw_admit(st, f)  # admit() itself refuses a cut link
    chk.after_step()
    _only(chk, "route", 2)


def test_counter_drift_and_in_place_edit(tiny_cfg) -> None:
    env, chk = _fresh(tiny_cfg)
    f = _admit(env, "scada", ("A", "B"))
    assert chk.after_step() == 0
    f.kbps = 9999  # edited in place: the incremental sums cannot see it ...
    assert chk.after_step() == 0
    chk.finish()  # ... the full rebuild from the flow objects does
    _only(chk, "counter_drift")
    env2, chk2 = _fresh(tiny_cfg)
    gone = _admit(env2, "scada", ("A", "B"))
    assert chk2.after_step() == 0
    del env2.state.flows[gone.id]  # a flow vanishes but its capacity stays counted
    chk2.after_step()
    _only(chk2, "counter_drift")


def test_run_policy_counts_what_the_checker_finds(tiny_cfg) -> None:
    """End to end: a policy that sneaks a zone leak into the state shows up in the metrics."""

    class Leaky:
        name, observation, env_overrides, model_bytes = "leaky", "compact", {}, 0

        def __init__(self) -> None:
            self.inner = make_policy("ksp-ff")
            self.n = 0

        def bind_env(self, env: PowerCommEnv) -> None:
            self.env = env

        def reset(self, seed: int | None = None) -> None:
            self.inner.reset(seed)

        def act(self, obs):
            self.n += 1
            if self.n == 20:
                _admit(self.env, "scada", ("A", "B"), slice_=MGMT)
            return self.inner.act(obs)

    m = run_policy(Leaky(), tiny_cfg, seed=1, requests=40)["metrics"]
    assert m["executed_hard_violations"] == 1
    assert m["executed_violations_by_kind"]["zone"] == 1
    assert set(m["executed_violations_by_kind"]) == set(VIOLATION_KINDS)


@pytest.mark.parametrize("spec", ["ksp-ff", "cspf-pe"])
def test_zero_on_ordinary_case30_episodes(spec: str, case_network, make_config) -> None:
    """Seeded episodes with cuts, repairs, bursts and pre-emptions: nothing to flag, and the
    recomputed latency of every admission equals the env's own to float precision."""
    pol = make_policy(spec)
    base = make_config("case30", events="stress", traffic={"load": 1.5})
    cfg = env_config_for(pol, base, 250)
    env = PowerCommEnv(cfg, observation=pol.observation, network=case_network("case30"))
    pol.reset(3)
    obs, _ = env.reset(seed=3)
    chk = SafetyChecker(env, full_every=100)
    n_lat = 0
    for _ in range(250):
        obs, _, _, _, info = env.step(pol.act(obs))
        assert chk.after_step(info) == 0, chk.summary()["examples"]
        if info["outcome"] == "accepted" and chk.last_latency_ms:
            (lat,) = chk.last_latency_ms.values()
            assert lat == pytest.approx(info["latency_ms"], rel=1e-9, abs=1e-9)
            n_lat += 1
    chk.finish()
    s = chk.summary()
    assert s["executed_hard_violations"] == 0 and s["checked_admissions"] >= 100
    assert n_lat >= 100 and s["full_recomputes"] >= 3
    assert env.counters["fiber_cuts"] > 0
    if spec == "cspf-pe":
        assert env.counters["preempted"] > 0
