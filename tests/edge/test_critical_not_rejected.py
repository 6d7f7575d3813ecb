"""Safety floor in an episode: a guarded policy that always proposes reject still admits every
critical (priority ≤ 1) request for which an admissible action exists, under fiber cuts and
faults. The planted fault — the reject rule scoped to priority 0 only, as it once was — lets
SCADA requests be rejected, and the same check catches it."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np

from pcnalloc.envs import PowerCommEnv
from pcnalloc.rules.engine import RequestContext, RuleEngine
from pcnalloc.rules.guard import GuardedPolicy


class AlwaysReject:
    """The adversarial student: rejects everything (its scores prefer reject too)."""

    name, observation, env_overrides, model_bytes = "always-reject", "compact", {}, 0

    def __init__(self, n_actions: int) -> None:
        self.n = n_actions

    def reset(self, seed=None) -> None:  # type: ignore[no-untyped-def]
        pass

    def act(self, obs) -> int:  # type: ignore[no-untyped-def]
        return self.n - 1

    def scores(self, obs) -> np.ndarray:  # type: ignore[no-untyped-def]
        return np.arange(self.n, dtype=float)  # reject best, then the longest routes


def _episode(engine: RuleEngine, cfg, steps: int = 400) -> Counter:
    env = PowerCommEnv(cfg, observation="compact")
    gp = GuardedPolicy(AlwaysReject(cfg.n_actions), engine, env)
    obs, _ = env.reset(seed=4)
    gp.reset(4)
    seen: Counter = Counter()
    reject = cfg.n_actions - 1
    for _ in range(steps):
        ev = env.current_evaluation
        verdict = engine.check(ev.fields, RequestContext.from_env(env))
        # an admissible action: a route the path rules allow (capacity counts what
        # pre-empting lower-priority flows frees), whatever the reject rule says
        admissible = bool((~verdict.forbidden_A[:-1]).any())
        action = gp.act(obs)
        assert gp.last is not None
        if gp.last.priority <= 1 and admissible:
            seen["critical_admissible"] += 1
            seen["rejected"] += action == reject
            seen["preempt"] += gp.last.preempt
        obs, *_ = env.step(action)
        seen["fiber_cuts"] = env.counters.get("fiber_cuts", 0)
    return seen


def test_always_reject_student_cannot_reject_critical_requests(
    engine, make_config, small_pool_graph_file
) -> None:
    cfg = make_config(
        small_pool_graph_file, events="stress", traffic={"load": 1.0}, episode_requests=10**6
    )
    seen = _episode(engine, cfg)
    assert seen["fiber_cuts"] > 0  # the stress preset cut fibers during the episode
    assert seen["critical_admissible"] >= 50 and seen["preempt"] > 0, seen
    assert seen["rejected"] == 0, seen
    # planted fault: the reject rule covers priority 0 only — SCADA/PMU (priority 1) are lost
    rs = engine.ruleset
    weak = dataclasses.replace(
        rs,
        rules=tuple(
            dataclasses.replace(r, scope={"priority_max": 0}) if r.id == "no_reject_critical" else r
            for r in rs.rules
        ),
    )
    bad = _episode(RuleEngine(weak, engine.catalog), cfg)
    assert bad["rejected"] > 0, bad  # the check above would have failed
