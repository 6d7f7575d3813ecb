"""Pieces shared by the distillation benchmarks (bench_beta_schedules, bench_blind_ablation).

benchmarks/ is not a package: the scripts run as ``python benchmarks/NAME.py``, which puts
this folder on ``sys.path``, so they import this module by its plain name.
"""

from __future__ import annotations

from pathlib import Path


def loadavg() -> list[str]:
    """The 1/5/15-minute load averages, as /proc/loadavg writes them."""
    return Path("/proc/loadavg").read_text().split()[:3]


def parse_seeds(text: str) -> list[int]:
    """``"300-303,310"`` → [300, 301, 302, 303, 310]; evaluation seeds must be < 1000."""
    out: list[int] = []
    for part in text.split(","):
        lo, dash, hi = part.partition("-")
        out += list(range(int(lo), int(hi) + 1)) if dash else [int(lo)]
    if any(s >= 1000 for s in out):
        raise SystemExit("evaluation seeds must be < 1000")
    return out


def train_dqn(case: str, steps: int, out: Path) -> Path:
    """A small DQN teacher (4 envs, run seed 0) trained into ``out``; returns ``out``."""
    from pcnalloc.teacher import teacher_config, train_teacher

    cfg = teacher_config(
        env={"network": {"case": case}},
        steps=steps,
        n_envs=4,
        eval_every=0,
        checkpoint_every=steps,
        seed=0,
    )
    train_teacher(cfg, out)
    return out
