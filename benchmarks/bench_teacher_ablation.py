"""Teacher ablation: per-decision γ vs time-based discount, with and without demonstrations,
at several training budgets — each teacher paired against tuned heuristics on held-out seeds.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_teacher_ablation.py \
        --variants decision,decision+demos,time,time+demos --steps 6000 \
        --seeds 200-207 --cells normal@1.0,storm@1.0,normal@1.5 --out ablation.json

Every variant trains on the same env as ``pcnalloc run`` (case30, loads 1.0 and 1.5, run
seed 0) and is evaluated, like every heuristic, on the same held-out seeds of each cell
(scenario family @ load); the JSON holds per-seed values, the paired difference to each
heuristic with its 95 % CI and verdict (:func:`pcnalloc.evaluate.stats.paired`), the wall
time of training and the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from pcnalloc.baselines import make_policy
from pcnalloc.config import EnvConfig
from pcnalloc.evaluate import run_policy
from pcnalloc.evaluate.stats import mean_ci, paired
from pcnalloc.teacher import teacher_config, train_teacher

VARIANTS: dict[str, dict[str, Any]] = {
    "decision": {},
    "decision+demos": {"demo_policy": "cspf-pe:4"},
    "time": {"discount": "time", "n_step": 3},
    "time+demos": {"discount": "time", "n_step": 3, "demo_policy": "cspf-pe:4"},
    "k16+demos": {"env": {"k_paths": 16}, "demo_policy": "cspf-pe:16"},
    "decision+pv-demos": {"demo_policy": "cspf-pv:4@ratio=1"},
    "k16": {"env": {"k_paths": 16}},
    "pool16": {"env": {"candidate_pool": 16}},
    "pool16+pv-demos": {"env": {"candidate_pool": 16}, "demo_policy": "cspf-pv:16@ratio=1"},
    "mixed-train": {"env": {"traffic": {"scenario": "mixed"}}},
    "pool16+mixed-train": {"env": {"candidate_pool": 16, "traffic": {"scenario": "mixed"}}},
    # Replay ratio: 16 envs, one update per 32 / 64 env steps (4 / 1 samples per env step
    # instead of 16) for 8× / 16× the env steps, so the gradient steps stay ≈ those of the
    # default (the learner's step dominates the wall time: it is the throughput lever).
    "pool16+r32": {
        "env": {"candidate_pool": 16},
        "n_envs": 16,
        "train_every": 32,
        "steps_scale": 8,
    },
    "pool16+r64": {
        "env": {"candidate_pool": 16},
        "n_envs": 16,
        "train_every": 64,
        "steps_scale": 16,
    },
}
"""Named teacher-config overrides; every variant starts from ``pcnalloc run``'s teacher.
``steps_scale`` multiplies the ``--steps`` budget for that variant."""

RUN_TEACHER = {
    "loads": [1.0, 1.5],
    "learning_starts": 500,
    "eval_every": 0,
    "checkpoint_every": 100_000,
}


def _seeds(text: str) -> list[int]:
    if "-" in text:
        a, b = text.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(s) for s in text.split(",")]


def _cells(text: str) -> list[tuple[str, float]]:
    out = []
    for c in text.split(","):
        fam, _, load = c.partition("@")
        out.append((fam, float(load or 1.0)))
    return out


def _env(case: str, family: str, load: float, requests: int, k: int = 4) -> EnvConfig:
    scenario = None if family == "none" else family
    return EnvConfig.model_validate(
        {
            "network": {"case": case},
            "traffic": {"load": load, "scenario": scenario},
            "episode_requests": requests,
            "k_paths": k,
        }
    )


def _play(spec: str, case: str, cells, seeds, requests: int) -> dict[str, dict[int, float]]:
    pol = make_policy(spec)
    out: dict[str, dict[int, float]] = {}
    for fam, load in cells:
        cfg = _env(case, fam, load, requests)
        vals = {}
        for s in seeds:
            m = run_policy(pol, cfg, seed=s, requests=requests)["metrics"]
            vals[s] = m["weighted_value_ratio"]
        out[f"{fam}@{load}"] = vals
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", default="decision,decision+demos,time,time+demos")
    ap.add_argument("--steps", default="6000", help="comma-separated training budgets")
    ap.add_argument("--case", default="case30")
    ap.add_argument("--seeds", default="200-207")
    ap.add_argument("--cells", default="normal@1.0,storm@1.0,normal@1.5")
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--heuristics", default="cspf-pv:16@ratio=1,cspf-pe:16,llp:16")
    ap.add_argument("--teacher-seed", type=int, default=0)
    ap.add_argument("--out", default="teacher_ablation.json")
    a = ap.parse_args()
    torch.set_num_threads(1)
    seeds, cells = _seeds(a.seeds), _cells(a.cells)
    result: dict[str, Any] = {
        "case": a.case,
        "seeds": seeds,
        "cells": [f"{f}@{x}" for f, x in cells],
        "loadavg_start": os.getloadavg(),
        "heuristics": {},
        "variants": [],
    }
    print(f"heuristics {a.heuristics} on {len(cells)} cells × {len(seeds)} seeds", flush=True)
    for h in a.heuristics.split(","):
        result["heuristics"][h] = _play(h, a.case, cells, seeds, a.requests)
    for steps in [int(x) for x in a.steps.split(",")]:
        for name in a.variants.split(","):
            over = dict(VARIANTS[name])
            env_over = {"network": {"case": a.case}, **over.pop("env", {})}
            v_steps = steps * int(over.pop("steps_scale", 1))
            cfg = teacher_config(
                env=env_over, steps=v_steps, seed=a.teacher_seed, **RUN_TEACHER, **over
            )
            with tempfile.TemporaryDirectory() as d:
                t0 = time.perf_counter()
                la0 = os.getloadavg()
                res = train_teacher(cfg, d)
                wall = time.perf_counter() - t0
                k = cfg.env.k_paths
                spec = f"teacher@{Path(d) / res.checkpoint.name}"
                pol = make_policy(spec)
                values: dict[str, dict[int, float]] = {}
                for fam, load in cells:
                    ecfg = _env(a.case, fam, load, a.requests, k)
                    values[f"{fam}@{load}"] = {
                        s: run_policy(pol, ecfg, seed=s, requests=a.requests)["metrics"][
                            "weighted_value_ratio"
                        ]
                        for s in seeds
                    }
            row: dict[str, Any] = {
                "variant": name,
                "steps": v_steps,
                "gradient_steps": res.updates,
                "train_wall_s": round(wall, 1),
                "train_steps_per_s": round(v_steps / wall, 1),
                "loadavg_train": [la0, os.getloadavg()],
                "demos": res.demos,
                "value": {c: mean_ci(list(v.values())) for c, v in values.items()},
                "per_seed": values,
                "paired": {
                    h: {c: paired(values[c], hv[c]) for c in values}
                    for h, hv in result["heuristics"].items()
                },
            }
            result["variants"].append(row)
            summary = {
                c: f"{row['value'][c]['mean']:.4f} "
                + " ".join(
                    f"{h}:{p[c]['mean_diff']:+.4f}±{p[c]['half_width'] or 0:.4f}({p[c]['verdict']})"
                    for h, p in row["paired"].items()
                )
                for c in values
            }
            print(f"{name} steps={v_steps} wall={wall:.0f}s {json.dumps(summary)}", flush=True)
            Path(a.out).write_text(json.dumps(result, indent=1, default=str))
    result["loadavg_end"] = os.getloadavg()
    Path(a.out).write_text(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()
