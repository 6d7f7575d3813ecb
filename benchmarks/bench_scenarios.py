"""Per scenario family: decisions per class, faults, cuts and priority ≤ 1 decisions per episode.

Prints JSON (one object) with the load average. Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_scenarios.py --case case30 --seeds 0-4
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

from pcnalloc.baselines import make_policy
from pcnalloc.config import env_config
from pcnalloc.evaluate.runner import env_config_for, run_policy
from pcnalloc.traffic.catalog import load_catalog
from pcnalloc.traffic.scenarios import list_scenarios


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--case", default="case30")
    ap.add_argument("--load", type=float, default=1.0)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--seeds", default="0-4")
    ap.add_argument("--policy", default="ksp-ff")
    a = ap.parse_args()
    lo, _, hi = a.seeds.partition("-")
    seeds = list(range(int(lo), int(hi or lo) + 1))
    cat = load_catalog(None)
    crit = {n for n, p in zip(cat.names, cat.priority_C, strict=True) if p <= 1}
    out: dict = {"case": a.case, "load": a.load, "requests": a.requests, "seeds": seeds}
    fams: dict = {}
    for fam in [None, *list_scenarios()]:
        rows = []
        for s in seeds:
            pol = make_policy(a.policy)
            cfg = env_config_for(
                pol,
                env_config(network={"case": a.case}, traffic={"load": a.load, "scenario": fam}),
            )
            m = run_policy(pol, cfg, seed=s, requests=a.requests)["metrics"]
            per = m["offered_per_class"]
            rows.append(
                {
                    "per_class": per,
                    "critical": sum(v for k, v in per.items() if k in crit),
                    "faults": m["faults"],
                    "fiber_cuts": m["fiber_cuts"],
                    "interrupted": m["interrupted_flows"],
                    "value": m["weighted_value_ratio"],
                    "critical_blocking": m["blocking_priority_le1"],
                }
            )
        names = sorted({k for r in rows for k in r["per_class"]})
        fams[fam or "default (per-hour rates)"] = {
            "per_class_mean": {
                n: round(float(np.mean([r["per_class"].get(n, 0) for r in rows])), 1) for n in names
            },
            **{
                k: round(float(np.mean([r[k] for r in rows])), 3)
                for k in (
                    "critical",
                    "faults",
                    "fiber_cuts",
                    "interrupted",
                    "value",
                    "critical_blocking",
                )
            },
            "critical_min": int(min(r["critical"] for r in rows)),
        }
    out["families"] = fams
    out["loadavg"] = os.getloadavg()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
