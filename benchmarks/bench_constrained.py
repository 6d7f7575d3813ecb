"""Constrained (Lagrangian) teacher: where each policy lands against a limit ε placed between
the unconstrained extremes, and transfer to a new limit (warm start vs from scratch).

Per scenario family (``--families``, case ``--case``, load ``--load``, K = 4 actions chosen
among ``--candidate-pool`` routes), on the same training seed:

1. the extremes, ``dual: fixed``: ``value-only`` (λ = 0), ``blocking-only`` (reward weight 0,
   λ = 1) and ``blocking-heavy`` (weight 1, λ = ``--heavy-lambda``); each is played greedily
   on the **tuning seeds** (≥ 1000) and its mean priority ≤ 1 blocking measured;
2. ε is placed halfway between the value-only teacher's blocking and the lower of the two
   blocking-focused ones (training seeds only; skipped, with the reason, when they differ by
   less than ``--min-gap``), ε₂ a quarter of the gap above the focused one;
3. ``constrained ascent`` (projected dual ascent) and ``constrained pid`` (PID Lagrangian,
   K_P = ``--kp``) at ε, from scratch;
4. transfer to ε₂: each constrained run fine-tuned (``warm``) vs the same dual from scratch,
   episodes until the trailing mean (``--window``) of the measured training rate first
   reaches ε₂ + ``--tol`` (:func:`episodes_to_reach`) and until it stays there;
5. every run greedy on the **evaluation seeds** (< 1000, never used for tuning), episodes as
   long as the training ones (ε is a per-episode limit): value ratio and priority ≤ 1
   blocking, per-seed paired differences to the value-only teacher with 95 % CIs
   (:func:`pcnalloc.evaluate.stats.paired`), and whether the mean meets the row's limit.

A reservation toy, where critical blocking is controllable by admission, runs the same
primal-dual pieces: value-only, ε₁ from scratch, ε₂ warm vs scratch, for dual ascent and the
PID Lagrangian (K_P = ``--toy-kp``), per seed. One JSON (``--out``) with the load averages.

Usage: OMP_NUM_THREADS=1 python benchmarks/bench_constrained.py [--families storm,fiber-cut]
       [--load 1.5] [--candidate-pool 16] [--requests 500] [--episodes 24]
       [--transfer-episodes 20] [--tune-seeds 5000,5001,5002]
       [--eval-seeds 300,301,302,303,304,305] [--skip-toy | --skip-env]
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

from pcnalloc.evaluate.stats import mean_ci, paired
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
    dual: str = "ascent",
    kp: float = 0.0,
) -> dict[str, Any]:
    """Primal-dual on the toy: per episode collect ``steps`` ε-greedy decisions, one dual
    step on the measured critical blocking (``dual``: ascent, or pid with gain ``kp``),
    100 Double-DQN updates of the linear Q."""
    import torch

    from pcnalloc.nn import mask_q
    from pcnalloc.teacher import double_dqn_target
    from pcnalloc.teacher.constrained import LagrangianReplay, PIDState, dual_step, pid_step

    torch.manual_seed(seed)
    q = torch.nn.Linear(2 * (TOY_C + 1), 2, bias=False)
    torch.nn.init.zeros_(q.weight)
    lam = 0.0
    if warm is not None:
        q.load_state_dict(warm["q"])
        lam = warm["lambda"]
    pid = PIDState(integral=lam / lr_dual)
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
        if dual == "pid":
            lam, pid = pid_step(pid, rate, epsilon, kp=kp, ki=lr_dual, kd=0.0, lam_max=20.0)
        else:
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
    kp: float = 0.0,
):
    """Value-only, ε₁ from scratch, then ε₂ warm vs scratch, per seed, for plain dual
    ascent and (``kp`` > 0) the PID Lagrangian with proportional gain ``kp``."""
    out = []
    for seed in seeds:
        kw: dict[str, Any] = dict(explore=explore, lr_dual=lr_dual)
        free = toy_run(eps1, episodes, seed=seed, explore=explore, lr_dual=1e-9)  # λ ≈ 0
        first = toy_run(eps1, episodes, seed=seed, **kw)
        warm = toy_run(eps2, episodes, warm=first["state"], seed=seed + 100, **kw)
        scratch = toy_run(eps2, episodes, seed=seed + 100, **kw)
        runs = [
            ("value_only", free, eps1),
            ("eps1", first, eps1),
            ("eps2_warm", warm, eps2),
            ("eps2_scratch", scratch, eps2),
        ]
        if kp > 0:
            pk: dict[str, Any] = dict(kw, dual="pid", kp=kp)
            first_p = toy_run(eps1, episodes, seed=seed, **pk)
            runs += [
                ("pid_eps1", first_p, eps1),
                (
                    "pid_eps2_warm",
                    toy_run(eps2, episodes, warm=first_p["state"], seed=seed + 100, **pk),
                    eps2,
                ),
                ("pid_eps2_scratch", toy_run(eps2, episodes, seed=seed + 100, **pk), eps2),
            ]
        row: dict[str, Any] = {"seed": seed}
        for name, r, e in runs:
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


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch == "-" else "_" for ch in name)


def _mean(x: list[float]) -> float:
    return float(np.mean(x)) if x else float("nan")


def env_family(a: argparse.Namespace, family: str, tmp: Path) -> dict[str, Any]:
    """The constrained study on one scenario family (see the module docstring)."""
    teacher = dict(
        env={
            "network": {"case": a.case},
            "traffic": {"scenario": family, "load": a.load},
            "episode_requests": a.requests,
            "candidate_pool": a.candidate_pool or None,
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
            episodes=a.episodes,
        )
        base.update(kw)
        return constrained_config(**base)

    tune, seeds = a.tune_seeds, a.eval_seeds
    rows: dict[str, dict[str, Any]] = {}

    def train(name: str, c: Any, warm: str | None = None) -> dict[str, Any]:
        where = tmp / family / _slug(name)
        t = time.perf_counter()
        res = train_constrained(c, where, warm_start=tmp / family / _slug(warm) if warm else None)
        rates, values = res.rates(), res.values()
        ev = evaluate_constrained(where, seeds, a.requests, c.epsilon)
        row = {
            "run": name,
            "epsilon": c.epsilon,
            "dual": c.dual,
            "reward_weight": c.reward_weight,
            "lambda_init": c.lambda_init,
            "lambda_kp": c.lambda_kp,
            "warm_from": warm,
            "episodes": c.episodes,
            "steps": res.steps,
            "episodes_to_reach_limit": episodes_to_reach(rates, c.epsilon, a.window, a.tol),
            "episodes_to_meet_limit": episodes_to_converge(rates, c.epsilon, a.window, a.tol),
            "episodes_to_settle_value": episodes_to_settle(values, a.window),
            "lambda_final": res.lambda_final,
            "train_rate_last_window": _mean(rates[-a.window :]),
            "eval": ev,
            "lambda_trace": [d["lambda"] for d in res.duals],
            "rate_trace": rates,
            "train_s": round(res.wall_s, 1),
            "wall_s": round(time.perf_counter() - t, 1),
            "loadavg_after": _loadavg(),
        }
        rows[name] = row
        print(
            json.dumps(
                {"family": family, **{k: v for k, v in row.items() if not k.endswith("trace")}}
            ),
            flush=True,
        )
        return row

    # 1. the extremes, and where they land on the training (tuning) seeds
    extremes = {
        "value-only": cfg(epsilon=0.5, dual="fixed"),
        "blocking-only": cfg(epsilon=0.5, dual="fixed", reward_weight=0.0, lambda_init=1.0),
        "blocking-heavy": cfg(epsilon=0.5, dual="fixed", lambda_init=a.heavy_lambda),
    }
    tuned: dict[str, dict[str, Any]] = {}
    for name, c in extremes.items():
        train(name, c)
        tuned[name] = evaluate_constrained(tmp / family / name, tune, a.requests, 0.5)
    b_value = tuned["value-only"]["critical_blocking"]
    b_focus_name = min(
        ("blocking-only", "blocking-heavy"), key=lambda n: tuned[n]["critical_blocking"]
    )
    b_focus = tuned[b_focus_name]["critical_blocking"]
    gap = b_value - b_focus
    out: dict[str, Any] = {
        "family": family,
        "tuning": {
            "seeds": tune,
            "critical_blocking": {n: t["critical_blocking"] for n, t in tuned.items()},
            "value_ratio": {n: t["value_ratio"] for n, t in tuned.items()},
            "blocking_focused": b_focus_name,
        },
    }
    if gap < a.min_gap:
        out["epsilon"] = None
        out["skipped"] = (
            f"value-only and {b_focus_name} priority ≤ 1 blocking differ by {gap:.4f} "
            f"< {a.min_gap} on the tuning seeds: no limit lies between them"
        )
    else:
        # 2. ε halfway between the extremes (training seeds only), ε₂ halfway to the focused one
        eps = max(round(b_focus + gap / 2, 4), 1e-3)
        eps2 = max(round(b_focus + gap / 4, 4), 1e-3)
        out["epsilon"], out["epsilon2"] = eps, eps2
        train("constrained ascent", cfg(epsilon=eps))
        train("constrained pid", cfg(epsilon=eps, dual="pid", lambda_kp=a.kp))
        if a.transfer:
            tr = a.transfer_episodes
            for dual, base in (("ascent", "constrained ascent"), ("pid", "constrained pid")):
                kw: dict[str, Any] = dict(epsilon=eps2, episodes=tr, dual=dual)
                if dual == "pid":
                    kw["lambda_kp"] = a.kp
                train(f"transfer {dual} (warm)", cfg(**kw), warm=base)
                train(f"scratch {dual}", cfg(**kw))
    # 3. paired differences to the value-only teacher on the evaluation seeds
    v0 = rows["value-only"]["eval"]
    by = dict(zip(seeds, v0["value_per_seed"], strict=True))
    bb = dict(zip(seeds, v0["critical_blocking_per_seed"], strict=True))
    for row in rows.values():
        ev = row["eval"]
        vs = dict(zip(seeds, ev["value_per_seed"], strict=True))
        bs = dict(zip(seeds, ev["critical_blocking_per_seed"], strict=True))
        row["vs_value_only"] = {
            "value": paired(vs, by, higher_is_better=True),
            "critical_blocking": paired(bs, bb, higher_is_better=False),
        }
        row["critical_blocking_ci"] = mean_ci(ev["critical_blocking_per_seed"])
        lim = out.get("epsilon2") if row["run"].startswith(("transfer", "scratch")) else None
        lim = lim if lim is not None else out.get("epsilon")
        row["limit"] = lim
        row["meets_limit"] = bool(ev["critical_blocking"] <= lim) if lim is not None else None
    out["rows"] = list(rows.values())
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", default="case30")
    ap.add_argument("--families", default="storm,fiber-cut")
    ap.add_argument("--load", type=float, default=1.0)
    ap.add_argument("--candidate-pool", type=int, default=16, help="0 = off (K routes only)")
    ap.add_argument("--episodes", type=int, default=40)
    ap.add_argument("--transfer-episodes", type=int, default=24)
    ap.add_argument("--no-transfer", dest="transfer", action="store_false")
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--n-envs", type=int, default=4)
    ap.add_argument("--train-every", type=int, default=16)
    ap.add_argument("--lambda-lr", type=float, default=20.0)
    ap.add_argument("--kp", type=float, default=50.0, help="K_P of the pid rows")
    ap.add_argument("--heavy-lambda", type=float, default=10.0, help="λ of blocking-heavy")
    ap.add_argument("--min-gap", type=float, default=0.01)
    ap.add_argument("--dual-batch", type=int, default=2)
    ap.add_argument("--window", type=int, default=5)
    ap.add_argument("--tol", type=float, default=0.02, help="band above ε that counts as met")
    ap.add_argument("--tune-seeds", default="5000,5001,5002")
    ap.add_argument("--eval-seeds", default="300,301,302,303,304,305")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--toy-eps1", type=float, default=0.2)
    ap.add_argument("--toy-eps2", type=float, default=0.08)
    ap.add_argument("--toy-episodes", type=int, default=30)
    ap.add_argument("--toy-seeds", default="0,1,2,3,4")
    ap.add_argument("--toy-window", type=int, default=3)
    ap.add_argument("--toy-tol", type=float, default=0.02)
    ap.add_argument("--toy-explore", type=float, default=0.02)
    ap.add_argument("--toy-dual-lr", type=float, default=20.0)
    ap.add_argument("--toy-kp", type=float, default=50.0, help="K_P of the toy's pid rows")
    ap.add_argument("--skip-env", action="store_true", help="toy only")
    ap.add_argument("--skip-toy", action="store_true", help="env families only")
    ap.add_argument("--out", type=Path, default=Path("out/bench/constrained.json"))
    a = ap.parse_args()
    a.eval_seeds = [int(s) for s in a.eval_seeds.split(",")]
    a.tune_seeds = [int(s) for s in a.tune_seeds.split(",")]
    if max(a.eval_seeds) >= 1000 or min(a.tune_seeds) < 1000:
        raise SystemExit("evaluation seeds must be < 1000 and tuning seeds ≥ 1000")
    load0 = _loadavg()
    t0 = time.perf_counter()
    toy: list[dict[str, Any]] = []
    if not a.skip_toy:
        toy = toy_transfer(
            a.toy_eps1,
            a.toy_eps2,
            a.toy_episodes,
            a.toy_window,
            [int(x) for x in a.toy_seeds.split(",")],
            a.toy_tol,
            a.toy_explore,
            a.toy_dual_lr,
            a.toy_kp,
        )
    toy_wall = round(time.perf_counter() - t0, 1)
    families = []
    with tempfile.TemporaryDirectory() as tmp:
        for fam in [] if a.skip_env else a.families.split(","):
            families.append(env_family(a, fam, Path(tmp)))
    out = {
        "case": a.case,
        "load": a.load,
        "candidate_pool": a.candidate_pool,
        "requests_per_episode": a.requests,
        "episodes": a.episodes,
        "transfer_episodes": a.transfer_episodes,
        "n_envs": a.n_envs,
        "train_every": a.train_every,
        "lambda_lr": a.lambda_lr,
        "kp": a.kp,
        "heavy_lambda": a.heavy_lambda,
        "dual_batch": a.dual_batch,
        "window": a.window,
        "tol": a.tol,
        "tune_seeds": a.tune_seeds,
        "eval_seeds": a.eval_seeds,
        "epsilon_rule": "halfway between the value-only teacher's and the blocking-focused "
        "extreme's mean priority ≤ 1 blocking on the tuning seeds; ε₂ a quarter of the gap "
        "above the focused extreme",
        "families": families,
        "toy": {
            "epsilon1": a.toy_eps1,
            "epsilon2": a.toy_eps2,
            "episodes": a.toy_episodes,
            "window": a.toy_window,
            "tol": a.toy_tol,
            "explore": a.toy_explore,
            "dual_lr": a.toy_dual_lr,
            "kp": a.toy_kp,
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
