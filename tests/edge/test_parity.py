"""The default engine reproduces the environment's built-in hard-rule mask."""

from __future__ import annotations

import numpy as np
import pytest

from pcnalloc.baselines import make_policy
from pcnalloc.envs import PowerCommEnv
from pcnalloc.rules.engine import RequestContext, build_engine


@pytest.mark.parametrize(("policy", "seed"), [("cspf-pe:4", 0), ("random", 1)])
def test_default_mask_equals_env_mask_on_case30(make_config, policy: str, seed: int) -> None:
    pol = make_policy(policy)
    cfg = make_config("case30", events="stress", traffic={"load": 1.5})
    env = PowerCommEnv(cfg, observation="compact")
    engine = build_engine(None, env.catalog, trust_threshold=cfg.trust_threshold)
    pol.reset(seed)
    obs, _ = env.reset(seed=seed)
    seen = {"forbidden": 0, "emergency": 0, "preempt": 0}
    for _ in range(300):
        ev = env.current_evaluation
        ctx = RequestContext.from_env(env)
        v = engine.check(ev.fields, ctx)
        env_ok = ev.mask_A[:-1].astype(bool)
        assert np.array_equal(~v.forbidden_A[:-1], env_ok), (ctx, v.explain(0))
        # the env's per-rule flags agree with some engine rule for every masked action
        assert np.array_equal(v.violations_AR[:-1].any(axis=1), ev.hard_AR[:-1].any(axis=1))
        seen["forbidden"] += int(v.forbidden_A[:-1].sum())
        seen["emergency"] += ctx.emergency
        seen["preempt"] += int(ev.fields["needs_preemption"].any())
        obs, *_ = env.step(pol.act(obs))
    assert seen["forbidden"] > 0 and seen["preempt"] > 0, seen
