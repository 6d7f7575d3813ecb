"""Seeded runner: one metrics schema, identical metrics for the same seed, timing kept apart."""

from __future__ import annotations

import json

import pytest

from pcnalloc.baselines import make_policy
from pcnalloc.envs import OUTCOMES
from pcnalloc.evaluate import METRIC_KEYS, run_policy


@pytest.fixture(scope="module")
def cfg(small_pool_graph_file, make_config):
    return make_config(small_pool_graph_file, events="stress", traffic={"load": 1.5})


@pytest.mark.parametrize("spec", ["ksp-ff", "random"])
def test_same_seed_identical_metrics(cfg, spec: str) -> None:
    a = run_policy(make_policy(spec), cfg, seed=4, requests=300)
    b = run_policy(make_policy(spec), cfg, seed=4, requests=300)
    assert a["metrics"] == b["metrics"]
    assert json.dumps(a["metrics"], sort_keys=True) == json.dumps(b["metrics"], sort_keys=True)
    c = run_policy(make_policy(spec), cfg, seed=5, requests=300)
    assert c["metrics"] != a["metrics"]


def test_result_schema(cfg) -> None:
    r = run_policy(make_policy("ksp-ff"), cfg, seed=0, requests=300)
    assert set(r) >= {"policy", "case", "load", "seed", "requests", "metrics", "timing"}
    assert (r["policy"], r["load"], r["seed"], r["requests"]) == ("ksp-ff", 1.5, 0, 300)
    m = r["metrics"]
    assert set(METRIC_KEYS) <= set(m)
    assert m["requests"] == 300 and set(m["outcomes"]) == set(OUTCOMES)
    assert sum(m["outcomes"].values()) == 300  # exactly one outcome per request
    assert m["executed_hard_violations"] == 0 and m["intercepted"] == 0
    assert 0.0 <= m["weighted_value_ratio"] <= 1.0
    assert 0.0 <= m["blocking_probability"] <= 1.0
    assert m["blocking_probability"] == pytest.approx(1 - m["outcomes"]["accepted"] / 300, abs=1e-6)
    assert set(m["carried_utilisation_per_slice"]) == {"rt", "nrt", "mgmt"}
    assert 0.0 < m["max_link_utilisation"] <= 1.0
    assert m["p95_link_utilisation"] <= m["max_link_utilisation"] + 1e-9
    assert 0.0 < m["jain_fairness_link_utilisation"] <= 1.0
    assert m["fiber_cuts"] > 0 and m["faults"] > 0  # the stress preset was in force
    assert m["model_bytes"] == 0
    json.dumps(r)  # the whole result is JSON-serialisable
    # Timing is separate from the metrics and carries no metric keys.
    t = r["timing"]
    assert {"wall_s", "decisions_per_s"} <= set(t) and not set(t) & set(m)
    assert t["decisions_per_s"] > 0


def test_runner_applies_policy_overrides(cfg) -> None:
    r = run_policy(make_policy("ksp-ff:8"), cfg, seed=0, requests=50)
    assert r["policy"] == "ksp-ff:8" and r["requests"] == 50
    r1 = run_policy(make_policy("sp-ff"), cfg, seed=0, requests=50)
    assert r1["metrics"]["requests"] == 50


def test_progress_callback_counts_every_request(cfg) -> None:
    seen: list[int] = []
    run_policy(make_policy("llp"), cfg, seed=0, requests=250, progress=seen.append)
    assert sum(seen) == 250


def test_guard_claim_is_reported_apart_from_the_checker(cfg) -> None:
    """A guard's own ``executed_violations`` is its claim; the metric is the checker's."""

    class Claiming:
        name, observation, env_overrides, model_bytes = "claiming", "compact", {}, 0

        def __init__(self) -> None:
            self.inner = make_policy("ksp-ff")

        def reset(self, seed: int | None = None) -> None:
            self.inner.reset(seed)

        def act(self, obs):
            return self.inner.act(obs)

        def summary(self) -> dict:
            return {"intercepted": 2, "executed_violations": 7}

    m = run_policy(Claiming(), cfg, seed=0, requests=60)["metrics"]
    assert m["guard"]["executed_violations"] == 7
    assert m["executed_hard_violations"] == 0 and m["intercepted"] == 2
    assert sum(m["executed_violations_by_kind"].values()) == 0
    assert m["safety_checks"]["checked_admissions"] > 0
