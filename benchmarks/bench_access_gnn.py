"""Access layer: the graph (GATv2, device–subchannel) teacher against the MLP teacher and the
paper's matching algorithm on the same evaluation seeds, training times, and the
distillation of the graph teacher into the edge MLP student.

Usage::

    python benchmarks/bench_access_gnn.py [--train-seeds 2] [--episodes 120] [--seeds 10]
        [--top-k 8] [--full-episodes 5] [--library-episodes 40] [--first-train-seed 0]
        [--gnn-batch-epochs B] [--gnn-updates U] [--out bench_access_gnn.json]

For every training seed: the MLP teacher and the gnn teacher (``gnn_top_k`` edges per device
and mode) with the same budget and seed, each timed; then ``twolayer.compare`` of
``teacher@gnn``, ``teacher@mlp`` and ``matching`` on the evaluation seeds (per-seed paired
differences with 95 % t intervals and the verdict of :mod:`pcnalloc.evaluate.stats`). For
the first training seed also: the gnn teacher's library and distilled student (the ordinary
``twolayer.library`` stages) played as ``student@`` against the same three. Finally the cost
of the full graph (every device–subchannel pair, ``gnn_top_k = 0``): seconds per training
episode after the warm-up, next to the top-k graph's and the MLP's. Load averages are
recorded next to every stage.
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

from pcnalloc.access import access_config
from pcnalloc.twolayer.compare import compare
from pcnalloc.twolayer.teacher import AccessTeacherConfig, save_teacher, train_access_teacher


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def train(cfg: AccessTeacherConfig, path: Path) -> dict[str, Any]:
    env = access_config()
    t0 = time.perf_counter()
    net, log = train_access_teacher(env, cfg)
    wall = time.perf_counter() - t0
    save_teacher(path, net, cfg=cfg, env_config=env, log=log)
    warm = [r["seconds"] for r in log if np.isfinite(r["loss"])]
    return {
        "encoder": cfg.encoder,
        "batch": cfg.gnn_batch_epochs * env.devices if cfg.encoder == "gnn" else cfg.batch_size,
        "updates_per_epoch": cfg.gnn_updates_per_epoch
        if cfg.encoder == "gnn"
        else cfg.updates_per_epoch,
        "gnn_top_k": cfg.gnn_top_k if cfg.encoder == "gnn" else None,
        "params": int(sum(p.numel() for p in net.parameters())),
        "train_s": wall,
        "episode_s_after_warmup": float(np.mean(warm)) if warm else None,
        "last10_mean_reward": float(np.mean([r["mean_reward"] for r in log[-10:]])),
        "loadavg": loadavg(),
    }


def brief(res: dict[str, Any]) -> dict[str, Any]:
    return {
        "policies": {
            k: {
                "name": v["name"],
                "mean": v["mean"],
                "stable_share": v["stable_share"],
                "mode_us_p50": v["mode_us_p50"],
                "per_seed_weighted_sum": v["per_seed"]["weighted_sum"],
            }
            for k, v in res["policies"].items()
        },
        "paired": res["paired"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train-seeds", type=int, default=2)
    ap.add_argument("--episodes", type=int, default=120)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--top-k", type=int, default=8)
    ap.add_argument("--full-episodes", type=int, default=5)
    ap.add_argument("--library-episodes", type=int, default=40)
    ap.add_argument("--first-train-seed", type=int, default=0)
    ap.add_argument("--encoders", default="mlp,gnn", help="teachers to train, of mlp,gnn")
    ap.add_argument("--mlp-batch-size", type=int, default=None, help="default: the config's")
    ap.add_argument("--mlp-updates", type=int, default=None, help="default: the config's")
    ap.add_argument("--gnn-batch-epochs", type=int, default=None, help="default: the config's")
    ap.add_argument("--gnn-updates", type=int, default=None, help="default: the config's")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    seeds = list(range(args.seeds))
    out: dict[str, Any] = {
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "threads": os.environ.get("OMP_NUM_THREADS"),
        "eval_seeds": seeds,
        "episodes": args.episodes,
        "args": {k: str(v) for k, v in vars(args).items()},
        "loadavg_start": loadavg(),
        "runs": [],
    }
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for ts in range(args.first_train_seed, args.first_train_seed + args.train_seeds):
            run: dict[str, Any] = {"train_seed": ts}
            paths = {}
            encoders = [e for e in ("mlp", "gnn") if e in args.encoders.split(",")]
            for enc in encoders:
                paths[enc] = root / f"{enc}{ts}.pt"
                extra: dict[str, Any] = {}
                if args.mlp_batch_size is not None:
                    extra["batch_size"] = args.mlp_batch_size
                if args.mlp_updates is not None:
                    extra["updates_per_epoch"] = args.mlp_updates
                if args.gnn_batch_epochs is not None:
                    extra["gnn_batch_epochs"] = args.gnn_batch_epochs
                if args.gnn_updates is not None:
                    extra["gnn_updates_per_epoch"] = args.gnn_updates
                cfg = AccessTeacherConfig(
                    episodes=args.episodes, seed=ts, encoder=enc, gnn_top_k=args.top_k, **extra
                )
                run[f"train_{enc}"] = train(cfg, paths[enc])
            specs = [f"teacher@{paths[e]}" for e in reversed(encoders)] + ["matching"]
            if "gnn" in paths and ts == args.first_train_seed and args.library_episodes > 0:
                from pcnalloc.twolayer.library import build_access_library, distill_access_student

                t0 = time.perf_counter()
                man = build_access_library(
                    paths["gnn"], access_config(), root / f"lib{ts}", episodes=args.library_episodes
                )
                t_lib = time.perf_counter() - t0
                t0 = time.perf_counter()
                summ = distill_access_student(root / f"lib{ts}", root / f"student{ts}")
                run["gnn_student"] = {
                    "library_rows": man["rows"],
                    "library_s": t_lib,
                    "distill_s": time.perf_counter() - t0,
                    "student": summ,
                    "loadavg": loadavg(),
                }
                specs.insert(1, f"student@{root / f'student{ts}'}")
            t0 = time.perf_counter()
            run["compare"] = brief(compare(specs, access_config(), seeds))
            run["compare"]["wall_s"] = time.perf_counter() - t0
            run["compare"]["loadavg"] = loadavg()
            out["runs"].append(run)
        if args.full_episodes > 0:
            full = AccessTeacherConfig(
                episodes=args.full_episodes, seed=0, encoder="gnn", gnn_top_k=0
            )
            out["full_graph_timing"] = train(full, root / "full.pt")
    out["wall_s"] = time.perf_counter() - t_all
    out["loadavg_end"] = loadavg()
    text = json.dumps(out, indent=2, default=str)
    for ts in range(args.first_train_seed, args.first_train_seed + args.train_seeds):
        for name in ("mlp", "gnn"):
            text = text.replace(str(root / f"{name}{ts}.pt"), f"{name.upper()}{ts}")
        text = text.replace(str(root / f"student{ts}"), f"GNN_STUDENT{ts}")
    if args.out:
        from pcnalloc.fileio import write_atomic

        write_atomic(args.out, text + "\n")
    print(text)


if __name__ == "__main__":
    main()
