"""Teacher → library → student for the access layer, through the project's own stages.

The library is an ordinary trajectory library (:mod:`pcnalloc.library`: the same Parquet
columns, :class:`~pcnalloc.library.LibraryWriter`, manifest with part hashes), one row per
device and epoch of a teacher rollout on ``pcnalloc/Access-v0``:

=============== ==========================================================================
column          access meaning
=============== ==========================================================================
``compact``     the device's row of :func:`~pcnalloc.access.features.device_features`
``state``       the same row (the teacher reads nothing else)
``q_values``    teacher Q(PLC), Q(5G)
``action_mask`` 1 where the mode has a reliable subchannel on average (C7)
``hard``        1 − ``action_mask`` (hard rule ``sinr_min``)
``soft``        expected α·traffic cost per slot of the mode (soft cost ``traffic_cost``;
                0 on PLC)
``action``      mode played (after exploration and the C3/C4 cap); ``greedy`` 1 if it
                was the teacher's own choice
``reward``      minus the device's drift-plus-penalty per slot (``info["device_cost"]``)
``case``        access grid; ``load`` I/J; ``step`` epoch·I + device; ``source`` teacher
=============== ==========================================================================

so the spec has 2 actions (``k_paths = grant_levels = 1`` keep K·L + 1 = 2). The student is
then distilled with :func:`pcnalloc.distill.train_student` (the constrained KL + hard + soft
loss, episode split, early stopping, ``student.pt``) as an ``edge`` MLP. The Parquet schema
metadata names the ``compact`` positions under ``compact_features``
(:data:`~pcnalloc.access.features.FEATURES`), as in a backbone library.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from pcnalloc.access.config import AccessConfig
from pcnalloc.access.features import FEATURES, N_FEATURES, device_features
from pcnalloc.twolayer.teacher import TRAIN_SEED_BASE, joint_modes

if TYPE_CHECKING:
    from pcnalloc.access.env import AccessEnv

LIBRARY_SEED_OFFSET = 5_000
"""Library episodes use seeds TRAIN_SEED_BASE + 10,000·seed + 5,000 + k: never trained on,
never evaluated on."""
ACCESS_SOFT_COSTS = ("traffic_cost",)
ACCESS_HARD_RULES = ("sinr_min",)


def access_library_spec() -> Any:
    """The :class:`~pcnalloc.library.LibrarySpec` of access rows (2 actions, F features)."""
    from pcnalloc.library import LibrarySpec

    return LibrarySpec(
        n_actions=2,
        k_paths=1,
        grant_levels=1,
        compact_dim=N_FEATURES,
        state_dim=N_FEATURES,
        soft_costs=ACCESS_SOFT_COSTS,
        hard_rules=ACCESS_HARD_RULES,
        catalog=("plc", "5g"),
    )


def _soft(model: Any) -> np.ndarray:
    """Expected α·C per slot of each mode, (I, 2, 1): 5G carries min(Â, q·R̄·τ) at e^5G."""
    cfg = model.cfg
    bits = np.minimum(model.mean_arrival, cfg.quota * model.expected_rate[:, 1] * cfg.slot_s)
    c = np.zeros((model.n, 2, 1), np.float32)
    c[:, 1, 0] = cfg.alpha * model.cost_per_bit * bits
    return c


def build_access_library(
    teacher_path: str | Path,
    env_config: AccessConfig,
    folder: str | Path,
    *,
    episodes: int = 40,
    epsilon: float = 0.05,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Roll the teacher out (ε-greedy per device) and write the rows to ``folder``.

    Returns the manifest written to ``folder/_manifest.json``.
    """
    import gymnasium as gym

    import pcnalloc.envs  # noqa: F401  (registers pcnalloc/Access-v0)
    from pcnalloc.library import LibraryWriter, encode_metadata, write_manifest
    from pcnalloc.library.writer import file_sha256
    from pcnalloc.twolayer.learned import LearnedModePolicy
    from pcnalloc.twolayer.teacher import load_teacher

    net, _ck = load_teacher(teacher_path)
    teacher = LearnedModePolicy(net, "teacher")
    sha = file_sha256(teacher_path)
    spec = access_library_spec()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    seeds = [TRAIN_SEED_BASE + 10_000 * seed + LIBRARY_SEED_OFFSET + k for k in range(episodes)]
    meta = encode_metadata(
        spec,
        env_config=env_config.model_dump(mode="json"),
        teacher_sha256=sha,
        seeds=seeds,
        cases=[env_config.grid],
        loads=[env_config.devices / env_config.subchannels],
        extra={"layer": "access", "epsilon": epsilon},
        feature_names=FEATURES,  # the compact column's names, as the backbone library has
    )
    env = cast("AccessEnv", gym.make("pcnalloc/Access-v0", config=env_config).unwrapped)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x11B]))
    n = env_config.devices
    name = "part-00000.parquet"
    source = f"access-dqn:{sha[:12]}"
    t0 = time.perf_counter()
    rows = 0
    with LibraryWriter(folder / name, spec=spec, metadata=meta) as w:
        for ep, s in enumerate(seeds):
            env.reset(seed=s)
            done, epoch = False, 0
            while not done:
                m = env.model
                x = device_features(m)
                q = teacher.model_scores(m, x)  # the graph too for a gnn teacher
                mask = env.action_masks().reshape(n, 2)
                greedy = joint_modes(q, mask, env_config)
                explore = rng.random(n) < epsilon
                q_act = np.where(explore[:, None], rng.random((n, 2)), q)
                modes = joint_modes(q_act, mask, env_config)
                soft = _soft(m)
                _, _, done, _, info = env.step(modes)
                w.write(
                    {
                        "compact": x,
                        "state": x,
                        "q_values": q.astype(np.float32),
                        "action_mask": mask.astype(np.int8),
                        "hard": (~mask).astype(np.int8),
                        "soft": soft,
                        "action": modes.astype(np.int16),
                        "greedy": (modes == greedy).astype(np.int8),
                        "reward": -np.asarray(info["device_cost"], np.float32),
                        "episode_id": np.full(n, ep, np.int64),
                        "case": env_config.grid,
                        "load": np.full(n, n / env_config.subchannels, np.float32),
                        "seed": np.full(n, s, np.int64),
                        "step": (epoch * n + np.arange(n)).astype(np.int32),
                        "source": source,
                    }
                )
                rows += n
                epoch += 1
            if progress is not None:
                progress(1)
    manifest = {
        "layer": "access",
        "files": [name],
        "rows": rows,
        "episodes": episodes,
        "seeds": seeds,
        "teacher_sha256": sha,
        "spec": spec.to_json(),
        "access_config": env_config.model_dump(mode="json"),
        "seconds": time.perf_counter() - t0,
    }
    write_manifest(folder, manifest)
    return manifest


def distill_access_student(
    library: str | Path, out_dir: str | Path, **overrides: Any
) -> dict[str, Any]:
    """Distil the library into an edge MLP student with :func:`pcnalloc.distill.train_student`.

    ``overrides`` go to :func:`pcnalloc.distill.distill_config` (defaults here: τ = 0.02 on
    the teacher's Q scale, 40 epochs, patience 6, hidden 32-32).
    """
    from pcnalloc.distill import distill_config, train_student

    hidden = overrides.pop("hidden", (32, 32))
    kw = {"tau": 0.02, "epochs": 40, "patience": 6, "batch_size": 512, **overrides}
    res = train_student(
        library, kind="edge", cfg=distill_config(**kw), out_dir=out_dir, hidden=hidden
    )
    return {
        "best_epoch": res.best_epoch,
        "train_rows": res.train_rows,
        "param_bytes": res.model.param_bytes,
        "best": {k: v for k, v in res.best.items() if isinstance(v, int | float)},
    }


__all__ = [
    "ACCESS_HARD_RULES",
    "ACCESS_SOFT_COSTS",
    "access_library_spec",
    "build_access_library",
    "distill_access_student",
]
