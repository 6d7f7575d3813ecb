"""Executed hard violations and interception rates of guarded policies at scale.

Plays every policy behind the rule engine (``X+rules``) across cases, loads and seeds with
stressed grid events (faults, fiber cuts, emergencies) and counts, per policy, decisions,
interceptions and executed violations. Executed violations are what the independent
:class:`~pcnalloc.evaluate.checker.SafetyChecker` finds on the raw state after every step
(per kind: capacity, counter drift, zone, latency, trust, protection, grant, route); the
guard's own count of forbidden actions it let through is reported apart as its claim.
``checker_overhead`` times ``env.step`` and the checker's ``after_step`` separately on one
episode of the first case. Prints one JSON document.

Usage: python benchmarks/bench_violations.py --decisions 1000000 [--policies ...]
       [--student CKPT] [--cases case14,case30,case57] [--budget-s 1800]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import numpy as np

from pcnalloc.baselines import make_policy
from pcnalloc.config import env_config
from pcnalloc.envs import PowerCommEnv
from pcnalloc.evaluate import run_policy
from pcnalloc.evaluate.checker import VIOLATION_KINDS, SafetyChecker
from pcnalloc.evaluate.runner import env_config_for

STRESS = {"faults_per_hour": 12.0, "fiber_cuts_per_hour": 6.0, "emergency_minutes": 10.0}


def checker_overhead(case: str, load: float, spec: str, requests: int) -> dict:
    """Mean µs per decision of ``env.step`` and of the checker's ``after_step``."""
    pol = make_policy(spec)
    cfg = env_config_for(pol, env_config(network={"case": case}, traffic={"load": load}), requests)
    env = PowerCommEnv(cfg, observation=pol.observation)
    pol.reset(0)
    obs, _ = env.reset(seed=0)
    t = time.perf_counter()
    chk = SafetyChecker(env)
    init_s = time.perf_counter() - t
    step_ns = np.zeros(requests, dtype=np.int64)
    check_ns = np.zeros(requests, dtype=np.int64)
    for i in range(requests):
        a = pol.act(obs)
        t0 = time.perf_counter_ns()
        obs, _, _, _, info = env.step(a)
        t1 = time.perf_counter_ns()
        chk.after_step(info)
        step_ns[i], check_ns[i] = t1 - t0, time.perf_counter_ns() - t1
    t = time.perf_counter()
    chk.finish()
    finish_s = time.perf_counter() - t
    return {
        "case": case,
        "load": load,
        "policy": spec,
        "requests": requests,
        "live_flows_at_end": len(env.state.flows),
        "env_step_us_mean": round(float(step_ns.mean()) / 1e3, 1),
        "checker_us_mean": round(float(check_ns.mean()) / 1e3, 1),
        "checker_us_p99": round(float(np.percentile(check_ns, 99)) / 1e3, 1),
        "checker_reset_ms": round(init_s * 1e3, 1),
        "checker_finish_ms": round(finish_s * 1e3, 1),
        "violations": chk.report.total,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--decisions", type=int, default=1_000_000)
    ap.add_argument("--policies", default="random+rules,ksp-ff+rules,cspf-pe+rules,llp+rules")
    ap.add_argument("--student", default=None, help="student checkpoint: adds student+rules")
    ap.add_argument("--cases", default="case14,case30,case57")
    ap.add_argument("--loads", default="0.5,1.0,1.5")
    ap.add_argument("--requests", type=int, default=5000, help="decisions per episode")
    ap.add_argument("--budget-s", type=float, default=1800.0, help="stop after this wall time")
    ap.add_argument("--overhead-requests", type=int, default=2000, help="0 skips the timing")
    args = ap.parse_args()
    specs = args.policies.split(",")
    if args.student:
        specs += [f"student@{args.student}+rules"]
    cells = itertools.cycle(
        itertools.product(args.cases.split(","), [float(x) for x in args.loads.split(",")])
    )
    per: dict[str, dict[str, float]] = {}
    done, seed, t0 = 0, 0, time.perf_counter()
    while done < args.decisions and time.perf_counter() - t0 < args.budget_s:
        case, load = next(cells)
        cfg = env_config(network={"case": case}, traffic={"load": load, "events": STRESS})
        for spec in specs:
            r = run_policy(make_policy(spec), cfg, seed=seed, requests=args.requests)
            m = r["metrics"]
            row = per.setdefault(
                r["policy"],
                {
                    "decisions": 0,
                    "intercepted": 0,
                    "executed_violations": 0,
                    "executed_violations_by_kind": dict.fromkeys(VIOLATION_KINDS, 0),
                    "guard_claimed_violations": 0,
                    "checked_admissions": 0,
                    "unchecked_admissions": 0,
                    "episodes": 0,
                    "fiber_cuts": 0,
                    "faults": 0,
                },
            )
            row["decisions"] += m["requests"]
            row["intercepted"] += m["intercepted"]
            row["executed_violations"] += m["executed_hard_violations"]
            for k, v in m["executed_violations_by_kind"].items():
                row["executed_violations_by_kind"][k] += v
            row["guard_claimed_violations"] += m.get("guard", {}).get("executed_violations", 0)
            row["checked_admissions"] += m["safety_checks"]["checked_admissions"]
            row["unchecked_admissions"] += m["safety_checks"]["unchecked_admissions"]
            row["episodes"] += 1
            row["fiber_cuts"] += m["fiber_cuts"]
            row["faults"] += m["faults"]
            done += m["requests"]
        seed += 1
    for row in per.values():
        row["interception_rate"] = round(row["intercepted"] / max(row["decisions"], 1), 5)
    out = {
        "decisions": done,
        "wall_s": round(time.perf_counter() - t0, 1),
        "stress_events": STRESS,
        "per_policy": per,
    }
    if args.overhead_requests > 0:
        case = args.cases.split(",")[0]
        out["checker_overhead"] = [
            checker_overhead(case, 1.5, spec, args.overhead_requests)
            for spec in ("ksp-ff", "cspf-pe")
        ]
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
