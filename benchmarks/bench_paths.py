"""First-time paths: env reset with the reference path search vs the tree search, cold and
warm, side by side in one run.

Each variant is a fresh child process on a private ``PCNALLOC_CACHE_DIR`` whose network is
already stored (a first child stores it and compiles the numba kernels), so the variants
differ only in the path search and the stored path sets:

* ``cold_reference`` — no stored path sets, ``PCNALLOC_PATH_ENGINE=reference`` (SciPy's
  ``yen`` on a rebuilt graph per set of removed links, as before);
* ``cold_tree`` — no stored path sets, the tree search (destination trees, A*, link masks,
  2-edge-connectivity check);
* ``warm_tree`` — the sets ``cold_tree`` stored at exit loaded from disk.

Each child builds the env (``storm`` family, KSP-FF, compact observation), resets it —
the reset places the warm-start population, which asks the path cache for every pair the
population draws — and plays ``--steps`` decisions. It reports the reset time, the time
spent in the path cache (``candidates``), the searched pairs, the searches the tree engine
handed to the reference one (ties), and a digest of the plain and 1+1 sets and of the
decisions: equal digests mean the engines gave the same routes and the same trajectory.

Where the reference cold start is too long to run (``--reference-max-sites``, default 5000
sites: case9241pegase takes ~14 minutes), ``cold_reference`` is *estimated*: a child draws
the same warm-start pairs, times the reference search on ``--sample`` of them, and scales
by the pair count (marked ``"estimated": true``); on smaller cases the estimate is made next
to the measurement (``cold_reference_estimate``) to show how far to trust it. The load
average is recorded next to every figure.

Usage: python benchmarks/bench_paths.py [--cases case118,case1354pegase,case9241pegase]
       [--steps 200] [--repeats 1] [--out FILE.json]
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

CHILD = r"""
import time
t_start = time.perf_counter()
import hashlib, json, os, sys
import numpy as np
from pcnalloc.baselines import make_policy
from pcnalloc.config import env_config
from pcnalloc.envs import PowerCommEnv
from pcnalloc.network import paths

case, steps, seed, mode, sample = (sys.argv[1], int(sys.argv[2]), int(sys.argv[3]),
                                   sys.argv[4], int(sys.argv[5]))
spent = {"s": 0.0}
orig = paths.PathCache.candidates

def timed(self, *a, **k):
    t = time.perf_counter()
    try:
        return orig(self, *a, **k)
    finally:
        spent["s"] += time.perf_counter() - t

paths.PathCache.candidates = timed
pol = make_policy("ksp-ff")
cfg = env_config(network={"case": case}, traffic={"scenario": "storm"},
                 episode_requests=10**9, **pol.env_overrides)
t = time.perf_counter()
env = PowerCommEnv(cfg, observation=pol.observation)
t_env = time.perf_counter() - t
cache = env.paths
loaded = {"plain": len(cache._plain), "protected": len(cache._prot0)}
out = {"engine": cache.engine, "env_build_s": t_env, "loaded_sets": loaded}
if mode == "estimate":
    # the warm start's pairs, drawn as the env draws them; the reference search timed on a
    # sample and scaled by the number of pairs
    import gymnasium as gym
    gym.Env.reset(env, seed=seed)
    rng, traffic = env.np_random, env.traffic
    now = cfg.traffic.start_hour * 3600.0  # what reset sets before the warm start
    counts = rng.poisson(traffic.mean_concurrent_flows() * traffic.profile(now))
    order = np.repeat(np.arange(env.catalog.n_classes), counts)
    rng.shuffle(order)
    plain, prot = set(), set()
    for c in order.tolist():
        s, d = traffic.endpoints(rng, c)
        traffic.holding(rng, c)
        (prot if env._protected_C[c] else plain).add((min(s, d), max(s, d)))
    ref = paths.PathCache(env.net, cache.n_cached, engine="reference")
    pick = np.random.default_rng(0)
    failed = np.zeros(env.net.n_links + 1, dtype=bool)
    res = {}
    for name, pairs in (("plain", sorted(plain)), ("protected", sorted(prot))):
        idx = pick.choice(len(pairs), size=min(sample, len(pairs)), replace=False)
        t = time.perf_counter()
        for i in idx.tolist():
            s, d = pairs[i]
            if name == "plain":
                ref.paths(s, d)
            else:
                ref.candidates(s, d, cfg.k_paths, protected=True, failed_E1=failed,
                               failed_key=())
        per = (time.perf_counter() - t) / max(len(idx), 1)
        res[name] = {"pairs": len(pairs), "sampled": len(idx), "per_pair_ms": 1e3 * per}
    est = sum(r["pairs"] * r["per_pair_ms"] / 1e3 for r in res.values())
    out.update({"estimated": True, "pairs": res, "path_search_s": est,
                "load_avg": os.getloadavg()})
    print(json.dumps(out))
    sys.exit(0)
pol.reset(seed)
t = time.perf_counter()
obs, _ = env.reset(seed=seed)
t_reset = time.perf_counter() - t
search_reset = spent["s"]
h = hashlib.sha256()
t = time.perf_counter()
for _ in range(steps):
    a = pol.act(obs)
    obs, r, _, _, info = env.step(a)
    h.update(np.int64(a).tobytes()); h.update(np.float64(r).tobytes())
