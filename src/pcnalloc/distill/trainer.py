"""Distillation trainer: stream the library, fit a student with Adam, early-stop on validation.

Deterministic under ``DistillConfig.seed`` for a fixed thread count: the episode split, the
weight init (a ``torch.Generator``) and the shuffling (a ``numpy.random.Generator``) all derive
from it; nothing touches the global RNGs.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pcnalloc.core.tblog import ScalarLog
from pcnalloc.distill.checkpoint import STUDENT_FILE, save_student
from pcnalloc.distill.config import DistillConfig
from pcnalloc.distill.data import LibraryData, Rows
from pcnalloc.distill.loss import LossTerms, beta_at, distill_loss
from pcnalloc.distill.metrics import DecisionStats
from pcnalloc.distill.plots import plot_history
from pcnalloc.distill.students import (
    BLIND,
    DEFAULT_ARCH,
    MLPStudent,
    compact_layout,
    input_dim_for,
    input_key_for,
    make_student,
    validity_indices,
)
from pcnalloc.errors import ConfigError
from pcnalloc.fileio import staged_dir, write_atomic

log = logging.getLogger(__name__)

HISTORY_FILE = "history.csv"
CURVES_FILE = "curves.png"
EpochCallback = Callable[[dict[str, Any]], None]


@dataclass
class DistillResult:
    """Outcome of one run.

    Attributes:
        model: the student at its best validation epoch (eval mode).
        history: one dict per epoch (train/val loss terms, validation rates, timing).
        best_epoch: epoch (1-based) whose weights were kept.
        best: the history row of ``best_epoch``.
        out_dir: folder holding ``student.pt``, ``history.csv`` and ``curves.png`` (or None).
        train_rows: training rows per epoch.
        rows_per_s: mean training throughput (rows/s, forward + backward + step).
    """

    model: MLPStudent
    history: list[dict[str, Any]]
    best_epoch: int
    best: dict[str, Any]
    out_dir: Path | None
    train_rows: int
    rows_per_s: float
    extra: dict[str, Any] = field(default_factory=dict)


TERMS = ("total", "kl", "hard", "soft", "task", "margin")


def _terms(
    model: MLPStudent, rows: Rows, cfg: DistillConfig, beta: float | None = None
) -> tuple[torch.Tensor, LossTerms, tuple[torch.Tensor, ...]]:
    """Loss of one batch; ``beta`` None = ``cfg.beta_max`` (the fixed reference weight that
    validation and model selection use, so a schedule never moves the selection objective)."""
    x, q, m, h, c = rows.tensors()
    a, r = rows.task_tensors()
    logits = model(x)
    terms = distill_loss(
        logits,
        q,
        m,
        h,
        c,
        tau=cfg.tau,
        lambda_hard=cfg.lambda_hard,
        lambda_soft=cfg.lambda_soft,
        beta=cfg.beta_max if beta is None else beta,
        task_weight=cfg.task_weight,
        actions_B=a,
        rewards_B=r,
        task_eta=cfg.task_eta,
        margin_weight=cfg.margin_weight,
        margin=cfg.margin,
    )
    return logits, terms, (q, m, h, c)


@torch.no_grad()
def evaluate_rows(
    model: MLPStudent, batches: Any, cfg: DistillConfig
) -> tuple[dict[str, float], DecisionStats]:
    """Loss terms (row-weighted means) and decision statistics of ``model`` over ``batches``."""
    model.eval()
    sums = dict.fromkeys(TERMS, 0.0)
    stats = DecisionStats()
    for rows in batches:
        logits, terms, (q, m, h, c) = _terms(model, rows, cfg)
        n = len(rows)
        for k in sums:
            sums[k] += float(getattr(terms, k)) * n
        stats.update(logits, q, m, h, c)
    n = max(stats.rows, 1)
    return {k: v / n for k, v in sums.items()}, stats


def _write_history(path: Path, history: Sequence[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(history[0]))
    w.writeheader()
    for row in history:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    write_atomic(path, buf.getvalue())


def train_student(
    library: str | Path | LibraryData,
    *,
    kind: str,
    cfg: DistillConfig,
    out_dir: str | Path | None = None,
    hidden: Sequence[int] | None = None,
    arch: str | None = None,
    on_epoch: EpochCallback | None = None,
    tb_run: str | None = None,
) -> DistillResult:
    """Distil the library's teacher into a fresh ``kind`` student.

    Args:
        library: library folder/file, or an already opened :class:`LibraryData` (shared by
            ablation runs so the episode split and the cache are read once).
        kind: ``edge`` (compact input) or ``latent`` (teacher state input).
        cfg: loss weights, optimiser, split and early stopping.
        out_dir: where ``student.pt``, ``history.csv`` and ``curves.png`` go (None: nothing is
            written).
        hidden: hidden layer widths (default per kind, see ``DEFAULT_HIDDEN``).
        arch: ``mlp``, ``shared`` (see :class:`SharedHeadStudent`) or ``mlp-blind`` (edge MLP
            without the validity flags, :class:`BlindMLPStudent`); None = ``DEFAULT_ARCH``.
        on_epoch: called with each epoch's history row (progress reporting).
        tb_run: TensorBoard run under ``cfg.tensorboard`` (default ``student/<out_dir name>``);
            staged: renamed into place when the training finishes, removed when it fails.

    Returns:
        :class:`DistillResult` with the best-validation student.
    """
    run = tb_run or f"student/{Path(out_dir).name if out_dir else kind}"
    with contextlib.ExitStack() as stack:
        path = None
        if cfg.tensorboard is not None:
            where = Path(cfg.tensorboard) / run
            path = stack.enter_context(staged_dir(where, overwrite=True, flag="--tensorboard"))
        tb = stack.enter_context(ScalarLog(cfg.tensorboard, run, path=path))
        return _train(library, kind, cfg, out_dir, hidden, arch, on_epoch, tb)


def _train(
    library: str | Path | LibraryData,
    kind: str,
    cfg: DistillConfig,
    out_dir: str | Path | None,
    hidden: Sequence[int] | None,
    arch: str | None,
    on_epoch: EpochCallback | None,
    tb: ScalarLog,
) -> DistillResult:
    torch.set_num_threads(cfg.threads)
    arch = arch or DEFAULT_ARCH.get(kind, "mlp")
    if isinstance(library, LibraryData):
        data = library
        if data.input_key != input_key_for(kind, arch):
            raise ConfigError(
                f"library data reads {data.input_key!r}; a {kind!r} {arch!r} student needs "
                f"{input_key_for(kind, arch)!r} (open LibraryData with that input_key)"
            )
    else:
        data = LibraryData(library, input_key=input_key_for(kind, arch), cfg=cfg)
    gen = torch.Generator().manual_seed(cfg.seed)
    model = make_student(
        kind,
        input_dim=input_dim_for(kind, data.spec, arch),
        n_actions=data.spec.n_actions,
        hidden=hidden,
        arch=arch,
        layout=compact_layout(data.spec, kind),
        generator=gen,
        drop=validity_indices(data.spec) if arch == BLIND else None,
    )
    mean, std, n_train = data.input_stats()
    model.set_standardisation(torch.from_numpy(mean), torch.from_numpy(std))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 0xD157]))
    history: list[dict[str, Any]] = []
    best_loss, best_epoch, best_state, stale = float("inf"), 0, None, 0
    train_time = 0.0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        sums = dict.fromkeys(TERMS, 0.0)
        seen = 0
        beta = beta_at(cfg.beta_schedule, epoch, cfg.epochs, cfg.beta_min, cfg.beta_max)
        t0 = time.perf_counter()
        for rows in data.train_batches(rng):
            _, terms, _ = _terms(model, rows, cfg, beta)
            opt.zero_grad(set_to_none=True)
            terms.total.backward()
            opt.step()
            n = len(rows)
            seen += n
            for k in sums:
                sums[k] += float(getattr(terms, k).detach()) * n
        dt = time.perf_counter() - t0
        train_time += dt
        val, stats = evaluate_rows(model, data.val_batches(), cfg)
        row: dict[str, Any] = {"epoch": epoch, "beta": beta}
        row.update({f"train_{k}": v / max(seen, 1) for k, v in sums.items()})
        row.update({f"val_{k}": v for k, v in val.items()})
        row.update({f"val_{k}": v for k, v in stats.summary().items() if k != "rows"})
        row.update({"train_rows": seen, "epoch_s": dt, "rows_per_s": seen / dt if dt else 0.0})
        history.append(row)
        log.info(
            "epoch %d: train %.4f val %.4f agree %.4f",
            epoch,
            row["train_total"],
            row["val_total"],
            row["val_top1_agreement"],
        )
        improved = val["total"] < best_loss - cfg.min_delta
        if improved:
            best_loss, best_epoch, stale = val["total"], epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
        row["best"] = int(improved)
        tb.add(epoch, row, skip=("epoch",))
        if on_epoch is not None:
            on_epoch(row)
        if stale >= cfg.patience:
            log.info("early stop after epoch %d (best %d)", epoch, best_epoch)
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    best = history[best_epoch - 1] if best_epoch else history[-1]
    total_rows = sum(h["train_rows"] for h in history)
    result = DistillResult(
        model=model,
        history=history,
        best_epoch=best_epoch or len(history),
        best=best,
        out_dir=Path(out_dir) if out_dir is not None else None,
        train_rows=n_train,
        rows_per_s=total_rows / train_time if train_time else 0.0,
    )
    if out_dir is not None:
        _write_outputs(result, data, cfg, kind)
    return result


def _write_outputs(result: DistillResult, data: LibraryData, cfg: DistillConfig, kind: str) -> None:
    out = Path(result.out_dir)  # type: ignore[arg-type]
    out.mkdir(parents=True, exist_ok=True)
    meta = data.reader.metadata
    save_student(
        out / STUDENT_FILE,
        result.model,
        distill_config=cfg.model_dump(),
        library_metadata_sha256=data.metadata_sha256,
        library_spec=data.spec.to_json(),
        env_config=meta.get("env_config", {}),
        teacher_sha256=meta.get("teacher_sha256", ""),
        best_epoch=result.best_epoch,
        summary={k: v for k, v in result.best.items() if isinstance(v, int | float)},
        val_episodes=[int(e) for e in data.val_episodes],
        test_episodes=[int(e) for e in data.test_episodes],
    )
    _write_history(out / HISTORY_FILE, result.history)
    plot_history(result.history, out / CURVES_FILE, title=f"{kind} student distillation")


__all__ = ["CURVES_FILE", "HISTORY_FILE", "DistillResult", "evaluate_rows", "train_student"]
