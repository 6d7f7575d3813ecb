"""PNGs of the paper's kind of figures (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pcnalloc.core.plotting import save_png, subplots


def sweep_png(result: dict[str, Any], metric: str, ylabel: str, path: Path) -> Path:
    """Mean ± standard error of ``metric`` per policy against the swept value."""
    fig, ax = subplots(figsize=(5.5, 3.8))
    for p in dict.fromkeys(c["policy"] for c in result["cells"]):
        cs = [c for c in result["cells"] if c["policy"] == p]
        x = [c["value"] for c in cs]
        y = np.array([np.mean(c[metric]) for c in cs])
        e = np.array([np.std(c[metric]) / np.sqrt(len(c[metric])) for c in cs])
        ax.errorbar(x, y, yerr=e, marker="o", capsize=3, label=p)
    ax.set_xlabel(result["label"])
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_png(fig, path, dpi=120)


def backlog_cdf_png(backlogs: dict[str, list[float]], path: Path, label: str) -> Path:
    """Empirical CDF of a per-device quantity (final backlog or virtual queue) per policy."""
    fig, ax = subplots(figsize=(5.5, 3.8))
    for p, vals in backlogs.items():
        v = np.sort(np.asarray(vals, dtype=float))
        ax.step(v, np.arange(1, v.size + 1) / max(v.size, 1), where="post", label=p)
    ax.set_xlabel(label)
    ax.set_ylabel("fraction of devices")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_png(fig, path, dpi=120)
