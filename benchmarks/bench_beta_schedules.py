"""Algorithm distillation: student closed-loop value vs its teacher, per teacher × β schedule.

Teachers: classical specs (``cspf-pe:4``, ``trunk:4@reserve=0.1``), the hindsight MILP oracle
(``milp:4@time_limit=S``) and a Double-DQN checkpoint (``--dqn PATH``, or one trained here for
``--dqn-steps`` steps on the case). Each classical and DQN teacher fills one library with its
rows on every scenario family (``build_library(scenario=[…])``, rows tagged by family); the
oracle plays with grid events off (its documented assumption), so its library holds calm
windows only, as many episodes as the others in total. Per library an edge student is
distilled under each schedule: imitation only (task weight 0), ``fixed`` β = 1,
``increasing`` 0 → 1 and ``decreasing`` 1 → 0 (with the task term at ``--task-weight``).

Closed loop: every student (masked: what the deployed agent executes) and its teacher play the
same evaluation seeds (< 1000, used for nothing else) on every family at load ``--load``; per
cell the per-seed paired difference student − teacher of the weighted value ratio, its 95 %
Student-t CI (:func:`pcnalloc.evaluate.stats.paired`) and the verdict ahead / level / behind.
The oracle's online replay (:class:`pcnalloc.library.oracle.MilpOracle`: the window's optimum
played at arrival, first valid route where it is not valid online) needs the new requests to
be exogenous, which only the ``normal`` family gives (storm bursts follow the faults, cuts
insert restorations): its student has a paired cell on ``normal`` only and an unpaired value
elsewhere (``teacher: null``).

Writes one JSON (``--out``) with the load average before, after and after each teacher.

Usage: OMP_NUM_THREADS=1 python benchmarks/bench_beta_schedules.py
       [--teachers "cspf-pe:4;trunk:4@reserve=0.1;milp:4@time_limit=1;dqn"] [--dqn PATH]
       [--dqn-steps 3000] [--case case30] [--load 1.0] [--families normal,storm,fiber-cut]
       [--episodes 8] [--requests 300] [--explore 0.1] [--epochs 15] [--task-weight 0.5]
       [--eval-seeds 300-307] [--eval-requests 400] [--out out/bench/beta_schedules.json]
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
from pcnalloc.config import EnvConfig, env_config
from pcnalloc.distill import DistillConfig
from pcnalloc.distill.policy import StudentPolicy
from pcnalloc.distill.run import run_distillation
from pcnalloc.evaluate import run_policy
from pcnalloc.evaluate.stats import mean_ci, paired
from pcnalloc.library.build import build_library
from pcnalloc.library.oracle import ORACLE_NAMES, MilpOracle

ORACLE_FAMILIES = ("normal",)
"""Families whose new requests do not depend on the decisions or grid events (oracle replay)."""


def family_env(case: str, load: float, family: str) -> EnvConfig:
    return env_config(network={"case": case}, traffic={"load": load, "scenario": family})


def per_seed(policy: Any, env: EnvConfig, seeds: list[int], requests: int) -> dict[int, float]:
    """Weighted value ratio of ``policy`` per evaluation seed on ``env``."""
    return {
        s: float(
            run_policy(policy, env, seed=s, requests=requests)["metrics"]["weighted_value_ratio"]
        )
        for s in seeds
    }


def teacher_policy(spec: str, dqn: Path | None, requests: int) -> Any:
    if spec == "dqn":
        from pcnalloc.teacher import TeacherPolicy

        return TeacherPolicy.load(dqn)
    if spec.partition(":")[0].partition("@")[0] in ORACLE_NAMES:
        return MilpOracle.from_spec(spec, requests)
    return make_policy(spec)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--teachers", default="cspf-pe:4;trunk:4@reserve=0.1;milp:4@time_limit=5;dqn")
    ap.add_argument("--dqn", type=Path, default=None)
    ap.add_argument("--dqn-steps", type=int, default=3000)
    ap.add_argument("--case", default="case30")
    ap.add_argument("--load", type=float, default=1.0)
    ap.add_argument("--families", default="normal,storm,fiber-cut")
    ap.add_argument("--episodes", type=int, default=8, help="library episodes per family")
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--explore", type=float, default=0.1)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--task-weight", type=float, default=0.5)
    ap.add_argument("--eval-seeds", default="300-307")
    ap.add_argument("--eval-requests", type=int, default=400)
    ap.add_argument("--oracle-episodes", type=int, default=24)
    ap.add_argument("--oracle-requests", type=int, default=100)
    ap.add_argument("--out", type=Path, default=Path("out/bench/beta_schedules.json"))
    a = ap.parse_args()
    load0 = loadavg()
    t0 = time.perf_counter()
    seeds = parse_seeds(a.eval_seeds)
    families = a.families.split(",")
    envs = {f: family_env(a.case, a.load, f) for f in families}
    variants = [
        ("imitation", dict(task_weight=0.0)),
        ("fixed", dict(task_weight=a.task_weight, beta_schedule="fixed", beta_max=1.0)),
        ("increasing", dict(task_weight=a.task_weight, beta_schedule="increasing")),
        ("decreasing", dict(task_weight=a.task_weight, beta_schedule="decreasing")),
    ]
    rows: list[dict[str, Any]] = []
    teachers_out: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        dqn = a.dqn
        dqn_s = 0.0
        if "dqn" in a.teachers.split(";") and dqn is None:
            t = time.perf_counter()
            dqn = train_dqn(a.case, a.dqn_steps, Path(tmp) / "dqn")
            dqn_s = time.perf_counter() - t
        for spec in a.teachers.split(";"):
            t_start = time.perf_counter()
            oracle = spec.partition(":")[0].partition("@")[0] in ORACLE_NAMES
            lib = Path(tmp) / f"lib-{len(teachers_out)}"
            source = str(dqn) if spec == "dqn" else spec
            if oracle:
                built = build_library(
                    source,
                    lib,
                    cases=[a.case],
                    loads=[a.load],
                    episodes=a.oracle_episodes,
                    requests=a.oracle_requests,
                    explore=a.explore,
                    env=env_config(network={"case": a.case}),
                )
            else:
                built = build_library(
                    [source] * len(families),
                    lib,
                    cases=[a.case],
                    loads=[a.load],
                    episodes=a.episodes,
                    requests=a.requests,
                    explore=a.explore,
                    scenario=families,
                    env=None if spec == "dqn" else env_config(network={"case": a.case}),
                )
            t_lib = time.perf_counter() - t_start
            n_eval = a.oracle_requests if oracle else a.eval_requests
            pol = teacher_policy(spec, dqn, n_eval)
            t_vals = {
                f: per_seed(pol, envs[f], seeds, n_eval)
                for f in families
                if not oracle or f in ORACLE_FAMILIES
            }
            teachers_out.append(
                {
                    "teacher": spec,
                    "library_rows": built.rows,
                    "library_s": round(t_lib, 1),
                    "eval_requests": n_eval,
                    "value_per_seed": t_vals,
                    "value": {f: mean_ci(list(v.values())) for f, v in t_vals.items()},
                }
            )
            print(json.dumps(teachers_out[-1]), flush=True)
            for name, kw in variants:
                out_dir = Path(tmp) / f"s-{len(teachers_out)}-{name}"
                rep = run_distillation(
                    lib, kind="edge", cfg=DistillConfig(epochs=a.epochs, **kw), out_dir=out_dir
                )
                student = StudentPolicy.load(out_dir, masked=True, name=f"student-{name}")
                for f in families:
                    paired_here = f in t_vals
                    n_f = n_eval if paired_here else a.eval_requests
                    s_vals = per_seed(student, envs[f], seeds, n_f)
                    row: dict[str, Any] = {
                        "teacher": spec,
                        "schedule": name,
                        **kw,
                        "family": f,
                        "eval_requests": n_f,
                        "test_top1": rep["held_out"]["top1_agreement"],
                        "student_value": mean_ci(list(s_vals.values())),
                        "student_value_per_seed": s_vals,
                        "teacher_value": None,
                        "student_minus_teacher": None,
                    }
                    if paired_here:
                        row["teacher_value"] = mean_ci(list(t_vals[f].values()))
                        row["student_minus_teacher"] = paired(s_vals, t_vals[f])
                    rows.append(row)
                    print(json.dumps({k: v for k, v in row.items() if "per_seed" not in k}))
            teachers_out[-1]["wall_s"] = round(time.perf_counter() - t_start, 1)
            teachers_out[-1]["loadavg_after"] = loadavg()
    out = {
        "case": a.case,
        "load": a.load,
        "families": families,
        "episodes_per_family": a.episodes,
        "requests": a.requests,
        "explore": a.explore,
        "epochs": a.epochs,
        "task_weight": a.task_weight,
        "eval_seeds": seeds,
        "eval_requests": a.eval_requests,
        "student": "edge mlp, masked",
        "dqn": str(a.dqn) if a.dqn else f"trained here, {a.dqn_steps} steps",
        "dqn_train_s": round(dqn_s, 1),
        "wall_s": round(time.perf_counter() - t0, 1),
        "loadavg_before": load0,
        "loadavg_after": loadavg(),
        "teachers": teachers_out,
        "rows": rows,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = a.out.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps(out, indent=2) + "\n")
    tmp_out.replace(a.out)
    print(json.dumps({k: out[k] for k in ("wall_s", "loadavg_before", "loadavg_after")}))


if __name__ == "__main__":
    main()
