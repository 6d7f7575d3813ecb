"""Algorithm distillation: student closed-loop value vs its teacher per β schedule.

Builds one library per teacher (classical specs, e.g. ``cspf-pe:4``, ``trunk:4@reserve=0.1``)
on one case and load, then distils an edge student with the imitation weight β under each
schedule (``fixed`` β = 1, ``increasing`` 0 → 1, ``decreasing`` 1 → 0) plus the task term
(``--task-weight``), and a pure-imitation reference (task weight 0). Reports test-split top-1
agreement and closed-loop value of the masked student relative to its teacher on the same
seeds. Writes one JSON (``--out``) with the load average.

Usage: OMP_NUM_THREADS=1 python benchmarks/bench_beta_schedules.py [--teachers cspf-pe:4]
       [--case case30] [--load 1.5] [--episodes 24] [--requests 300] [--explore 0.1]
       [--epochs 20] [--task-weight 0.5] [--eval-seeds 300,301] [--eval-requests 500]
       [--out out/bench/beta_schedules.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from pcnalloc.baselines.registry import make_policy
from pcnalloc.config import env_config
from pcnalloc.distill import DistillConfig
from pcnalloc.distill.run import run_distillation
from pcnalloc.library.build import build_library


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--teachers", default="cspf-pe:4")
    ap.add_argument("--case", default="case30")
    ap.add_argument("--load", type=float, default=1.5)
    ap.add_argument("--episodes", type=int, default=24)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--explore", type=float, default=0.1)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--task-weight", type=float, default=0.5)
    ap.add_argument("--eval-seeds", default="300,301")
    ap.add_argument("--eval-requests", type=int, default=500)
    ap.add_argument("--out", type=Path, default=Path("out/bench/beta_schedules.json"))
    a = ap.parse_args()
    load0 = Path("/proc/loadavg").read_text().split()[:3]
    t0 = time.perf_counter()
    seeds = [int(s) for s in a.eval_seeds.split(",")]
    variants = [
        ("imitation", dict(task_weight=0.0)),
        ("fixed", dict(task_weight=a.task_weight, beta_schedule="fixed", beta_max=1.0)),
        ("increasing", dict(task_weight=a.task_weight, beta_schedule="increasing")),
        ("decreasing", dict(task_weight=a.task_weight, beta_schedule="decreasing")),
    ]
    rows = []
    for teacher in a.teachers.split(";"):
        with tempfile.TemporaryDirectory() as tmp:
            lib = Path(tmp) / "lib"
            build_library(
                teacher,
                lib,
                cases=[a.case],
                loads=[a.load],
                episodes=a.episodes,
                requests=a.requests,
                explore=a.explore,
                env=env_config(network={"case": a.case}),
            )
            for name, kw in variants:
                rep = run_distillation(
                    lib,
                    kind="edge",
                    cfg=DistillConfig(epochs=a.epochs, **kw),
                    out_dir=Path(tmp) / name,
                    teacher=make_policy(teacher),
                    eval_seeds=seeds,
                    requests=a.eval_requests,
                )
                st = rep["closed_loop"]["students"]
                rows.append(
                    {
                        "teacher": teacher,
                        "schedule": name,
                        **kw,
                        "test_top1": rep["held_out"]["top1_agreement"],
                        "teacher_value_ratio": rep["closed_loop"]["teacher"]["mean_value_ratio"],
                        "value_vs_teacher": {k: v["value_ratio_vs_teacher"] for k, v in st.items()},
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    out = {
        "case": a.case,
        "load": a.load,
        "epochs": a.epochs,
        "wall_s": round(time.perf_counter() - t0, 1),
        "loadavg_before": load0,
        "loadavg_after": Path("/proc/loadavg").read_text().split()[:3],
        "rows": rows,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
