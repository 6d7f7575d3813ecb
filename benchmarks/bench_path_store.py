"""Fresh-process start with a cold vs a warm on-disk path cache, side by side in one run.

Each variant is a fresh child process on a private ``PCNALLOC_CACHE_DIR`` whose network is
already stored (so only the path sets differ): ``cold`` runs with the stored path sets
removed, ``warm`` with the file the previous cold child (same seed) wrote at exit, and
``warm_other_seed`` with a file written by a run of the next seed only (the pairs this seed
adds are searched). The variants alternate within each repeat so that a change of machine
load hits them alike.
Each child builds the env (``storm`` family, KSP-FF, compact observation), resets it and
plays the first ``--steps`` decisions, and reports the time of each part, the time spent in
path searches (``PathCache._search``, either engine, and the min-cost-flow pair, timed by
wrapping them), the sets loaded
from disk, the time of the exit write, and a digest of actions and rewards (equal in both
variants: the stored sets are the computed ones). The load average is recorded next to
every figure.

Usage: python benchmarks/bench_path_store.py [--cases case118,case1354pegase]
       [--steps 1000,0] [--repeats 2] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import time
t_start = time.perf_counter()
import hashlib, json, os, sys
import numpy as np
from pcnalloc.baselines import make_policy
from pcnalloc.config import env_config
from pcnalloc.envs import PowerCommEnv
from pcnalloc.network import paths

case, steps, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
search = {"s": 0.0, "n": 0}

def timed(fn):
    def wrapper(*a, **k):
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            search["s"] += time.perf_counter() - t
            search["n"] += 1
    return wrapper

paths.PathCache._search = timed(paths.PathCache._search)
paths.disjoint_pair = timed(paths.disjoint_pair)
t_import = time.perf_counter() - t_start
pol = make_policy("ksp-ff")
cfg = env_config(network={"case": case}, traffic={"scenario": "storm"},
                 episode_requests=10**9, **pol.env_overrides)
t = time.perf_counter()
env = PowerCommEnv(cfg, observation=pol.observation)
t_env = time.perf_counter() - t
cache = env.paths
loaded = {"plain": len(cache._plain), "protected": len(cache._prot0)}
pol.reset(seed)
s0 = search["s"]
t = time.perf_counter()
obs, _ = env.reset(seed=seed)
t_reset = time.perf_counter() - t
search_reset = search["s"] - s0
h = hashlib.sha256()
t = time.perf_counter()
for _ in range(steps):
    a = pol.act(obs)
    obs, r, _, _, info = env.step(a)
    h.update(np.int64(a).tobytes()); h.update(np.float64(r).tobytes())
t_steps = time.perf_counter() - t
t = time.perf_counter()
wrote = paths.flush_shared()  # what atexit would do; timed here
t_flush = time.perf_counter() - t
store = cache._store_path
print(json.dumps({
    "import_s": t_import, "env_build_s": t_env, "reset_s": t_reset,
    "steps": steps, "steps_s": t_steps, "start_to_last_decision_s": t_env + t_reset + t_steps,
    "path_search_s": search["s"], "path_searches": search["n"],
    "path_search_in_reset_s": search_reset,
    "loaded_sets": loaded,
    "sets_after": {"plain": len(cache._plain), "protected": len(cache._prot0)},
    "exit_flush_s": t_flush, "files_written": wrote,
    "store_bytes": store.stat().st_size if store is not None and store.is_file() else 0,
    "digest": h.hexdigest()[:16],
    "load_avg": os.getloadavg(),
}))
"""


def _child(case: str, steps: int, seed: int, env: dict[str, str]) -> dict:
    t = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", CHILD, case, str(steps), str(seed)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["process_wall_s"] = time.perf_counter() - t
    res["load_avg_after"] = os.getloadavg()
    return res


def _median(xs: list[float]) -> float:
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="case118,case1354pegase")
    ap.add_argument("--steps", default="1000,0", help="decisions per case (comma list)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    cases = args.cases.split(",")
    steps = [int(s) for s in args.steps.split(",")]
    steps += [steps[-1]] * (len(cases) - len(steps))
    report: dict = {
        "benchmark": "path_store",
        "python": sys.version.split()[0],
        "load_avg_start": os.getloadavg(),
        "cases": {},
    }
    for case, n_steps in zip(cases, steps, strict=False):
        tmp = Path(tempfile.mkdtemp(prefix="pcnalloc-bench-paths-"))
        env = {
            **os.environ,
            "PCNALLOC_CACHE_DIR": str(tmp),
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "NUMBA_NUM_THREADS": "1",
        }
        try:
            _child(case, 0, args.seed, env)  # stores the network (and a first path file)
            runs: dict[str, list[dict]] = {"cold": [], "warm": [], "warm_other_seed": []}
            for _ in range(args.repeats):
                shutil.rmtree(tmp / "paths", ignore_errors=True)
                runs["cold"].append(_child(case, n_steps, args.seed, env))
                runs["warm"].append(_child(case, n_steps, args.seed, env))
                # a cache filled by another seed's run: the pairs this seed adds are searched
                shutil.rmtree(tmp / "paths", ignore_errors=True)
                _child(case, n_steps, args.seed + 1, env)
                runs["warm_other_seed"].append(_child(case, n_steps, args.seed, env))
                print(
                    case,
                    {k: round(v[-1]["start_to_last_decision_s"], 3) for k, v in runs.items()},
                    file=sys.stderr,
                )
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        summary = {
            v: {
                k: _median([r[k] for r in rs])
                for k in (
                    "env_build_s",
                    "reset_s",
                    "steps_s",
                    "start_to_last_decision_s",
                    "path_search_s",
                    "process_wall_s",
                    "exit_flush_s",
                )
            }
            for v, rs in runs.items()
        }
        digests = {r["digest"] for rs in runs.values() for r in rs}
        report["cases"][case] = {
            "steps": n_steps,
            "median": summary,
            "speedup_start_to_last_decision": {
                v: summary["cold"]["start_to_last_decision_s"]
                / max(summary[v]["start_to_last_decision_s"], 1e-9)
                for v in ("warm", "warm_other_seed")
            },
            "same_trajectory": len(digests) == 1,
            "runs": runs,
        }
    report["load_avg_end"] = os.getloadavg()
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
