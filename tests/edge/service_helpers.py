"""Shared builders of the service tests: a random compiled student, a settable clock."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pcnalloc.config import EnvConfig
from pcnalloc.envs import PowerCommEnv
from pcnalloc.export.compile import compile_student

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def compile_random_student(out: Path, cfg: EnvConfig, private_key: Path, seed: int = 7) -> Path:
    """A random 2-layer MLP student compiled and signed (as tests/edge/test_agent.py does)."""
    env = PowerCommEnv(cfg, observation="compact")
    obs, _ = env.reset(seed=99)
    rows = []
    for _ in range(100):
        rows.append(obs["compact"])
        obs, *_ = env.step(int(np.flatnonzero(obs["action_mask"])[0]))
    D = rows[0].shape[0]
    g = torch.Generator().manual_seed(seed)
    m = torch.nn.Sequential(
        torch.nn.Linear(D, 48), torch.nn.ReLU(), torch.nn.Linear(48, cfg.n_actions)
    )
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    m.input_key = "compact"
    compile_student(m.eval(), np.stack(rows), env_config=cfg, private_key=private_key, out_dir=out)
    return out


class Clock:
    """A settable service clock (s)."""

    def __init__(self, t: float = 8 * 3600.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t
