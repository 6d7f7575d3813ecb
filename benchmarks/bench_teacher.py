"""Teacher benchmarks, printed as JSON: training steps/s, library rows/s, decision latency.

Usage: ``python benchmarks/bench_teacher.py [--checkpoint out/teacher_case30] [--case case30]``

- ``train``: env steps/s of the default training loop (ε-greedy acting + one batch-64 update
  every ``train_every`` steps) over a short run, and gradient steps/s alone.
- ``library``: rows/s of :func:`build_library` (serial, one process; lockstep batching),
  with and without the episode warm start (the env's reset cost).
- ``decision``: teacher ``act`` latency per observation (p50/p99, µs) and batched scoring.
All figures use one torch thread.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pcnalloc.envs import PowerCommEnv
from pcnalloc.library.build import build_library
from pcnalloc.nn import EncoderShape, collate
from pcnalloc.teacher import (
    DoubleDQN,
    ReplayBuffer,
    TeacherPolicy,
    Trainer,
    teacher_config,
)


def bench_train_variants(case: str, steps: int) -> list[dict]:
    """Env steps/s of training, before (one env, one update per 4 steps) and after
    (vectorised acting; updates every ``train_every`` env steps), in one run."""
    # The vectorised runs are long enough for each env to finish one 1,000-request episode,
    # so the warm-start reset (≈ 0.25 s on case30) counts as often as in real training.
    variants = [
        {"n_envs": 1, "train_every": 4, "steps": max(steps // 2, 400)},
        {"n_envs": 16, "train_every": 4, "steps": steps},
        {"n_envs": 16, "train_every": 16, "steps": 4 * steps},
        {"n_envs": 16, "train_every": 64, "steps": 16_000},
        {"n_envs": 16, "train_every": 128, "steps": 16_000},
    ]
    out = []
    for v in variants:
        cfg = teacher_config(
            env={"network": {"case": case}}, learning_starts=200, eval_every=0, **v
        )
        with tempfile.TemporaryDirectory() as d:
            tr = Trainer(cfg, d)
            t = time.perf_counter()
            res = tr.run()
            wall = time.perf_counter() - t
        out.append(
            {
                **v,
                "gradient_steps": res.updates,
                "samples_per_env_step": round(cfg.batch_size / cfg.train_every, 2),
                "train_env_steps_per_s": round(res.step / wall, 1),
                "wall_s": round(wall, 1),
                "loadavg": open("/proc/loadavg").read().split()[:3],
            }
        )
    return out


def bench_train(case: str, steps: int) -> dict:
    cfg = teacher_config(
        env={"network": {"case": case}}, steps=steps, learning_starts=200, eval_every=0
    )
    with tempfile.TemporaryDirectory() as d:
        tr = Trainer(cfg, d)
        t = time.perf_counter()
        res = tr.run()
        wall = time.perf_counter() - t
    # Gradient steps alone on a filled buffer.
    env = PowerCommEnv(cfg.env)
    obs, _ = env.reset(seed=1)
    buf = ReplayBuffer(2000, obs)
    slot = buf.add_obs(obs, continues=False)
    for _ in range(300):
        a = int(np.flatnonzero(obs["action_mask"])[0])
        obs, r, *_ = env.step(a)
        buf.set_step(slot, a, r)
        slot = buf.add_obs(obs, continues=True)
    learner = DoubleDQN(EncoderShape.for_env(cfg.env, **cfg.encoder_sizes()), cfg)
    rng = np.random.default_rng(0)
    learner.update(*buf.sample(cfg.batch_size, rng))
    n = 30
    t = time.perf_counter()
    for _ in range(n):
        learner.update(*buf.sample(cfg.batch_size, rng))
    upd = n / (time.perf_counter() - t)
    return {
        "case": case,
        "env_steps": res.step,
        "gradient_steps": res.updates,
        "train_env_steps_per_s": round(res.step / wall, 1),
        "gradient_steps_per_s_batch64": round(upd, 1),
        "default_config_estimate_min": round((30_000 / (res.step / wall)) / 60.0, 1),
    }


def bench_library(ckpt: str, case: str, requests: int, lockstep: int) -> dict:
    out = {}
    for warm in (True, False):
        with tempfile.TemporaryDirectory() as d:
            p = Path(d)
            src = ckpt
            if not warm:
                ck = torch.load(ckpt, weights_only=False)
                ck["env_config"]["traffic"]["warm_start"] = False
                src = str(p / "nowarm.pt")
                torch.save(ck, src)
            res = build_library(
                src,
                p / "lib",
                cases=[case],
                loads=[1.0],
                episodes=lockstep,
                requests=requests,
                lockstep=lockstep,
            )
        key = "with_warm_start" if warm else "without_warm_start"
        out[key] = {
            "rows": res.rows,
            "wall_s": round(res.wall_s, 2),
            "rows_per_s": round(res.rows_per_s, 1),
        }
    return out


def bench_decision(policy: TeacherPolicy, case: str, n: int) -> dict:
    cfg = policy.env_config.model_copy(update={})
    d = cfg.model_dump()
    d["network"]["case"] = case
    env = PowerCommEnv(type(cfg).model_validate(d))
    obs, _ = env.reset(seed=5)
    observations = []
    for _ in range(n):
        observations.append(obs)
        obs, *_ = env.step(policy.act(obs))
    ns = []
    for o in observations:
        t = time.perf_counter_ns()
        policy.act(o)
        ns.append(time.perf_counter_ns() - t)
    b = collate(observations[:64])
    with torch.no_grad():
        policy.model(b)
        t = time.perf_counter()
        for _ in range(5):
            policy.model(b)
        batched = (time.perf_counter() - t) / 5 / 64
    return {
        "case": case,
        "act_latency_us_p50": round(float(np.percentile(ns, 50)) / 1e3, 1),
        "act_latency_us_p99": round(float(np.percentile(ns, 99)) / 1e3, 1),
        "batched64_us_per_obs": round(batched * 1e6, 1),
        "model_bytes": policy.model_bytes,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="out/teacher_case30", help="teacher .pt or folder")
    ap.add_argument("--case", default="case30")
    ap.add_argument("--train-steps", type=int, default=800)
    ap.add_argument("--library-requests", type=int, default=200)
    ap.add_argument("--lockstep", type=int, default=8)
    ap.add_argument("--decisions", type=int, default=300)
    ap.add_argument(
        "--only-train",
        action="store_true",
        help="only the before/after training throughput (no checkpoint needed)",
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.only_train:
        res = {
            "torch_threads": 1,
            "loadavg_start": open("/proc/loadavg").read().split()[:3],
            "train_variants": bench_train_variants(args.case, args.train_steps),
            "loadavg_end": open("/proc/loadavg").read().split()[:3],
        }
        print(json.dumps(res, indent=2))
        return
    from pcnalloc.teacher import resolve_checkpoint

    ckpt = str(resolve_checkpoint(args.checkpoint))
    pol = TeacherPolicy.load(ckpt)
    result = {
        "torch_threads": torch.get_num_threads(),
        "checkpoint": ckpt,
        "decision": bench_decision(pol, args.case, args.decisions),
        "library": bench_library(ckpt, args.case, args.library_requests, args.lockstep),
        "train": bench_train(args.case, args.train_steps),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
