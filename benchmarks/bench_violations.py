"""Executed hard/critical violations and interception rates of guarded policies at scale.

Plays every policy behind the rule engine (``X+rules``) across cases, loads and seeds with
stressed grid events (faults, fiber cuts, emergencies) and counts, per policy, decisions,
interceptions and executed violations (a guarded action the rules forbid, or a pool/latency
breach seen by the metrics recorder). Prints one JSON document.

Usage: python benchmarks/bench_violations.py --decisions 1000000 [--policies ...]
       [--student CKPT] [--cases case14,case30,case57] [--budget-s 1800]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

from pcnalloc.baselines import make_policy
from pcnalloc.config import env_config
from pcnalloc.evaluate import run_policy

STRESS = {"faults_per_hour": 12.0, "fiber_cuts_per_hour": 6.0, "emergency_minutes": 10.0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--decisions", type=int, default=1_000_000)
    ap.add_argument("--policies", default="random+rules,ksp-ff+rules,cspf-pe+rules,llp+rules")
    ap.add_argument("--student", default=None, help="student checkpoint: adds student+rules")
    ap.add_argument("--cases", default="case14,case30,case57")
    ap.add_argument("--loads", default="0.5,1.0,1.5")
    ap.add_argument("--requests", type=int, default=5000, help="decisions per episode")
    ap.add_argument("--budget-s", type=float, default=1800.0, help="stop after this wall time")
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
                    "episodes": 0,
                    "fiber_cuts": 0,
                    "faults": 0,
                },
            )
            row["decisions"] += m["requests"]
            row["intercepted"] += m["intercepted"]
            row["executed_violations"] += m["executed_hard_violations"]
            row["episodes"] += 1
            row["fiber_cuts"] += m["fiber_cuts"]
            row["faults"] += m["faults"]
            done += m["requests"]
        seed += 1
    for row in per.values():
        row["interception_rate"] = round(row["intercepted"] / max(row["decisions"], 1), 5)
    print(
        json.dumps(
            {
                "decisions": done,
                "wall_s": round(time.perf_counter() - t0, 1),
                "stress_events": STRESS,
                "per_policy": per,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
