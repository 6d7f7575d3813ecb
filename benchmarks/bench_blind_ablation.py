"""Loss ablation on the validity-blind edge student: KL only vs + hard vs + hard + soft.

Builds a library from a classical teacher (default ``cspf-pe:4``, K = 4 like the DQN) on one
case, distils a ``mlp-blind`` student three times on the same split and seed, and reports per
variant (fidelity on the test split of held-out episodes, which model selection never saw):
raw hard-violation proposal rate (and count), its reduction vs KL only, top-1 agreement, and
closed loop on the evaluation seeds (< 1000, used for nothing else) for the raw student, the
masked student and the raw student behind the rule engine (``+rules``, with its
interceptions): per mode the weighted value ratio and the per-seed paired difference
variant − KL-only with its 95 % Student-t CI (:func:`pcnalloc.evaluate.stats.paired`), as a
share of KL-only's value. The issue's target reads: ≥ 10× fewer raw hard proposals at
≤ 1 % closed-loop value cost.

With ``--latent`` a second row group does the same for the latent student on the 128-d state
of a Double-DQN teacher (``--dqn PATH``, or one trained here for ``--dqn-steps`` steps): its
library comes from that teacher, and its closed loop encodes each observation with it.

Writes one JSON (``--out``) with the load average before, after and after each group.

Usage: OMP_NUM_THREADS=1 python benchmarks/bench_blind_ablation.py [--teacher cspf-pe:4]
       [--case case30] [--load 1.5] [--episodes 40] [--requests 400] [--epochs 20]
       [--eval-seeds 300-309] [--eval-requests 500] [--lambda-hard 100] [--test-fraction 0.2]
       [--latent] [--dqn PATH] [--dqn-steps 3000] [--out out/bench/blind_ablation.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from distill_common import loadavg, parse_seeds, train_dqn  # benchmarks/ is not a package
from pcnalloc.baselines.registry import make_policy
from pcnalloc.config import env_config
from pcnalloc.distill import DistillConfig
from pcnalloc.distill.run import run_distillation
from pcnalloc.evaluate.stats import mean_ci, paired
from pcnalloc.library.build import build_library


def _mode(name: str) -> str:
    return "+rules" if name.endswith("+rules") else "masked" if name.endswith("masked") else "raw"


def group_rows(report: dict[str, Any], seeds: list[int]) -> list[dict[str, Any]]:
    """One row per ablation variant, with paired closed-loop differences vs KL only."""
    per_seed: dict[str, dict[str, dict[int, float]]] = {}
    for r in report["ablation"]:
        st = (r.get("closed_loop") or {}).get("students", {})
        per_seed[r["variant"]] = {
            _mode(k): dict(zip(seeds, v["value_ratio_per_episode"], strict=True))
            for k, v in st.items()
        }
    base = report["ablation"][0]
    base_rate = base["held_out"]["hard_proposal_rate"]
    rows = []
    for r in report["ablation"]:
        h = r["held_out"]
        st = (r.get("closed_loop") or {}).get("students", {})
        loop: dict[str, Any] = {}
        for k, v in st.items():
            m = _mode(k)
            mine, ref = per_seed[r["variant"]][m], per_seed[base["variant"]][m]
            d = paired(mine, ref)
            ref_mean = mean_ci(list(ref.values()))["mean"]
            loop[m] = {
                "value": mean_ci(list(mine.values())),
                "value_per_seed": mine,
                "minus_kl": d,
                "minus_kl_share": {
                    "mean": d["mean_diff"] / ref_mean,
                    "half_width": (d["half_width"] or 0.0) / ref_mean,
                },
                "refused": v["outcomes"].get("refused", 0),
                "intercepted": v["intercepted"],
                "decisions": v["decisions"],
                "executed_hard_violations": v["executed_hard_violations"],
            }
        rate = h["hard_proposal_rate"]
        rows.append(
            {
                "variant": r["variant"],
                "lambda_hard": r["lambda_hard"],
                "lambda_soft": r["lambda_soft"],
                "split": h["split"],
                "test_rows": h["rows"],
                "hard_proposal_rate": rate,
                "hard_proposals": round(rate * h["rows"]),
                "reduction_vs_kl": base_rate / rate if rate > 0 else float("inf"),
                "top1_agreement": h["top1_agreement"],
                "top1_agreement_masked": h["top1_agreement_masked"],
                "kl": h["kl"],
                "closed_loop": loop,
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--teacher", default="cspf-pe:4")
    ap.add_argument("--case", default="case30")
    ap.add_argument("--load", type=float, default=1.5)
    ap.add_argument("--episodes", type=int, default=40)
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--eval-seeds", default="300-309")
    ap.add_argument("--eval-requests", type=int, default=500)
    ap.add_argument("--arch", default="mlp-blind")
    ap.add_argument("--lambda-hard", type=float, default=100.0)
    ap.add_argument("--test-fraction", type=float, default=0.2)
    ap.add_argument("--latent", action="store_true", help="add the latent-student row group")
    ap.add_argument("--latent-episodes", type=int, default=16)
    ap.add_argument("--latent-eval-requests", type=int, default=300)
    ap.add_argument("--dqn", type=Path, default=None)
    ap.add_argument("--dqn-steps", type=int, default=3000)
    ap.add_argument("--out", type=Path, default=Path("out/bench/blind_ablation.json"))
    a = ap.parse_args()
    load0 = loadavg()
    t0 = time.perf_counter()
    seeds = parse_seeds(a.eval_seeds)
    cfg = DistillConfig(epochs=a.epochs, lambda_hard=a.lambda_hard, test_fraction=a.test_fraction)
    groups: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        lib = Path(tmp) / "lib"
        built = build_library(
            a.teacher,
            lib,
            cases=[a.case],
            loads=[a.load],
            episodes=a.episodes,
            requests=a.requests,
            explore=0.05,
            env=env_config(network={"case": a.case}),
        )
        t_lib = time.perf_counter() - t0
        report = run_distillation(
            lib,
            kind="edge",
            arch=a.arch,
            cfg=cfg,
            out_dir=Path(tmp) / "student",
            teacher=make_policy(a.teacher),
            eval_seeds=seeds,
            requests=a.eval_requests,
            ablation=True,
        )
        groups.append(
            {
                "student": f"edge {a.arch}",
                "teacher": a.teacher,
                "library_rows": built.rows,
                "library_s": round(t_lib, 1),
                "eval_requests": a.eval_requests,
                "teacher_value": mean_ci(
                    report["closed_loop"]["teacher"]["value_ratio_per_episode"]
                ),
                "variants": group_rows(report, seeds),
                "wall_s": round(time.perf_counter() - t0, 1),
                "loadavg_after": loadavg(),
            }
        )
        print(json.dumps(groups[-1]), flush=True)
        if a.latent:
            from pcnalloc.teacher import TeacherPolicy

            t1 = time.perf_counter()
            dqn = a.dqn or train_dqn(a.case, a.dqn_steps, Path(tmp) / "dqn")
            lib2 = Path(tmp) / "lib-dqn"
            built2 = build_library(
                dqn,
                lib2,
                cases=[a.case],
                loads=[a.load],
                episodes=a.latent_episodes,
                requests=a.requests,
                explore=0.05,
            )
            rep2 = run_distillation(
                lib2,
                kind="latent",
                cfg=cfg,
                out_dir=Path(tmp) / "latent",
                teacher=TeacherPolicy.load(dqn),
                eval_seeds=seeds,
                requests=a.latent_eval_requests,
                ablation=True,
            )
            groups.append(
                {
                    "student": "latent (128-d teacher state)",
                    "teacher": f"dqn {a.dqn or f'trained here, {a.dqn_steps} steps'}",
                    "library_rows": built2.rows,
                    "eval_requests": a.latent_eval_requests,
                    "teacher_value": mean_ci(
                        rep2["closed_loop"]["teacher"]["value_ratio_per_episode"]
                    ),
                    "variants": group_rows(rep2, seeds),
                    "wall_s": round(time.perf_counter() - t1, 1),
                    "loadavg_after": loadavg(),
                }
            )
            print(json.dumps(groups[-1]), flush=True)
    out = {
        "case": a.case,
        "load": a.load,
        "episodes": a.episodes,
        "requests": a.requests,
        "epochs": a.epochs,
        "lambda_hard": a.lambda_hard,
        "test_fraction": a.test_fraction,
        "eval_seeds": seeds,
        "wall_s": round(time.perf_counter() - t0, 1),
        "loadavg_before": load0,
        "loadavg_after": loadavg(),
        "groups": groups,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = a.out.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps(out, indent=2) + "\n")
    tmp_out.replace(a.out)
    print(json.dumps({k: out[k] for k in ("wall_s", "loadavg_before", "loadavg_after")}))


if __name__ == "__main__":
    main()
