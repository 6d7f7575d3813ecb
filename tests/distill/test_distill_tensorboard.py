"""TensorBoard scalars of a distillation: one scalar per history.csv column and epoch."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from pcnalloc.core.tblog import read_scalars
from pcnalloc.distill.config import DistillConfig
from pcnalloc.distill.trainer import train_student

pytest.importorskip("tensorboard")


def test_student_scalars_match_history_csv(synthetic_library: Path, tmp_path: Path) -> None:
    cfg = DistillConfig(epochs=2, batch_size=128, lr=1e-3, tensorboard=tmp_path / "tb")
    train_student(synthetic_library, kind="edge", arch="mlp", cfg=cfg, out_dir=tmp_path / "edge")
    rows = list(csv.DictReader((tmp_path / "edge" / "history.csv").open()))
    got = read_scalars(tmp_path / "tb")
    assert [s for s, _ in got["student/edge/val_total"]] == [1, 2]
    for (_, v), r in zip(got["student/edge/val_total"], rows, strict=True):
        assert v == pytest.approx(float(r["val_total"]), rel=1e-4)
    assert "student/edge/epoch" not in got
