"""Loss ablation on the validity-blind edge student: KL only vs + hard vs + hard + soft.

Builds a library from a classical teacher (default ``cspf-pe:4``, K = 4 like the DQN) on one
case, distils a ``mlp-blind`` student three times on the same split and seed, and reports per
variant (fidelity on the test split of held-out episodes, which model selection never saw):
raw hard-violation proposal rate, top-1 agreement, and closed-loop value vs the teacher for the
raw student, the masked student and the raw student behind the rule engine (with its number
of interceptions). Writes one JSON (``--out``) and prints it with the load average.

Usage: OMP_NUM_THREADS=1 python benchmarks/bench_blind_ablation.py [--teacher cspf-pe:4]
       [--case case30] [--load 1.5] [--episodes 24] [--requests 400] [--epochs 20]
       [--eval-seeds 300,301] [--eval-requests 500] [--lambda-hard 1] [--test-fraction 0.1]
       [--out out/bench/blind_ablation.json]
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
    ap.add_argument("--teacher", default="cspf-pe:4")
    ap.add_argument("--case", default="case30")
    ap.add_argument("--load", type=float, default=1.5)
    ap.add_argument("--episodes", type=int, default=24)
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--eval-seeds", default="300,301")
    ap.add_argument("--eval-requests", type=int, default=500)
    ap.add_argument("--arch", default="mlp-blind")
    ap.add_argument("--lambda-hard", type=float, default=1.0)
    ap.add_argument("--test-fraction", type=float, default=0.1)
    ap.add_argument("--out", type=Path, default=Path("out/bench/blind_ablation.json"))
    a = ap.parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        lib = Path(tmp) / "lib"
        env = env_config(network={"case": a.case})
        built = build_library(
            a.teacher,
            lib,
            cases=[a.case],
            loads=[a.load],
            episodes=a.episodes,
            requests=a.requests,
            explore=0.05,
            env=env,
        )
        t_lib = time.perf_counter() - t0
        report = run_distillation(
            lib,
            kind="edge",
            arch=a.arch,
            cfg=DistillConfig(
                epochs=a.epochs, lambda_hard=a.lambda_hard, test_fraction=a.test_fraction
            ),
            out_dir=Path(tmp) / "student",
            teacher=make_policy(a.teacher),
            eval_seeds=[int(s) for s in a.eval_seeds.split(",")],
            requests=a.eval_requests,
            ablation=True,
        )
    rows = []
    for r in report["ablation"]:
        h = r["held_out"]
        st = r.get("closed_loop", {}).get("students", {})
        rows.append(
            {
                "variant": r["variant"],
                "lambda_hard": r["lambda_hard"],
                "lambda_soft": r["lambda_soft"],
                "split": h["split"],
                "test_rows": h["rows"],
                "hard_proposal_rate": h["hard_proposal_rate"],
                "top1_agreement": h["top1_agreement"],
                "top1_agreement_masked": h["top1_agreement_masked"],
                "kl": h["kl"],
                "closed_loop": {
                    k: {
                        "value_ratio_vs_teacher": v["value_ratio_vs_teacher"],
                        "refused": v["outcomes"].get("refused", 0),
                        "intercepted": v["intercepted"],
                        "decisions": v["decisions"],
                    }
                    for k, v in st.items()
                },
            }
        )
    out = {
        "teacher": a.teacher,
        "arch": a.arch,
        "case": a.case,
        "load": a.load,
        "library_rows": built.rows,
        "library_s": round(t_lib, 1),
        "wall_s": round(time.perf_counter() - t0, 1),
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
        "variants": rows,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