t_steps = time.perf_counter() - t
sets = hashlib.sha256()
for pair in sorted(cache._plain):
    for f in ("links_PH", "nodes_PN"):
        sets.update(np.ascontiguousarray(getattr(cache._plain[pair], f)).tobytes())
for kp in sorted(cache._prot0):
    for f in ("links_KH", "backup_links_KB", "has_backup_K"):
        sets.update(np.ascontiguousarray(getattr(cache._prot0[kp], f)).tobytes())
t = time.perf_counter()
wrote = paths.flush_shared()
t_flush = time.perf_counter() - t
out.update({
    "estimated": False, "reset_s": t_reset, "path_cache_in_reset_s": search_reset,
    "steps": steps, "steps_s": t_steps, "path_cache_total_s": spent["s"],
    "sets": {"plain": len(cache._plain), "protected": len(cache._prot0)},
    "tie_fallbacks": getattr(cache, "n_tie_fallbacks", 0),
    "exit_flush_s": t_flush, "files_written": wrote,
    "sets_digest": sets.hexdigest()[:16], "decisions_digest": h.hexdigest()[:16],
    "load_avg": os.getloadavg(),
})
print(json.dumps(out))
"""


def _child(case: str, steps: int, seed: int, env: dict[str, str], mode: str, sample: int) -> dict:
    t = time.perf_counter()
    got = subprocess.run(
        [sys.executable, "-c", CHILD, case, str(steps), str(seed), mode, str(sample)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if got.returncode != 0:
        raise RuntimeError(f"child {case} {mode} failed:\n{got.stderr[-3000:]}")
    res = json.loads(got.stdout.strip().splitlines()[-1])
    res["process_wall_s"] = time.perf_counter() - t
    res["load_avg_after"] = os.getloadavg()
    return res


def _n_sites(case: str, env: dict[str, str]) -> int:
    code = (
        "import sys\nfrom pcnalloc.config import env_config\n"
        "from pcnalloc.network.builder import cached_network\n"
        "n = cached_network(sys.argv[1], env_config(network={'case': sys.argv[1]}).network)\n"
        "print(n.n_sites)"
    )
    got = subprocess.run(
        [sys.executable, "-c", code, case], env=env, capture_output=True, text=True, check=True
    )
    return int(got.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="case118,case1354pegase,case9241pegase")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reference-max-sites", type=int, default=5000)
    ap.add_argument("--sample", type=int, default=150, help="pairs timed for an estimate")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    report: dict = {
        "benchmark": "paths",
        "python": sys.version.split()[0],
        "load_avg_start": os.getloadavg(),
        "cases": {},
    }
    for case in args.cases.split(","):
        tmp = Path(tempfile.mkdtemp(prefix="pcnalloc-bench-tree-"))
        base = {
            **os.environ,
            "PCNALLOC_CACHE_DIR": str(tmp),
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "NUMBA_NUM_THREADS": "1",
        }
        ref_env = {**base, "PCNALLOC_PATH_ENGINE": "reference"}
        tree_env = {**base, "PCNALLOC_PATH_ENGINE": "tree"}
        try:
            n_sites = _n_sites(case, base)  # stores the network
            # compiles the env's numba kernels (cached on disk) so no variant pays for it
            _child("case14", 1, args.seed, tree_env, "run", 0)
            estimate = n_sites > args.reference_max_sites
            runs: dict[str, list[dict]] = {"cold_reference": [], "cold_tree": [], "warm_tree": []}
            for _ in range(args.repeats):
                shutil.rmtree(tmp / "paths", ignore_errors=True)
                if estimate:
                    runs["cold_reference"].append(
                        _child(case, 0, args.seed, ref_env, "estimate", args.sample)
                    )
                else:
                    runs["cold_reference"].append(
                        _child(case, args.steps, args.seed, ref_env, "run", 0)
                    )
                    # the estimate where the measurement exists, to judge it by
                    runs.setdefault("cold_reference_estimate", []).append(
                        _child(case, 0, args.seed, ref_env, "estimate", args.sample)
                    )
                shutil.rmtree(tmp / "paths", ignore_errors=True)
                runs["cold_tree"].append(_child(case, args.steps, args.seed, tree_env, "run", 0))
                runs["warm_tree"].append(_child(case, args.steps, args.seed, tree_env, "run", 0))
                print(
                    case,
                    {
                        k: round(v[-1].get("reset_s", v[-1].get("path_search_s", 0.0)), 2)
                        for k, v in runs.items()
                    },
                    file=sys.stderr,
                )
                print(json.dumps({case: runs}), file=sys.stderr)  # kept if a later case fails
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        measured = [r for rs in runs.values() for r in rs if not r["estimated"]]
        report["cases"][case] = {
            "n_sites": n_sites,
            "steps": args.steps,
            "reference_estimated": estimate,
            "same_sets": len({r["sets_digest"] for r in measured}) == 1,
            "same_decisions": len({r["decisions_digest"] for r in measured}) == 1,
            "runs": runs,
        }
    report["load_avg_end"] = os.getloadavg()
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
