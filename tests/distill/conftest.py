"""Synthetic trajectory libraries of the real row layout, with an easy-to-learn teacher.

The synthetic teacher prefers one target action per row, shown in the compact vector as a
noisy one-hot (features 0..A−1, Q = 0.2·feature + noise); features A..2A−1 carry the action
mask (30 % of actions masked, never the target or reject; h = 1 − mask) and 2A..3A−1 the soft
magnitude ×4; the rest are 0. The latent state is the first S compact features.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pcnalloc.config import EnvConfig
from pcnalloc.library import LibrarySpec, LibraryWriter, encode_metadata


def synthetic_block(
    spec: LibrarySpec, n: int, rng: np.random.Generator, episode: int
) -> dict[str, np.ndarray | str]:
    A, D = spec.n_actions, spec.compact_dim
    target = rng.integers(0, A, size=n)
    mask = (rng.random((n, A)) > 0.3).astype(np.int8)
    mask[np.arange(n), target] = 1
    mask[:, -1] = 1
    x = np.zeros((n, D), np.float32)
    x[:, :A] = np.eye(A, dtype=np.float32)[target] + 0.1 * rng.normal(size=(n, A))
    x[:, A : 2 * A] = mask
    x[:, 2 * A : 3 * A] = rng.random((n, A))
    q = 0.2 * x[:, :A] + 0.02 * rng.normal(size=(n, A))
    hard = (1 - mask).astype(np.int8)
    soft = np.repeat(x[:, 2 * A : 3 * A, None] / 4, spec.n_soft, axis=2)
    t = np.where(mask > 0, q, -np.inf).argmax(1)
    return {
        "compact": x,
        "state": x[:, : spec.state_dim].copy(),
        "q_values": q.astype(np.float32),
        "action_mask": mask,
        "hard": hard,
        "soft": soft.astype(np.float32),
        "action": t.astype(np.int16),
        "greedy": np.ones(n, np.int8),
        "reward": rng.normal(size=n).astype(np.float32),
        "episode_id": np.full(n, episode),
        "case": "synthetic",
        "load": np.full(n, 1.0, np.float32),
        "seed": np.full(n, 1000 + episode),
        "step": np.arange(n),
    }


def write_synthetic_library(
    folder: Path, *, episodes: int = 20, rows: int = 300, seed: int = 0, files: int = 2
) -> Path:
    """Write ``episodes`` × ``rows`` synthetic rows into ``files`` Parquet parts in ``folder``."""
    cfg = EnvConfig()
    spec = LibrarySpec.from_env_config(cfg)
    meta = encode_metadata(
        spec,
        env_config=cfg,
        teacher_sha256="0" * 64,
        seeds=[seed],
        cases=["synthetic"],
        loads=[1.0],
    )
    rng = np.random.default_rng(seed)
    per_file = -(-episodes // files)
    for f in range(files):
        with LibraryWriter(
            folder / f"part-{f:05d}.parquet", spec=spec, metadata=meta, row_group_rows=1024
        ) as w:
            for ep in range(f * per_file, min((f + 1) * per_file, episodes)):
                w.write(synthetic_block(spec, rows, rng, ep))
    return folder


@pytest.fixture(scope="module")
def synthetic_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 episodes × 300 rows (6,000 rows) of the synthetic teacher, in two files."""
    return write_synthetic_library(tmp_path_factory.mktemp("lib"))
