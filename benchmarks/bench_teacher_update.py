"""The teacher's GATv2 layers through GATv2Conv's module call vs the encoder's fast path.

Both variants run in one process, interleaved round by round (``pyg``, ``fast``, ``pyg``, …)
so a change of machine load hits both alike; the ``pyg`` variant is the same encoder with
:func:`pcnalloc.nn.encoder.fast_path_supported` answering False, i.e. every layer called as
``GATv2Conv(x, edge_index, edge_attr)``. Per variant, median over rounds:

- ``update_ms``: one Double DQN gradient step on a batch-64 replay sample (three encoder
  passes, backward, Adam) on a filled buffer;
- ``act_ms``: one no-grad forward of a batch of ``--act-batch`` observations (the
  vectorised acting call);
- ``train_env_steps_per_s``: a short default training run (``--train-steps`` env steps,
  8 envs, update every 4 steps), with its final loss and mean Q, which are equal in both
  variants when the two paths agree.

The load average is recorded next to every figure; one torch thread.

Usage: python benchmarks/bench_teacher_update.py [--case case30] [--rounds 7]
       [--train-steps 1500] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from pcnalloc.envs import PowerCommEnv
from pcnalloc.nn import EncoderShape
from pcnalloc.nn import encoder as enc
from pcnalloc.teacher import DoubleDQN, ReplayBuffer, Trainer, teacher_config

REAL_FAST = enc.fast_path_supported


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


@contextmanager
def variant(name: str):
    enc.fast_path_supported = REAL_FAST if name == "fast" else (lambda conv: False)
    try:
        yield
    finally:
        enc.fast_path_supported = REAL_FAST


def filled_buffer(cfg, n: int = 400) -> ReplayBuffer:
    env = PowerCommEnv(cfg.env, observation="full")
    obs, _ = env.reset(seed=1)
    buf = ReplayBuffer(2 * n, obs)
    rng = np.random.default_rng(0)
    slot = buf.add_obs(obs, continues=False)
    for _ in range(n):
        valid = np.flatnonzero(obs["action_mask"])
        a = int(rng.choice(valid)) if valid.size else 0
        obs, r, term, trunc, _ = env.step(a)
        buf.set_step(slot, a, r)
        slot = buf.add_obs(obs, continues=not (term or trunc))
        if term or trunc:
            obs, _ = env.reset(seed=2)
            slot = buf.add_obs(obs, continues=False)
    return buf


def time_ms(fn, n: int) -> float:
    fn()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", default="case30")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--calls", type=int, default=10, help="calls per round and variant")
    ap.add_argument("--act-batch", type=int, default=8)
    ap.add_argument("--train-steps", type=int, default=1500)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = teacher_config(env={"network": {"case": args.case}}, learning_starts=200, eval_every=0)
    buf = filled_buffer(cfg)
    learner = DoubleDQN(EncoderShape.for_env(cfg.env, **cfg.encoder_sizes()), cfg)
    rng = np.random.default_rng(0)
    batch = buf.sample(cfg.batch_size, rng)
    act_batch = buf.sample(args.act_batch, rng)[0]
    names = ("pyg", "fast")
    rows: dict[str, dict[str, list]] = {
        n: {"update_ms": [], "act_ms": [], "load": []} for n in names
    }
    for _ in range(args.rounds):
        for name in names:
            with variant(name):
                rows[name]["update_ms"].append(time_ms(lambda: learner.update(*batch), args.calls))
                rows[name]["act_ms"].append(
                    time_ms(lambda: learner.greedy_q(act_batch), 5 * args.calls)
                )
                rows[name]["load"].append(loadavg()[0])
    result: dict = {"case": args.case, "batch": cfg.batch_size, "act_batch": args.act_batch}
    for name in names:
        r = rows[name]
        result[name] = {
            "update_ms": round(statistics.median(r["update_ms"]), 2),
            "act_ms": round(statistics.median(r["act_ms"]), 3),
            "loadavg_1min_range": [min(r["load"]), max(r["load"])],
        }
    for name in names:
        tcfg = teacher_config(
            env={"network": {"case": args.case}},
            steps=args.train_steps,
            learning_starts=200,
            eval_every=0,
        )
        with variant(name), tempfile.TemporaryDirectory() as d:
            load0 = loadavg()
            t = time.perf_counter()
            res = Trainer(tcfg, d).run()
            wall = time.perf_counter() - t
        result[name]["train"] = {
            "env_steps": res.step,
            "gradient_steps": res.updates,
            "train_env_steps_per_s": round(res.step / wall, 1),
            "final_loss": res.rows[-1]["loss"] if res.rows else None,
            "final_q_mean": res.rows[-1]["q_mean"] if res.rows else None,
            "loadavg_start_end": [load0, loadavg()],
        }
    result["ratio_update"] = round(result["pyg"]["update_ms"] / result["fast"]["update_ms"], 2)
    result["ratio_act"] = round(result["pyg"]["act_ms"] / result["fast"]["act_ms"], 2)
    result["ratio_train"] = round(
        result["fast"]["train"]["train_env_steps_per_s"]
        / result["pyg"]["train"]["train_env_steps_per_s"],
        2,
    )
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
