"""Rule engine, guard and audit-log timings on recorded case30 requests (prints JSON).

Usage: ``python benchmarks/bench_rules.py [--case case30] [--requests 2000] [--repeat 5]``.
Fields of real requests are recorded first (ksp-ff playing the env), then each stage is timed
per call with ``perf_counter_ns`` on one thread: ``engine.check`` (mask over all actions),
the same plus soft penalties, ``Guard.decide`` with a forbidden proposal (interception path)
and an allowed one, and ``AuditLog.append_decision`` with fsync on every record and without.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from pcnalloc.baselines import make_policy
from pcnalloc.config import env_config
from pcnalloc.edge import keys
from pcnalloc.edge.audit import AuditLog
from pcnalloc.envs import PowerCommEnv
from pcnalloc.rules.engine import RequestContext, build_engine
from pcnalloc.rules.guard import Guard


def pct(ns: list[int]) -> dict[str, float]:
    a = np.asarray(ns) / 1e3
    return {
        "p50_us": round(float(np.percentile(a, 50)), 2),
        "p99_us": round(float(np.percentile(a, 99)), 2),
        "n": int(a.size),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", default="case30")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    pol = make_policy("ksp-ff")
    cfg = env_config(network={"case": args.case}, **pol.env_overrides)
    env = PowerCommEnv(cfg, observation="compact")
    engine = build_engine(None, env.catalog, trust_threshold=cfg.trust_threshold)
    obs, _ = env.reset(seed=0)
    recorded = []
    for _ in range(args.requests):
        recorded.append((env.current_evaluation.fields, RequestContext.from_env(env)))
        obs, *_ = env.step(pol.act(obs))
    A = cfg.n_actions
    for f, c in recorded[:50]:  # warm the per-class plans
        engine.check(f, c)

    t_check, t_soft = [], []
    for _ in range(args.repeat):
        for f, c in recorded:
            t = time.perf_counter_ns()
            engine.check(f, c)
            t_check.append(time.perf_counter_ns() - t)
        for f, c in recorded:
            t = time.perf_counter_ns()
            engine.check(f, c).soft_penalty_A  # noqa: B018
            t_soft.append(time.perf_counter_ns() - t)

    guard = Guard(engine, explain=False)
    guard_explain = Guard(engine)
    scores = -np.arange(A, dtype=float)
    t_allowed, t_intercept, t_explain = [], [], []
    for f, c in recorded:
        v = engine.check(f, c)
        allowed = np.flatnonzero(~v.forbidden_A)
        forbidden = np.flatnonzero(v.forbidden_A)
        t = time.perf_counter_ns()
        guard.decide(int(allowed[0]), scores, f, c)
        t_allowed.append(time.perf_counter_ns() - t)
        if forbidden.size:
            t = time.perf_counter_ns()
            guard.decide(int(forbidden[0]), scores, f, c)
            t_intercept.append(time.perf_counter_ns() - t)
            t = time.perf_counter_ns()
            guard_explain.decide(int(forbidden[0]), scores, f, c)
            t_explain.append(time.perf_counter_ns() - t)

    audit = {}
    priv, _ = keys.generate_keypair()
    d = guard_explain.decide(A - 2, scores, *recorded[0])
    req = {
        "id": 1,
        "time_s": 1.0,
        "cls": "scada",
        "src": 1,
        "dst": 0,
        "kind": 0,
        "region": 0,
        "emergency": False,
    }
    with tempfile.TemporaryDirectory() as tmp:
        for label, sync_every in (("fsync_every_record", 1), ("fsync_every_1000", 1000)):
            ns = []
            with AuditLog(
                Path(tmp) / f"{label}.log",
                private_key=priv,
                checkpoint_every=1000,
                sync_every=sync_every,
            ) as log:
                for _ in range(min(args.requests, 2000)):
                    t = time.perf_counter_ns()
                    log.append_decision(
                        request=req, decision=d, ruleset_sha256=engine.sha256, model_sha256="0" * 64
                    )
                    ns.append(time.perf_counter_ns() - t)
            audit[label] = pct(ns)

    print(
        json.dumps(
            {
                "case": args.case,
                "actions": A,
                "rules": {"hard_critical": len(engine.rule_ids), "soft": len(engine.soft_ids)},
                "machine": {
                    "cpu": platform.processor() or platform.machine(),
                    "python": platform.python_version(),
                },
                "engine_check_mask": pct(t_check),
                "engine_check_with_soft": pct(t_soft),
                "guard_allowed_proposal": pct(t_allowed),
                "guard_intercept": pct(t_intercept),
                "guard_intercept_with_reasons": pct(t_explain),
                "audit_append": audit,
                "target": {"engine_check_p50_us": 10.0},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
