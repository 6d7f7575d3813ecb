"""Train sb3-contrib's MaskablePPO on case30 and compare it with a heuristic on the same seeds.

Needs the ``sb3`` extra (``pip install 'pcnalloc[sb3]'``). Run from the repository root::

    python examples/sb3_maskable_ppo.py --timesteps 4096 --seeds 0-4

It trains on ``pcnalloc/PowerComm-flat-v0`` (a flat ``Box`` observation, the action mask from
``action_masks()``) with training seeds far from the evaluation seeds, saves the model, then
plays the saved model (policy spec ``sb3@PATH.zip``) and the heuristic with the package's own
evaluation runner on the evaluation seeds, so both get exactly the metrics that
``pcnalloc evaluate`` reports. The same comparison from the command line::

    pcnalloc evaluate --policies sb3@out/sb3/maskable_ppo_case30.zip,ksp-ff \
        --cases case30 --loads 1.0 --seeds 0-4 --requests 1000
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from sb3_contrib import MaskablePPO
from stable_baselines3.common.env_util import make_vec_env

import pcnalloc  # registers the pcnalloc/… Gymnasium ids
from pcnalloc.baselines.registry import make_policy
from pcnalloc.config import EnvConfig
from pcnalloc.envs import FLAT_ENV_ID
from pcnalloc.evaluate.episode import EPISODE_INFO_KEYS
from pcnalloc.evaluate.runner import run_policy
from pcnalloc.evaluate.sweep import parse_seeds

TRAIN_SEED = 10_000
"""Training episodes start from seeds 10000, 10001, …, never an evaluation seed."""
SHOWN = ("weighted_value_ratio", "blocking_probability", "blocking_priority_le1")


def train(timesteps: int, out: Path, n_envs: int) -> Path:
    """Train MaskablePPO on the flat id; the Monitor logs the episode figures from ``info``."""
    env = make_vec_env(
        FLAT_ENV_ID,
        n_envs=n_envs,
        seed=TRAIN_SEED,
        monitor_kwargs={"info_keywords": EPISODE_INFO_KEYS},
    )
    model = MaskablePPO("MlpPolicy", env, n_steps=512, batch_size=128, seed=0, verbose=0)
    t0 = time.perf_counter()
    model.learn(total_timesteps=timesteps)
    print(f"trained {timesteps} steps in {time.perf_counter() - t0:.1f} s")
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    return out.with_suffix(".zip")


def evaluate(specs: list[str], seeds: list[int], requests: int) -> None:
    """Play each policy spec on every seed with the evaluation runner; print mean figures."""
    print(f"{'policy':<28}" + "".join(f"{k:>24}" for k in (*SHOWN, "violations")))
    for spec in specs:
        runs = [
            run_policy(make_policy(spec), EnvConfig(), seed=s, requests=requests)["metrics"]
            for s in seeds
        ]
        means = [np.mean([r[k] for r in runs]) for k in SHOWN]
        viol = sum(r["executed_hard_violations"] for r in runs)
        name = make_policy(spec).name
        print(f"{name:<28}" + "".join(f"{m:>24.4f}" for m in means) + f"{viol:>24d}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timesteps", type=int, default=4096, help="training steps")
    ap.add_argument("--n-envs", type=int, default=1, help="training environments")
    ap.add_argument("--seeds", default="0-4", help="evaluation seeds (0-4, 1,3,7 …)")
    ap.add_argument("--requests", type=int, default=1000, help="decisions per evaluation")
    ap.add_argument("--heuristic", default="ksp-ff", help="policy spec to compare with")
    ap.add_argument("--out", type=Path, default=Path("out/sb3/maskable_ppo_case30.zip"))
    args = ap.parse_args()
    assert pcnalloc.__version__
    path = train(args.timesteps, args.out, args.n_envs)
    evaluate([f"sb3@{path}", args.heuristic], parse_seeds(args.seeds), args.requests)


if __name__ == "__main__":
    main()
