"""Training curves of a distillation run: losses and top-1 agreement per epoch (PNG)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pcnalloc.core.plotting import save_png, subplots


def plot_history(history: Sequence[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Two panels: train/val loss terms (log scale) and validation top-1 agreement; atomic PNG."""
    ep = [h["epoch"] for h in history]
    fig, (ax1, ax2) = subplots(1, 2, figsize=(11, 4))
    for key, style in (("total", "-"), ("kl", "--"), ("hard", ":"), ("soft", "-.")):
        for split, color in (("train", "tab:blue"), ("val", "tab:orange")):
            ys = [max(h[f"{split}_{key}"], 1e-12) for h in history]
            ax1.plot(ep, ys, style, color=color, label=f"{split} {key}")
    ax1.set_yscale("log")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss (batch mean)")
    ax1.legend(fontsize=7, ncol=2)
    ax2.plot(ep, [h["val_top1_agreement"] for h in history], label="raw argmax")
    ax2.plot(ep, [h["val_top1_agreement_masked"] for h in history], label="masked argmax")
    ax2.plot(ep, [h["val_hard_proposal_rate"] for h in history], label="hard-violation proposals")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("validation rate")
    ax2.set_ylim(0, 1.01)
    ax2.legend(fontsize=8)
    fig.suptitle(title)
    return save_png(fig, path)


__all__ = ["plot_history"]
