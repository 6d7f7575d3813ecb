"""Benchmark: the same sweep on the serial, process-pool and Ray executors (JSON on stdout).

Usage::

    python benchmarks/bench_sweep.py [--policies ksp-ff,llp,sp-ff,random] [--case case30]
        [--loads 1.0,1.5] [--seeds 0-1] [--requests 500] [--workers 2] [--no-ray]

For each executor: ``startup_s`` (start the workers and import pcnalloc in them),
``sweep_s`` (the sweep itself), ``total_s`` and ``speedup_vs_serial`` on both the sweep and
the total; ``identical_metrics`` checks that every run's metrics equal the serial ones.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

from pcnalloc.core import make_executor
from pcnalloc.evaluate.sweep import parse_seeds, sweep


def _warm(_: int) -> int:
    """Worker warm-up: import the sweep code (and the simulator under it)."""
    import pcnalloc.evaluate.sweep  # noqa: F401

    return os.getpid()


def bench(kind: str, args: argparse.Namespace) -> dict:
    t0 = time.perf_counter()
    ex = make_executor(kind, args.workers)
    try:
        ex.map_ordered(_warm, list(range(4 * ex.workers)))
        t1 = time.perf_counter()
        res = sweep(
            args.policies.split(","),
            [args.case],
            [float(x) for x in args.loads.split(",")],
            parse_seeds(args.seeds),
            args.requests,
            ex,
        )
        t2 = time.perf_counter()
    finally:
        ex.close()
    t3 = time.perf_counter()
    return {
        "executor": kind,
        "workers": ex.workers,
        "runs": len(res["runs"]),
        "startup_s": round(t1 - t0, 2),
        "sweep_s": round(t2 - t1, 2),
        "total_s": round(t3 - t0, 2),
        "_metrics": [r["metrics"] for r in res["runs"]],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policies", default="ksp-ff,llp,sp-ff,random")
    ap.add_argument("--case", default="case30")
    ap.add_argument("--loads", default="1.0,1.5")
    ap.add_argument("--seeds", default="0-1")
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-ray", action="store_true")
    args = ap.parse_args()
    kinds = ["serial", "process"] + ([] if args.no_ray else ["ray"])
    rows = []
    for kind in kinds:
        try:
            rows.append(bench(kind, args))
        except Exception as err:  # a missing optional executor is reported, not fatal
            rows.append({"executor": kind, "error": f"{type(err).__name__}: {err}"})
    base = rows[0]
    serial_metrics = base.get("_metrics")
    for r in rows:
        if "error" in r:
            continue
        r["speedup_sweep_vs_serial"] = round(base["sweep_s"] / r["sweep_s"], 2)
        r["speedup_total_vs_serial"] = round(base["total_s"] / r["total_s"], 2)
        r["identical_metrics"] = r.pop("_metrics") == serial_metrics
    print(
        json.dumps(
            {
                "benchmark": "sweep executors",
                "grid": vars(args),
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "load_average_1min": round(os.getloadavg()[0], 2),
                },
                "results": rows,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
