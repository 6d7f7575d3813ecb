"""Safety rules: schema, predicates, compiled engine, dynamic priorities and the guard.

This package sits below the environment: it imports only :mod:`pcnalloc.errors` (and numpy,
yaml), so the simulator, the baselines, the edge runtime and the service all use one rule
engine without importing each other. Names load on first use.

Typical wiring::

    from pcnalloc.rules import build_engine, GuardedPolicy, RequestContext
    engine = build_engine(rules_path, env.catalog, trust_threshold=cfg.trust_threshold)
    verdict = engine.check(ev.fields, RequestContext.from_env(env))   # verdict.forbidden_A
    policy = GuardedPolicy(make_policy("ksp-ff"), engine, env)
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "RuleSet": "schema",
    "Rule": "schema",
    "RuleError": "schema",
    "PriorityRule": "schema",
    "RuleEngine": "engine",
    "RequestContext": "engine",
    "Verdict": "engine",
    "build_engine": "engine",
    "Guard": "guard",
    "GuardedPolicy": "guard",
    "Decision": "guard",
    "DynamicPriorities": "priorities",
    "RegionEmergencies": "priorities",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'pcnalloc.rules' has no attribute {name!r}")
    return getattr(importlib.import_module(f"pcnalloc.rules.{_EXPORTS[name]}"), name)
