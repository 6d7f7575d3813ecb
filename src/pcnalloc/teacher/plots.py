"""Learning-curve figure of a teacher run (matplotlib, Agg backend)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pcnalloc.core.plotting import save_png, subplots


def _series(rows: Sequence[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for r in rows:
        v = r.get(key, "")
        if v not in ("", None):
            xs.append(float(r["step"]))
            ys.append(float(v))
    return xs, ys


def learning_curve(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """TD loss, episode reward, and evaluation value ratio (teacher vs baseline) vs env step."""
    fig, axes = subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot(*_series(rows, "loss"))
    axes[0].set(title="TD loss (Huber)", xlabel="env step", yscale="log")
    axes[1].plot(*_series(rows, "episode_reward"), marker=".")
    axes[1].set(title="training episode reward", xlabel="env step")
    axes[2].plot(*_series(rows, "eval_value_ratio"), marker="o", label="teacher (greedy)")
    axes[2].plot(*_series(rows, "eval_baseline_value_ratio"), ls="--", label="baseline")
    axes[2].set(title="held-out weighted value ratio", xlabel="env step")
    axes[2].legend()
    return save_png(fig, path)
