"""CSPF-PE speed with the indexed pre-emption plan and the reference plan, side by side.

For each case, the same seeded CSPF-PE episode (after the stationary warm start) is run twice
in one process: once with ``NetworkState.preemption_plan`` (the (link, slice, priority, kb/s)
index) and once with ``_preemption_plan_reference`` (collect and sort every flow on the
deficit links, the code path before the index). Both runs must make the same plans, so the
trajectories are identical and the decisions/s compare like for like. Reported per run:
decisions/s and preemption_plan µs/call (p50, p99, mean over the calls the episode makes,
each timed on the live state it was asked in); the load average is printed next to each
figure.

Usage: OMP_NUM_THREADS=1 python benchmarks/bench_preempt.py [--cases case30,case118]
       [--requests N] [--out bench_preempt.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pcnalloc.baselines import make_policy
from pcnalloc.config import NetworkConfig, env_config
from pcnalloc.envs import PowerCommEnv
from pcnalloc.envs.state import NetworkState, _preemption_plan_reference
from pcnalloc.network import build_network


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _stats_us(ts: list[float]) -> dict:
    if not ts:
        return {"calls": 0}
    a = np.asarray(ts) * 1e6
    return {
        "calls": len(ts),
        "p50_us": round(float(np.percentile(a, 50)), 2),
        "p99_us": round(float(np.percentile(a, 99)), 2),
        "mean_us": round(float(a.mean()), 2),
    }


def _episode(env: PowerCommEnv, plan: Callable, requests: int, seed: int) -> dict:
    """Run CSPF-PE with ``plan`` as the state's planner; time the plans and the decisions."""
    st: NetworkState = env.state
    times: list[float] = []
    plans: list = []
    args: list = []

    def timed(links: np.ndarray, slice_: int, priority: int, kbps: int) -> list[int] | None:
        t = time.perf_counter()
        out = plan(st, links, slice_, priority, kbps)
        times.append(time.perf_counter() - t)
        plans.append(out)
        args.append((links, slice_, priority, kbps))
        return out

    st.preemption_plan = timed  # type: ignore[method-assign]
    pol = make_policy("cspf-pe")
    t = time.perf_counter()
    obs, _ = env.reset(seed=seed)
    reset_s = time.perf_counter() - t
    times.clear(), plans.clear(), args.clear()  # the warm start does not plan, but be sure
    t = time.perf_counter()
    for _ in range(requests):
        obs, *_ = env.step(pol.act(obs))
    dt = time.perf_counter() - t
    del st.preemption_plan
    return {
        "reset_s": round(reset_s, 2),
        "decisions_per_s": round(requests / dt, 1),
        "us_per_decision": round(dt / requests * 1e6, 2),
        "plan": _stats_us(times),
        "flows_at_end": len(st.flows),
        "_plans": plans,
        "_args": args,
    }


def bench_case(case: str, requests: int, seed: int) -> dict:
    net = build_network(case, NetworkConfig(case=case))
    pol = make_policy("cspf-pe")
    cfg = env_config(network={"case": case}, episode_requests=10**9, **pol.env_overrides)
    row: dict = {"case": case, "sites": net.n_sites, "links": net.n_links, "requests": requests}
    runs = {}
    for name, plan in (
        ("reference", _preemption_plan_reference),
        ("indexed", NetworkState.preemption_plan),
    ):
        env = PowerCommEnv(cfg, observation="compact", network=net)
        runs[name] = _episode(env, plan, requests, seed)
        runs[name]["loadavg"] = _load()
    ref, idx = runs["reference"], runs["indexed"]
    row["same_plans"] = ref.pop("_plans") == idx.pop("_plans")
    ref.pop("_args"), idx.pop("_args")
    row["reference"], row["indexed"] = ref, idx
    row["plan_speedup_mean"] = round(
        ref["plan"].get("mean_us", 0) / idx["plan"].get("mean_us", 1), 1
    )
    row["decisions_speedup"] = round(idx["decisions_per_s"] / ref["decisions_per_s"], 2)
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default="case30,case118")
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("bench_preempt.json"))
    args = ap.parse_args()
    out = {
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "loadavg_start": _load(),
        "cases": [],
    }
    for case in args.cases.split(","):
        row = bench_case(case, args.requests, args.seed)
        out["cases"].append(row)
        print(
            f"{case}: CSPF-PE {row['reference']['decisions_per_s']:.0f} → "
            f"{row['indexed']['decisions_per_s']:.0f} decisions/s; plan mean "
            f"{row['reference']['plan'].get('mean_us')} → {row['indexed']['plan'].get('mean_us')}"
            f" µs/call ({row['indexed']['plan']['calls']} calls), same plans: "
            f"{row['same_plans']}  [load {' '.join(map(str, _load()))}]",
            flush=True,
        )
    out["loadavg_end"] = _load()
    args.out.write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
