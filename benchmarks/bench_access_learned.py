"""Access layer, the learned alternative: teacher → library → student on ``pcnalloc/Access-v0``
against matching / RAF / RAOM and the references on the same seeds, plus the coupled example.

Usage::

    python benchmarks/bench_access_learned.py [--train-seeds 1] [--episodes 120]
        [--seeds 10] [--out bench_access_learned.json]

For every training seed: the pipeline of ``pcnalloc access train`` (teacher episodes,
library rollouts, distillation), then ``compare`` at the default I = 100 and, to see whether
the per-device student carries over to other device counts it was not trained on, at
I = 60 and I = 120 (student, teacher, matching, all-5G). Every comparison is per-seed paired
(learned − other, 95 % t interval, verdict from :mod:`pcnalloc.evaluate.stats`). Timing: the
student's and the matching's epoch mode decision and the shared slot decision for 100
devices on one thread. Finally one coupled run (matching and the student, case30 backbone,
KSP-FF) with its conservation check. Load averages are recorded next to every stage.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from pcnalloc.access import AccessModel, access_config, make_access_policy
from pcnalloc.access.policies import MatchingPolicy, matching_allocate
from pcnalloc.twolayer.compare import compare
from pcnalloc.twolayer.teacher import AccessTeacherConfig
from pcnalloc.twolayer.train import train_pipeline

BASELINES = ("matching", "raf", "raom", "all-5g", "all-plc", "greedy")


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def mode_timing(folder: Path, repeat: int = 200) -> dict[str, Any]:
    """p50/p99 µs of one epoch mode decision (student, matching) and one slot decision."""
    cfg = access_config()
    model = AccessModel(cfg, 0)
    out: dict[str, Any] = {}
    for name, pol in (
        ("student_modes", make_access_policy(f"learned@{folder}")),
        ("matching_modes", MatchingPolicy()),
    ):
        ns = []
        for _ in range(repeat):
            t = time.perf_counter_ns()
            pol.modes(model)
            ns.append(time.perf_counter_ns() - t)
        a = np.asarray(ns) / 1e3
        out[name] = {"p50_us": float(np.percentile(a, 50)), "p99_us": float(np.percentile(a, 99))}
    model.begin_epoch(make_access_policy(f"learned@{folder}").modes(model))
    view = model.slot_view()
    ns = []
    for _ in range(repeat):
        t = time.perf_counter_ns()
        matching_allocate(view)
        ns.append(time.perf_counter_ns() - t)
    a = np.asarray(ns) / 1e3
    out["slot_allocation"] = {
        "p50_us": float(np.percentile(a, 50)),
        "p99_us": float(np.percentile(a, 99)),
    }
    out["loadavg"] = loadavg()
    return out


def brief(res: dict[str, Any]) -> dict[str, Any]:
    """Means and paired rows without the per-seed tables' bulk (those stay in ``per_seed``)."""
    return {
        "policies": {
            k: {
                "mean_weighted_sum": v["mean"]["weighted_sum"],
                "mean_traffic_cost": v["mean"]["traffic_cost"],
                "stable_share": v["stable_share"],
                "guard_overrides": v["guard_overrides"],
                "guard_decisions": v["guard_decisions"],
                "per_seed_weighted_sum": v["per_seed"]["weighted_sum"],
            }
            for k, v in res["policies"].items()
        },
        "paired": res["paired"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train-seeds", type=int, default=1)
    ap.add_argument("--episodes", type=int, default=120)
    ap.add_argument("--library-episodes", type=int, default=40)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument(
        "--encoder",
        choices=("mlp", "gnn"),
        default=AccessTeacherConfig.model_fields["encoder"].default,
        help="access teacher encoder (the documented tables before the gnn teacher: mlp)",
    )
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    seeds = list(range(args.seeds))
    out: dict[str, Any] = {
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "threads": os.environ.get("OMP_NUM_THREADS"),
        "eval_seeds": seeds,
        "encoder": args.encoder,
        "loadavg_start": loadavg(),
        "runs": [],
    }
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for ts in range(args.train_seeds):
            folder = Path(tmp) / f"learned{ts}"
            t0 = time.perf_counter()
            rep = train_pipeline(
                folder,
                access_config(),
                AccessTeacherConfig(episodes=args.episodes, seed=ts, encoder=args.encoder),
                library_episodes=args.library_episodes,
            )
            run: dict[str, Any] = {
                "train_seed": ts,
                "train_s": time.perf_counter() - t0,
                "train_seconds": rep["seconds"],
                "train_loadavg": loadavg(),
                "teacher_last_rewards": [r["mean_reward"] for r in rep["teacher_log"][-10:]],
                "library_rows": rep["library"]["rows"],
                "student": rep["student"],
            }
            learned = [f"learned@{folder}", f"teacher@{folder}"]
            t0 = time.perf_counter()
            run["default"] = brief(compare([*learned, *BASELINES], access_config(), seeds))
            run["default"]["wall_s"] = time.perf_counter() - t0
            run["default"]["loadavg"] = loadavg()
            for n in (60, 120):
                t0 = time.perf_counter()
                cell = brief(
                    compare([*learned, "matching", "all-5g"], access_config(devices=n), seeds)
                )
                cell["wall_s"] = time.perf_counter() - t0
                cell["loadavg"] = loadavg()
                run[f"devices_{n}"] = cell
            run["timing_100_devices"] = mode_timing(folder)
            if ts == 0:
                from pcnalloc.baselines import make_policy
                from pcnalloc.config import EnvConfig
                from pcnalloc.twolayer.coupling import run_coupled

                coupled = {}
                for spec in ("matching", f"learned@{folder}"):
                    r = run_coupled(
                        make_access_policy(spec),
                        access_config(),
                        make_policy("ksp-ff"),
                        EnvConfig(),
                        seed=0,
                    )
                    coupled[spec.split("@")[0]] = {
                        "access_weighted_sum": r["access"]["metrics"]["weighted_sum"],
                        "delivered": r["delivered"],
                        "conservation": r["conservation"],
                        "backbone": r["backbone"],
                    }
                coupled["loadavg"] = loadavg()
                out["coupled_case30_ksp_ff_seed0"] = coupled
            out["runs"].append(run)
    out["wall_s"] = time.perf_counter() - t_all
    out["loadavg_end"] = loadavg()
    text = json.dumps(out, indent=2, default=str)
    for ts in range(args.train_seeds):  # report names, not temp paths
        text = text.replace(str(Path(tmp) / f"learned{ts}"), f"TRAINED{ts}")
    if args.out:
        from pcnalloc.fileio import write_atomic

        write_atomic(args.out, text + "\n")
    print(text)


if __name__ == "__main__":
    main()
