"""Constrained (Lagrangian) teacher: where each policy lands against the limit ε, and
transfer to a new limit (warm start vs from scratch), with short budgets.

Runs, side by side on the same training seeds (case, scenario family and load of the CLI):

- ``value-only``: λ fixed at 0 (the plain reward);
- ``blocking-only``: reward weight 0, λ fixed at 1 (only blocked priority ≤ 1 requests count);
- ``constrained ε₁``: dual ascent from λ = 0, from scratch;
- ``transfer ε₂ (warm)``: the ε₁ run's networks and λ, fine-tuned to ε₂;
- ``scratch ε₂``: dual ascent at ε₂ from scratch.

Each run reports the episodes until the trailing mean (``--window``) of the measured training
rate stays ≤ its limit (:func:`episodes_to_converge`), the episodes until the trailing value
settles within 2 %, λ at the end, and a greedy evaluation on held-out seeds (value ratio,
priority ≤ 1 blocking, meets ε). Writes one JSON (``--out``) with the load average.

Usage: OMP_NUM_THREADS=1 python benchmarks/bench_constrained.py [--case case30]
       [--scenario storm] [--load 1.5] [--eps1 0.35] [--eps2 0.28] [--episodes 32]
       [--transfer-episodes 32] [--requests 200] [--eval-seeds 300,301,302,303]
       [--out out/bench/constrained.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from pcnalloc.teacher.constrained import (
    constrained_config,
    episodes_to_converge,
    episodes_to_settle,
    evaluate_constrained,
    train_constrained,
)


def _loadavg() -> list[str]:
    return Path("/proc/loadavg").read_text().split()[:3]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", default="case30")
    ap.add_argument("--scenario", default="storm")
    ap.add_argument("--load", type=float, default=1.5)
    ap.add_argument("--eps1", type=float, default=0.35)
    ap.add_argument("--eps2", type=float, default=0.28)
    ap.add_argument("--episodes", type=int, default=32)
    ap.add_argument("--transfer-episodes", type=int, default=32)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--n-envs", type=int, default=4)
    ap.add_argument("--train-every", type=int, default=16)
    ap.add_argument("--lambda-lr", type=float, default=20.0)
    ap.add_argument("--dual-batch", type=int, default=2)
    ap.add_argument("--window", type=int, default=5)
    ap.add_argument("--eval-seeds", default="300,301,302,303")
    ap.add_argument("--eval-requests", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("out/bench/constrained.json"))
    a = ap.parse_args()
    seeds = [int(s) for s in a.eval_seeds.split(",")]
    teacher = dict(
        env={
            "network": {"case": a.case},
            "traffic": {"scenario": a.scenario, "load": a.load},
            "episode_requests": a.requests,
        },
        loads=[a.load],
        n_envs=a.n_envs,
        train_every=a.train_every,
        learning_starts=2 * a.requests,
        buffer_size=20_000,
        eval_every=0,
        seed=a.seed,
    )

    def cfg(**kw: Any):
        base = dict(
            teacher=teacher,
            lambda_lr=a.lambda_lr,
            dual_batch=a.dual_batch,
            converge_window=a.window,
        )
        base.update(kw)
        return constrained_config(**base)

    runs = [
        ("value-only", cfg(epsilon=a.eps1, episodes=a.episodes, dual="fixed"), None),
        (
            "blocking-only",
            cfg(
                epsilon=a.eps1,
                episodes=a.episodes,
                dual="fixed",
                reward_weight=0.0,
                lambda_init=1.0,
            ),
            None,
        ),
        ("constrained eps1", cfg(epsilon=a.eps1, episodes=a.episodes), None),
        ("transfer eps2 (warm)", cfg(epsilon=a.eps2, episodes=a.transfer_episodes), "eps1"),
        ("scratch eps2", cfg(epsilon=a.eps2, episodes=a.transfer_episodes), None),
    ]
    load0 = _loadavg()
    t0 = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, c, warm in runs:
            where = Path(tmp) / name.replace(" ", "_")
            t = time.perf_counter()
            warm_dir = Path(tmp) / "constrained_eps1" if warm else None
            res = train_constrained(c, where, warm_start=warm_dir)
            ev = evaluate_constrained(where, seeds, a.eval_requests, c.epsilon)
            rates, values = res.rates(), res.values()
            row = {
                "run": name,
                "epsilon": c.epsilon,
                "dual": c.dual,
                "reward_weight": c.reward_weight,
                "episodes": c.episodes,
                "steps": res.steps,
                "episodes_to_meet_limit": episodes_to_converge(rates, c.epsilon, a.window),
                "episodes_to_settle_value": episodes_to_settle(values, a.window),
                "lambda_final": res.lambda_final,
                "train_rate_last_window": sum(rates[-a.window :]) / min(a.window, len(rates)),
                "train_value_last_window": sum(values[-a.window :]) / min(a.window, len(values)),
                "eval": ev,
                "lambda_trace": [d["lambda"] for d in res.duals],
                "rate_trace": rates,
                "wall_s": round(time.perf_counter() - t, 1),
                "loadavg_after": _loadavg(),
            }
            rows.append(row)
            print(
                json.dumps({k: v for k, v in row.items() if not k.endswith("trace")}),
                flush=True,
            )
    out = {
        "case": a.case,
        "scenario": a.scenario,
        "load": a.load,
        "requests_per_episode": a.requests,
        "n_envs": a.n_envs,
        "train_every": a.train_every,
        "lambda_lr": a.lambda_lr,
        "dual_batch": a.dual_batch,
        "window": a.window,
        "eval_seeds": seeds,
        "eval_requests": a.eval_requests,
        "rows": rows,
        "wall_s": round(time.perf_counter() - t0, 1),
        "loadavg_before": load0,
        "loadavg_after": _loadavg(),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
