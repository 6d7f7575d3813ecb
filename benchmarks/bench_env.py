"""Environment speed and the heuristics table; prints one JSON document.

Measures, side by side in one run:
- network build time per case (pandapower load + site merge + regions),
- env reset time (stationary warm start) and decisions/s with KSP-FF (compact observation,
  single process), after a warm-up episode so path caches are filled as in training,
- per-decision cost by network size (it should barely grow: routes are cached),
- all baselines on case118 at loads 0.5 / 1.0 / 1.5 (value ratio, critical blocking, util).

Usage: python benchmarks/bench_env.py [--cases case30,case118,case1354pegase] [--requests N]
"""

from __future__ import annotations

import argparse
import json
import time

from pcnalloc.baselines import make_policy
from pcnalloc.config import NetworkConfig, env_config
from pcnalloc.envs import PowerCommEnv
from pcnalloc.evaluate import run_policy
from pcnalloc.network import build_network


def speed(case: str, requests: int) -> dict:
    t = time.perf_counter()
    net = build_network(case, NetworkConfig(case=case))
    build_s = time.perf_counter() - t
    cfg = env_config(network={"case": case}, episode_requests=10**9)
    env = PowerCommEnv(cfg, observation="compact", network=net)
    pol = make_policy("ksp-ff")
    t = time.perf_counter()
    obs, _ = env.reset(seed=0)
    reset_s = time.perf_counter() - t
    for _ in range(requests):  # warm-up: fills the route cache for this traffic
        obs, *_ = env.step(pol.act(obs))
    t = time.perf_counter()
    for _ in range(requests):
        obs, *_ = env.step(pol.act(obs))
    dt = time.perf_counter() - t
    return {
        "case": case,
        "sites": net.n_sites,
        "links": net.n_links,
        "build_s": round(build_s, 3),
        "reset_s": round(reset_s, 3),
        "warm_flows": len(env.state.flows),
        "decisions_per_s": round(requests / dt, 1),
        "us_per_decision": round(dt / requests * 1e6, 2),
    }


def baselines_table(case: str, requests: int, seeds: list[int]) -> list[dict]:
    rows = []
    for load in (0.5, 1.0, 1.5):
        for spec in ("random", "sp-ff", "ksp-ff", "ksp-ff:8", "ksp-ff:16", "llp", "cspf-pe"):
            ms = [
                run_policy(
                    make_policy(spec),
                    env_config(network={"case": case}, traffic={"load": load}),
                    seed=s,
                    requests=requests,
                )["metrics"]
                for s in seeds
            ]

            def mean(key: str, ms: list[dict] = ms) -> float:
                return round(sum(m[key] for m in ms) / len(ms), 4)

            rows.append(
                {
                    "case": case,
                    "load": load,
                    "policy": spec,
                    "seeds": len(seeds),
                    "weighted_value_ratio": mean("weighted_value_ratio"),
                    "blocking_priority_le1": mean("blocking_priority_le1"),
                    "blocking_probability": mean("blocking_probability"),
                    "max_link_utilisation": mean("max_link_utilisation"),
                    "carried_util_mgmt": round(
                        sum(m["carried_utilisation_per_slice"]["mgmt"] for m in ms) / len(ms), 4
                    ),
                }
            )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default="case30,case118,case1354pegase")
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--table-case", default="case118")
    ap.add_argument("--table-requests", type=int, default=2000)
    ap.add_argument("--table-seeds", default="0,1,2")
    args = ap.parse_args()
    out = {"speed": [speed(c, args.requests) for c in args.cases.split(",")]}
    out["baselines"] = baselines_table(
        args.table_case, args.table_requests, [int(s) for s in args.table_seeds.split(",")]
    )
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
