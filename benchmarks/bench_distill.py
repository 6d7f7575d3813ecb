"""Distillation speed: training throughput and student inference latency; prints one JSON.

Measures, per student kind and arch (edge: compact vector; latent: 128-d teacher state, or
state + compact for the shared-head arch; arch ``shared`` scores every action with one head,
``mlp`` is a plain MLP):
- training rows/s (forward + loss + backward + Adam step, mean over the epochs run, library
  cached in memory, ``--threads`` torch threads),
- torch inference latency of the bare model, batch 1, one thread: p50 / p99 in µs,
- the same for ``StudentPolicy.act`` on an observation dict (numpy in, argmax out; edge only).

Without ``--library`` a synthetic library of the real row layout (``--rows`` random rows) is
written to a temporary folder, so the figures do not depend on a trained teacher.

Usage: python benchmarks/bench_distill.py [--library DIR] [--rows 50000] [--epochs 2]
       [--calls 20000] [--threads 1] [--checkpoint-edge DIR]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pcnalloc.config import EnvConfig
from pcnalloc.distill import DistillConfig, StudentPolicy, load_student, train_student
from pcnalloc.library import LibrarySpec, LibraryWriter, encode_metadata


def synthetic_library(folder: Path, rows: int, seed: int = 0) -> Path:
    cfg = EnvConfig()
    spec = LibrarySpec.from_env_config(cfg)
    A, Q = spec.n_actions, spec.n_soft
    rng = np.random.default_rng(seed)
    meta = encode_metadata(
        spec,
        env_config=cfg,
        teacher_sha256="0" * 64,
        seeds=[seed],
        cases=["synthetic"],
        loads=[1.0],
    )
    per_ep = 500
    with LibraryWriter(folder / "part-00000.parquet", spec=spec, metadata=meta) as w:
        for ep in range(-(-rows // per_ep)):
            n = min(per_ep, rows - ep * per_ep)
            mask = (rng.random((n, A)) > 0.3).astype(np.int8)
            mask[:, -1] = 1
            w.write(
                {
                    "compact": rng.normal(size=(n, spec.compact_dim)).astype(np.float32),
                    "state": rng.normal(size=(n, spec.state_dim)).astype(np.float32),
                    "q_values": rng.normal(size=(n, A)).astype(np.float32),
                    "action_mask": mask,
                    "hard": 1 - mask,
                    "soft": rng.random((n, A, Q)).astype(np.float32),
                    "action": rng.integers(0, A, n),
                    "greedy": np.ones(n, np.int8),
                    "reward": np.zeros(n, np.float32),
                    "episode_id": np.full(n, ep),
                    "case": "synthetic",
                    "load": np.ones(n, np.float32),
                    "seed": np.full(n, ep),
                    "step": np.arange(n),
                }
            )
    return folder


def latency_us(fn, calls: int) -> dict[str, float]:
    for _ in range(min(calls // 10, 2000)):
        fn()
    ns = np.empty(calls, np.int64)
    for i in range(calls):
        t = time.perf_counter_ns()
        fn()
        ns[i] = time.perf_counter_ns() - t
    return {
        "p50_us": round(float(np.percentile(ns, 50)) / 1e3, 2),
        "p99_us": round(float(np.percentile(ns, 99)) / 1e3, 2),
        "mean_us": round(float(ns.mean()) / 1e3, 2),
        "calls": calls,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--library", type=Path, default=None)
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--calls", type=int, default=20_000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--checkpoint-edge", type=Path, default=None)
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    lib = args.library or synthetic_library(Path(tmp.name), args.rows)
    out: dict = {
        "library": str(args.library) if args.library else f"synthetic ({args.rows} rows)",
        "torch": torch.__version__,
        "machine": platform.machine(),
        "train_threads": args.threads,
        "students": {},
    }
    for kind, arch in (
        ("edge", "shared"),
        ("edge", "mlp"),
        ("latent", "shared"),
        ("latent", "mlp"),
    ):
        cfg = DistillConfig(epochs=args.epochs, patience=args.epochs, threads=args.threads)
        res = train_student(lib, kind=kind, cfg=cfg, arch=arch)
        model = res.model
        if kind == "edge" and arch == "shared" and args.checkpoint_edge is not None:
            model, _ = load_student(args.checkpoint_edge)
        torch.set_num_threads(1)
        x = torch.zeros(1, model.input_dim)

        @torch.inference_mode()
        def infer(m=model, x=x):
            return m(x)

        row = {
            "input_key": model.input_key,
            "param_count": model.param_count,
            "param_bytes": model.param_bytes,
            "train_rows": res.train_rows,
            "train_rows_per_s": round(res.rows_per_s, 1),
            "epochs": len(res.history),
            "torch_latency_batch1_1thread": latency_us(infer, args.calls),
        }
        if kind == "edge" and arch == "shared":
            pol = StudentPolicy(model, EnvConfig())
            obs = {
                "compact": np.zeros(model.input_dim, np.float32),
                "action_mask": np.ones(model.n_actions, np.int8),
            }
            row["policy_act_latency_1thread"] = latency_us(
                lambda p=pol, o=obs: p.act(o), args.calls
            )
        out["students"][f"{kind}-{arch}"] = row
    print(json.dumps(out, indent=2))
    tmp.cleanup()


if __name__ == "__main__":
    main()
