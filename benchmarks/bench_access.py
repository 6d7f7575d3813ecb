"""Access layer: matching vs RAF vs RAOM with paired CIs over seeds, and the slot timing.

Usage: ``python benchmarks/bench_access.py [--seeds 5] [--out bench_access.json]``.
Reports, next to the paper's numbers: the growth of the weighted delay + α·cost from I = 10
to I = 110 (paper: 20.82 % / 53.78 % / 37.47 % for matching / RAF / RAOM), the traffic cost
at a 60 % 5G share (paper: matching 34.03 % below RAF and 53.35 % below RAOM), the weighted
sum against SINR_min (paper: matching degrades least), mean-rate stability of the virtual
queues (max_i O_i(T)/T), and the time of one matching slot decision for 100 devices on one
thread (target ≤ 1 ms).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from pcnalloc.access import AccessModel, access_config
from pcnalloc.access.policies import matching_allocate
from pcnalloc.access.sweeps import cell, paired_ci, sweep

POLICIES = ("matching", "raf", "raom")


def pct_change(a: float, b: float) -> float:
    return 100.0 * (b - a) / a if a else float("nan")


def slot_timing(repeat: int = 300) -> dict[str, float]:
    model = AccessModel(access_config(), 0)
    modes = np.where(model.reachable[:, 1] & (np.arange(model.n) % 4 == 0), 1, 0)
    model.begin_epoch(modes)  # a quarter on 5G, the rest on PLC
    view = model.slot_view()
    ns = []
    for _ in range(repeat):
        t = time.perf_counter_ns()
        matching_allocate(view)
        ns.append(time.perf_counter_ns() - t)
    a = np.asarray(ns) / 1e3
    return {"p50_us": float(np.percentile(a, 50)), "p99_us": float(np.percentile(a, 99))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    seeds = list(range(args.seeds))
    base = access_config()
    t0 = time.perf_counter()
    dev = sweep(base, "devices", [10, 110], POLICIES, seeds)
    share = sweep(base, "g5_share", [15, 60], POLICIES, seeds)
    sinr = sweep(base, "sinr_min_db", [8.0, 12.3, 16.0], POLICIES, seeds)
    default = sweep(base, "alpha", [base.alpha], POLICIES, seeds)
    out: dict = {"seeds": seeds, "host": platform.node(), "loadavg": os.getloadavg()}
    out["growth_10_to_110_pct"] = {
        p: {
            "ours": pct_change(
                float(np.mean(cell(dev, p, 10)["weighted_sum"])),
                float(np.mean(cell(dev, p, 110)["weighted_sum"])),
            ),
            "paper": {"matching": 20.82, "raf": 53.78, "raom": 37.47}[p],
        }
        for p in POLICIES
    }
    m60 = float(np.mean(cell(share, "matching", 60)["traffic_cost"]))
    out["cost_at_60pct_5g"] = {
        p: {
            "matching_below_pct": -pct_change(
                float(np.mean(cell(share, p, 60)["traffic_cost"])), m60
            ),
            "paper": {"raf": 34.03, "raom": 53.35}[p],
            "paired_diff": paired_ci(
                cell(share, p, 60)["traffic_cost"], cell(share, "matching", 60)["traffic_cost"]
            ),
        }
        for p in ("raf", "raom")
    }
    out["default"] = {
        p: {
            "weighted_sum_mean": float(np.mean(cell(default, p, base.alpha)["weighted_sum"])),
            "vq_max_over_T_mean": float(np.mean(cell(default, p, base.alpha)["vq_max_over_T"])),
            "paired_diff_vs_matching": paired_ci(
                cell(default, p, base.alpha)["weighted_sum"],
                cell(default, "matching", base.alpha)["weighted_sum"],
            ),
        }
        for p in POLICIES
    }
    out["sinr_min_degradation_pct_8_to_16"] = {
        p: pct_change(
            float(np.mean(cell(sinr, p, 8.0)["weighted_sum"])),
            float(np.mean(cell(sinr, p, 16.0)["weighted_sum"])),
        )
        for p in POLICIES
    }
    out["sinr_min_weighted_sum"] = {
        p: {v: float(np.mean(cell(sinr, p, v)["weighted_sum"])) for v in sinr["values"]}
        for p in POLICIES
    }
    out["matching_slot_decision_100_devices"] = slot_timing()
    out["wall_s"] = time.perf_counter() - t0
    text = json.dumps(out, indent=2)
    if args.out:
        from pcnalloc.fileio import write_atomic

        write_atomic(args.out, text + "\n")
    print(text)


if __name__ == "__main__":
    main()
