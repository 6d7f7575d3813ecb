"""Edge layer: rule engine, interception guard, dynamic priorities, audit log, keys.

Light on purpose: nothing here imports torch, and names load on first use.

Typical wiring::

    from pcnalloc.edge import build_engine, GuardedPolicy, AuditLog
    engine = build_engine(rules_path, env.catalog, trust_threshold=cfg.trust_threshold)
    verdict = engine.check(ev.fields, RequestContext.from_env(env))   # verdict.mask_A
    policy = GuardedPolicy(make_policy("ksp-ff"), engine, env, audit=AuditLog(path, ...))
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "RuleSet": "rules",  # aliases of pcnalloc.rules.schema
    "Rule": "rules",
    "RuleError": "rules",
    "RuleEngine": "engine",
    "RequestContext": "engine",
    "Verdict": "engine",
    "build_engine": "engine",
    "Guard": "guard",
    "GuardedPolicy": "guard",
    "Decision": "guard",
    "DynamicPriorities": "priorities",
    "RegionEmergencies": "priorities",
    "AuditLog": "audit",
    "AuditError": "audit",
    "VerifyResult": "audit",
    "verify": "audit",
    "EdgeAgent": "agent",
    "EdgePolicy": "agent",
    "LocalState": "agent",
    "load_artifact": "artifact",
    "ArtifactError": "artifact",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'pcnalloc.edge' has no attribute {name!r}")
    return getattr(importlib.import_module(f"pcnalloc.edge.{_EXPORTS[name]}"), name)
