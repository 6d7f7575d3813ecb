"""Hindsight bound per load: LP/MILP solve times, model size and every policy's certified gap.

The bound covers pre-empting schedules (see :mod:`pcnalloc.baselines.offline`), so every
row is certified; the no-pre-emption bound of the same window is printed next to it to show
what pre-emption is worth and that CSPF-PE would exceed it. Prints JSON with the load
average. Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_bound.py --case case30 --loads 1.0,1.5 \
        --seeds 100-101 --requests 200 [--policies ksp-ff,cspf-pe,trunk,lcr,random]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time

import numpy as np

from pcnalloc.baselines.offline import record_window, solve_window, window_gap
from pcnalloc.config import env_config

BOUND_KEYS = (
    *("seed", "k_paths", "status", "upper_bound", "lp_bound", "value", "n_vars", "nnz"),
    *("lp_s", "solve_s", "evicted", "restored"),
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--case", default="case30")
    ap.add_argument("--loads", default="1.0,1.5")
    ap.add_argument("--seeds", default="100-101")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--policies", default="ksp-ff,cspf-pe,trunk,lcr,random")
    ap.add_argument("--time-limit", type=float, default=20.0)
    a = ap.parse_args()
    lo, _, hi = a.seeds.partition("-")
    seeds = list(range(int(lo), int(hi or lo) + 1))
    pols = a.policies.split(",")
    out: dict = {"case": a.case, "requests": a.requests, "seeds": seeds, "loads": {}}
    for load in map(float, a.loads.split(",")):
        cfg = env_config(network={"case": a.case}, traffic={"load": load})
        t0 = time.perf_counter()
        gap = window_gap(pols, cfg, seeds, a.requests, time_limit_s=a.time_limit)
        wall = time.perf_counter() - t0
        plain = []
        for s in seeds:  # the same windows under an admission-only model (K = 4)
            w = record_window(cfg, s, a.requests)
            w = dataclasses.replace(w, config=w.config.model_copy(update={"preemption": False}))
            plain.append(solve_window(w, time_limit_s=a.time_limit)["upper_bound"])
        per_pol = {}
        for p in pols:
            rs = [r for r in gap["policies"] if r["policy"].startswith(p.split("@")[0])]
            per_pol[p] = {
                "gap_mean": round(float(np.mean([r["gap"] for r in rs])), 5),
                "gap_per_seed": [r["gap"] for r in rs],
                "value_mean": round(float(np.mean([r["value"] for r in rs])), 3),
                "preempted": int(sum(r["preempted"] for r in rs)),
                "certified": all(r["certified"] for r in rs),
                "within_bound": all(r["within_bound"] for r in rs),
            }
        out["loads"][str(load)] = {
            "bounds": [{k: b[k] for k in BOUND_KEYS} for b in gap["bounds"]],
            "no_preemption_bound_k4": plain,
            "policies": per_pol,
            "wall_s": round(wall, 1),
            "loadavg": os.getloadavg(),
        }
        print(f"load {load}: {json.dumps(out['loads'][str(load)]['policies'])}", flush=True)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
