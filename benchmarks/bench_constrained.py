"""Constrained (Lagrangian) teacher: where each policy lands against the limit ε, and
transfer to a new limit (warm start vs from scratch), with short budgets.

Runs, side by side on the same training seeds (case, scenario family and load of the CLI):

- ``value-only``: λ fixed at 0 (the plain reward);
- ``blocking-only``: reward weight 0, λ fixed at 1 (only blocked priority ≤ 1 requests count);
- ``constrained ε₁``: dual ascent from λ = 0, from scratch;
- ``transfer ε₂ (warm)``: the ε₁ run's networks and λ, fine-tuned to ε₂;
- ``scratch ε₂``: dual ascent at ε₂ from scratch.

Each run reports the episodes until the trailing mean (``--window``) of the measured training
rate first reaches its limit + ``--tol`` (:func:`episodes_to_reach`) and until it stays there
(:func:`episodes_to_converge`), the episodes until the trailing value
settles within 2 %, λ at the end, and a greedy evaluation on held-out seeds (value ratio,
priority ≤ 1 blocking, meets ε) with episodes as long as the training ones (ε is a
per-episode limit). A second section runs the same primal-dual pieces on a reservation toy
where critical blocking is controllable (value-only, ε₁, then ε₂ warm vs scratch, per seed).
Writes one JSON (``--out``) with the load average.

Usage: OMP_NUM_THREADS=1 python benchmarks/bench_constrained.py [--case case30]
       [--scenario storm] [--load 1.5] [--eps1 0.30] [--eps2 0.22] [--episodes 32]
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

import numpy as np

from pcnalloc.teacher.constrained import (
    constrained_config,
    episodes_to_converge,
    episodes_to_reach,
    episodes_to_settle,
    evaluate_constrained,
    train_constrained,
)


def _loadavg() -> list[str]:
    return Path("/proc/loadavg").read_text().split()[:3]


# ------------------------------------------------------------------ reservation toy
# One link of C circuits, a rare critical class and a frequent bulk class of equal value;
# admit or reject at each arrival. Critical blocking is controllable here (reserve circuits by
# rejecting bulk near full), unlike the power-communication cells above, so the toy shows the
# dual dynamics and the transfer effect in isolation. Same pieces as the teacher:
# LagrangianReplay, dual_step, double_dqn_target, with a linear Q over one-hot
# (occupancy, class) features.

TOY_C, TOY_CRIT, TOY_BULK = 4, 1.0, 5.0


class _Toy:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.n = 0
        self.crit = self._draw()

    def _draw(self) -> bool:
        return bool(self.rng.random() < TOY_CRIT / (TOY_CRIT + TOY_BULK))

    def features(self) -> np.ndarray:
        f = np.zeros(2 * (TOY_C + 1), np.float32)
        f[int(self.crit) * (TOY_C + 1) + self.n] = 1.0
        return f

    def mask(self) -> np.ndarray:
        return np.array([self.n < TOY_C, True], np.int8)

    def obs(self) -> dict[str, Any]:
        return {
            "graph": {
                "node_feats": np.zeros((2, 1), np.float32),
                "link_feats": np.zeros((1, 1), np.float32),
                "edge_index": np.array([[0], [1]]),
            },
            "history": np.zeros((1, 1), np.float32),
            "request": self.features(),
            "candidates": np.zeros((2, 1), np.float32),
            "action_mask": self.mask(),
        }

    def step(self, a: int) -> tuple[float, float, bool]:
        crit, r, c = self.crit, 0.0, 0.0
        if a == 0 and self.n < TOY_C:
            self.n += 1
            r = 1.0
        elif crit:
            c = 1.0
        dt = float(self.rng.exponential(1.0 / (TOY_CRIT + TOY_BULK)))
        self.n -= int(self.rng.binomial(self.n, 1.0 - np.exp(-dt)))
        self.crit = self._draw()
        return r, c, crit


def toy_run(
    epsilon: float,
    episodes: int,
    *,
    warm: dict[str, Any] | None = None,
    steps: int = 800,
    explore: float = 0.05,
    lr_dual: float = 10.0,
    seed: int = 0,
) -> dict[str, Any]:
    """Primal-dual on the toy: per episode collect ``steps`` ε-greedy decisions, one dual
    step on the measured critical blocking, 100 Double-DQN updates of the linear Q."""
    import torch

    from pcnalloc.nn import mask_q
    from pcnalloc.teacher import double_dqn_target
    from pcnalloc.teacher.constrained import LagrangianReplay, dual_step

    torch.manual_seed(seed)
    q = torch.nn.Linear(2 * (TOY_C + 1), 2, bias=False)
    torch.nn.init.zeros_(q.weight)
    lam = 0.0
    if warm is not None:
        q.load_state_dict(warm["q"])
        lam = warm["lambda"]
    tgt = torch.nn.Linear(2 * (TOY_C + 1), 2, bias=False)
    tgt.load_state_dict(q.state_dict())
    opt = torch.optim.Adam(q.parameters(), lr=0.05)
    rng = np.random.default_rng(seed + 1)
    env = _Toy(seed + 2)
    buf = LagrangianReplay(min(episodes * steps, 20_000) + 2, env.obs())
    buf.set_multiplier(lam)
    slot = buf.add_obs(env.obs(), continues=False)

    def act(e: _Toy, eps: float, g: np.random.Generator) -> int:
        valid = np.flatnonzero(e.mask())
        if g.random() < eps:
            return int(valid[g.integers(valid.size)])
        with torch.no_grad():
            sc = q(torch.from_numpy(e.features())[None])
            return int(mask_q(sc, torch.from_numpy(e.mask()).bool()[None]).argmax(1)[0])

    rates, values, lams = [], [], []
    for _ in range(episodes):
        blk = off = 0
        val = 0.0
        for _ in range(steps):
            a = act(env, explore, rng)
            r, c, crit = env.step(a)
            blk, off, val = blk + int(c), off + int(crit), val + r
            buf.record(slot, a, r, c, 0.0)
            slot = buf.add_obs(env.obs(), continues=True)
        rate = blk / max(off, 1)
        lam = dual_step(lam, rate, epsilon, lr_dual, 20.0)
        buf.set_multiplier(lam)
        rates.append(rate)
        values.append(val / steps)
        lams.append(lam)
        for it in range(100):
            o, a_b, G, D, o2 = buf.sample_n(256, rng, n_step=1, gamma=0.9, tau_s=None)
            with torch.no_grad():
                y = double_dqn_target(
                    torch.from_numpy(G),
                    q(o2.request_BR),
                    tgt(o2.request_BR),
                    o2.mask_BA,
                    torch.from_numpy(D),
                )
            pred = q(o.request_BR).gather(1, torch.from_numpy(a_b)[:, None]).squeeze(1)
            loss = torch.nn.functional.mse_loss(pred, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if it % 50 == 49:
                tgt.load_state_dict(q.state_dict())
    test, g = _Toy(99), np.random.default_rng(3)
    blk = off = 0
    val = 0.0
    for _ in range(20_000):
        r, c, crit = test.step(act(test, 0.0, g))
        blk, off, val = blk + int(c), off + int(crit), val + r
    return {
        "rates": rates,
        "values": values,
        "lambdas": lams,
        "greedy_rate": blk / max(off, 1),
        "greedy_value_per_decision": val / 20_000,
        "state": {"q": {k: v.clone() for k, v in q.state_dict().items()}, "lambda": lam},
    }


def toy_transfer(
    eps1: float,
    eps2: float,
    episodes: int,
    window: int,
    seeds: list[int],
    tol: float,
    explore: float,
    lr_dual: float,
):
    """Value-only, ε₁ from scratch, then ε₂ warm vs scratch, per seed."""
    out = []
    for seed in seeds:
        kw = dict(explore=explore, lr_dual=lr_dual)
        free = toy_run(eps1, episodes, seed=seed, explore=explore, lr_dual=1e-9)  # λ ≈ 0
        first = toy_run(eps1, episodes, seed=seed, **kw)
        warm = toy_run(eps2, episodes, warm=first["state"], seed=seed + 100, **kw)
        scratch = toy_run(eps2, episodes, seed=seed + 100, **kw)
        row: dict[str, Any] = {"seed": seed}
        for name, r, e in (
            ("value_only", free, eps1),
            ("eps1", first, eps1),
            ("eps2_warm", warm, eps2),
            ("eps2_scratch", scratch, eps2),
        ):
            row[name] = {
                "epsilon": e,
                "episodes_to_reach_limit": episodes_to_reach(r["rates"], e, window, tol),
                "episodes_to_meet_limit": episodes_to_converge(r["rates"], e, window, tol),
                "greedy_rate": r["greedy_rate"],
                "greedy_value_per_decision": r["greedy_value_per_decision"],
                "lambda_final": r["lambdas"][-1],
                "rates": r["rates"],
            }
        out.append(row)
        print(
            json.dumps(
                {
                    k: v if k == "seed" else {x: y for x, y in v.items() if x != "rates"}
                    for k, v in row.items()
                }
            ),
            flush=True,
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", default="case30")
    ap.add_argument("--scenario", default="storm")
    ap.add_argument("--load", type=float, default=1.5)
    ap.add_argument("--eps1", type=float, default=0.30)
    ap.add_argument("--eps2", type=float, default=0.22)
    ap.add_argument("--episodes", type=int, default=32)
    ap.add_argument("--transfer-episodes", type=int, default=32)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--n-envs", type=int, default=4)
    ap.add_argument("--train-every", type=int, default=16)
    ap.add_argument("--lambda-lr", type=float, default=20.0)
    ap.add_argument("--dual-batch", type=int, default=2)
    ap.add_argument("--window", type=int, default=5)
    ap.add_argument("--tol", type=float, default=0.02, help="band above ε that counts as met")
    ap.add_argument("--eval-seeds", default="300,301,302,303")
    ap.add_argument(
        "--eval-requests", type=int, default=None, help="default: --requests (the ε horizon)"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--toy-eps1", type=float, default=0.2)
    ap.add_argument("--toy-eps2", type=float, default=0.08)
    ap.add_argument("--toy-episodes", type=int, default=30)
    ap.add_argument("--toy-seeds", default="0,1,2,3,4")
    ap.add_argument("--toy-window", type=int, default=3)
    ap.add_argument("--toy-tol", type=float, default=0.02)
    ap.add_argument("--toy-explore", type=float, default=0.02)
    ap.add_argument("--toy-dual-lr", type=float, default=20.0)
    ap.add_argument("--skip-env", action="store_true", help="toy only")
    ap.add_argument("--out", type=Path, default=Path("out/bench/constrained.json"))
    a = ap.parse_args()
    seeds = [int(s) for s in a.eval_seeds.split(",")]
    a.eval_requests = a.eval_requests or a.requests
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
    toy = toy_transfer(
        a.toy_eps1,
        a.toy_eps2,
        a.toy_episodes,
        a.toy_window,
        [int(x) for x in a.toy_seeds.split(",")],
        a.toy_tol,
        a.toy_explore,
        a.toy_dual_lr,
    )
    toy_wall = round(time.perf_counter() - t0, 1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, c, warm in [] if a.skip_env else runs:
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
                "episodes_to_reach_limit": episodes_to_reach(rates, c.epsilon, a.window, a.tol),
                "episodes_to_meet_limit": episodes_to_converge(rates, c.epsilon, a.window, a.tol),
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
        "tol": a.tol,
        "eval_seeds": seeds,
        "eval_requests": a.eval_requests,
        "rows": rows,
        "toy": {
            "epsilon1": a.toy_eps1,
            "epsilon2": a.toy_eps2,
            "episodes": a.toy_episodes,
            "window": a.toy_window,
            "tol": a.toy_tol,
            "explore": a.toy_explore,
            "dual_lr": a.toy_dual_lr,
            "rows": toy,
            "wall_s": toy_wall,
        },
        "wall_s": round(time.perf_counter() - t0, 1),
        "loadavg_before": load0,
        "loadavg_after": _loadavg(),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
