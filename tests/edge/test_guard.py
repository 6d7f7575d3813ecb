"""Interception: the executed action never breaks a critical/hard rule."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pcnalloc.baselines import make_policy
from pcnalloc.envs import PowerCommEnv
from pcnalloc.rules.engine import RequestContext
from pcnalloc.rules.guard import Guard, GuardedPolicy, preference_scores


@st.composite
def random_request(draw, n_classes: int):
    K = draw(st.integers(1, 5))
    L = draw(st.integers(1, 3))
    A = K * L + 1
    bools = st.lists(st.booleans(), min_size=A, max_size=A).map(np.array)
    floats = lambda lo, hi: st.lists(  # noqa: E731
        st.floats(lo, hi, allow_nan=False), min_size=A, max_size=A
    ).map(np.array)
    grant = draw(st.lists(st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]), min_size=A, max_size=A))
    fits = draw(bools)
    fits_pre = fits | draw(bools)
    fields = {
        "is_reject": np.arange(A) == A - 1,
        "present": draw(bools),
        "grant": np.array(grant),
        "kbps": np.zeros(A, np.int64),
        "latency_ms": draw(floats(0.0, 3000.0)),
        "latency_over_bound": draw(floats(0.0, 2.0)),
        "residual_kbps": np.zeros(A, np.int64),
        "residual_with_preemption_kbps": np.zeros(A, np.int64),
        "fits": fits,
        "fits_with_preemption": fits_pre,
        "needs_preemption": fits_pre & ~fits,
        "has_backup": draw(bools),
        "min_trust": draw(floats(0.0, 1.0)),
        "util_after": draw(floats(0.0, 1.5)),
        "hops": np.ones(A, np.int64),
    }
    scores = np.array(
        draw(
            st.lists(st.one_of(st.floats(-100, 100), st.just(float("nan"))), min_size=A, max_size=A)
        )
    )
    ctx = RequestContext(
        draw(st.integers(0, n_classes - 1)), draw(st.integers(0, 3)), draw(st.booleans())
    )
    return fields, scores, draw(st.integers(0, A - 1)), ctx


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_executed_action_never_violates_hard_rules(engine, catalog, data) -> None:
    fields, scores, proposal, ctx = data.draw(random_request(catalog.n_classes))
    guard = Guard(engine)
    d = guard.decide(proposal, scores, fields, ctx)
    v = engine.check(fields, ctx)
    assert not v.forbidden_A[d.action], (d, v.explain(d.action))
    assert d.intercepted == bool(v.forbidden_A[proposal])
    if not d.intercepted:
        assert d.action == proposal and d.rule_ids == ()
    else:
        assert set(d.rule_ids) == set(v.violated(proposal)) and d.rule_ids
    if d.priority <= guard.critical_priority and d.intercepted:
        if (~v.forbidden_A[:-1]).any():
            assert d.action != len(v.forbidden_A) - 1, "a critical service was rejected"


def test_substitutes_best_allowed_by_score(engine, catalog, make_fields) -> None:
    f = make_fields()
    f["present"] = f["present"].copy()
    f["present"][0] = False
    scores = np.zeros(13)
    scores[[0, 3, 6]] = [9.0, 1.0, 5.0]
    d = Guard(engine).decide(0, scores, f, RequestContext(catalog.index("office")))
    assert d.intercepted and d.action == 6 and d.rule_ids == ("route_present",)
    assert d.note == "substituted" and d.reasons[0][0] == "route_present"


def test_soft_rules_rerank_substitutes(engine, catalog, make_fields) -> None:
    f = make_fields()
    f["present"] = f["present"].copy()
    f["present"][0] = False
    f["needs_preemption"] = f["needs_preemption"].copy()
    f["needs_preemption"][6] = True  # soft_preemption weight 1.0
    scores = np.zeros(13)
    scores[[0, 3, 6]] = [9.0, 4.5, 5.0]
    d = Guard(engine).decide(0, scores, f, RequestContext(catalog.index("office")))
    assert d.action == 3  # 5.0 − 1.0 < 4.5
    # an allowed proposal is kept even if soft rules fire on it
    d = Guard(engine).decide(6, scores, f, RequestContext(catalog.index("office")))
    assert d.action == 6 and not d.intercepted and d.preempt
    d = Guard(engine, rerank_soft=True).decide(
        6, scores, f, RequestContext(catalog.index("office"))
    )
    assert d.action == 3 and not d.intercepted and d.note == "reranked"


def test_critical_service_preempts_before_rejecting(engine, catalog, make_fields) -> None:
    A = 13
    fits = np.zeros(A, bool)
    fits[-1] = True
    pre = np.zeros(A, bool)
    pre[[3, 6]] = True
    f = make_fields(fits=fits, fits_with_preemption=fits | pre, needs_preemption=pre)
    scores = -np.arange(A, dtype=float)
    scores[-1] = 100.0  # the policy would rather reject
    ctx = RequestContext(catalog.index("scada"))
    d = Guard(engine).decide(0, scores, f, ctx)
    assert d.action == 3 and d.preempt and d.note == "preemption"
    # a non-critical class follows its scores (here: reject)
    d = Guard(engine).decide(0, scores, f, RequestContext(catalog.index("office")))
    assert d.action == A - 1
    # teleprotection proposing reject is turned into the pre-emption
    d = Guard(engine).decide(A - 1, scores, f, RequestContext(catalog.index("teleprotection")))
    assert d.intercepted and d.rule_ids == ("no_reject_critical",) and d.action == 3
    # nothing admissible at all → reject
    f2 = make_fields(fits=fits, fits_with_preemption=fits, needs_preemption=np.zeros(A, bool))
    d = Guard(engine).decide(0, scores, f2, ctx)
    assert d.action == A - 1 and d.note == "rejected-no-admissible"


def test_preference_scores_follow_first_fit_order() -> None:
    pol = make_policy("ksp-ff")
    s = preference_scores(pol, {}, 13)
    assert np.argsort(-s)[:4].tolist() == [0, 3, 6, 9]  # every path at full grant first
    assert s[-1] == s.min()


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(seed=st.integers(0, 10_000), load=st.sampled_from([0.8, 1.5, 3.0]), pool=st.booleans())
def test_guarded_random_proposals_on_small_networks(
    engine, make_config, tiny_graph_file, small_pool_graph_file, seed, load, pool
) -> None:
    """Random small networks and states (stress events), random proposals: 0 executed
    violations and the env never refuses the guarded action."""
    graph = small_pool_graph_file if pool else tiny_graph_file
    cfg = make_config(graph, events="stress", traffic={"load": load}, episode_requests=10**6)
    env = PowerCommEnv(cfg, observation="compact")

    class Proposer:
        name, observation, env_overrides, model_bytes = "uniform", "compact", {}, 0

        def __init__(self) -> None:
            self.rng = np.random.default_rng(seed)

        def reset(self, seed=None) -> None:
            pass

        def act(self, obs) -> int:
            return int(self.rng.integers(cfg.n_actions))

        def scores(self, obs) -> np.ndarray:
            return self.rng.normal(size=cfg.n_actions)

    gp = GuardedPolicy(Proposer(), engine, env)
    obs, _ = env.reset(seed=seed)
    gp.reset(seed)
    for _ in range(150):
        obs, _, _, _, info = env.step(gp.act(obs))
        assert info["outcome"] != "refused", (gp.last, info)
    s = gp.summary()
    assert s["executed_violations"] == 0 and s["decisions"] == 150
    assert s["intercepted"] > 0  # uniform proposals hit masked actions


@pytest.mark.parametrize("spec", ["ksp-ff", "llp"])
def test_guarded_heuristics_are_never_intercepted_on_env_rules(
    engine, make_config, tiny_graph_file, spec
) -> None:
    pol = make_policy(spec)
    cfg = make_config(tiny_graph_file, events="stress", **pol.env_overrides)
    env = PowerCommEnv(cfg, observation="compact")
    gp = GuardedPolicy(pol, engine, env)
    assert gp.name == f"{spec}+rules"
    obs, _ = env.reset(seed=3)
    gp.reset(3)
    for _ in range(100):
        obs, *_ = env.step(gp.act(obs))
    # heuristics only pick env-valid actions; only the priority-0 reject rule can intercept
    assert set(gp.rule_counts) <= {"no_reject_critical"}
    assert gp.summary()["executed_violations"] == 0
