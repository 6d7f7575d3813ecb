"""TensorBoard scalars of the teacher's training: the same numbers as train_log.csv."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

from pcnalloc.core.tblog import ScalarLog, read_scalars
from pcnalloc.errors import MissingExtraError
from pcnalloc.teacher import train_teacher

pytest.importorskip("tensorboard")


def test_scalar_log_writes_numbers_only_and_is_off_without_a_folder(tmp_path: Path) -> None:
    off = ScalarLog(None, "teacher")
    assert not off.enabled and off.add(1, {"loss": 1.0}) == 0
    with ScalarLog(tmp_path, "teacher") as tb:
        row = {"step": 5, "loss": 0.25, "q_mean": "", "eps": float("nan"), "ok": True, "n": 3}
        assert tb.add(5, row, skip=("step",)) == 2
    assert read_scalars(tmp_path) == {"teacher/loss": [(5, 0.25)], "teacher/n": [(5, 3.0)]}


def test_missing_tensorboard_is_one_line_install_hint(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import now raises ImportError
    with pytest.raises(MissingExtraError, match=r"install pcnalloc\[tensorboard\]") as e:
        ScalarLog(tmp_path, "teacher")
    assert "\n" not in str(e.value) and not any(tmp_path.iterdir())


def test_teacher_scalars_match_the_csv_log(tiny_teacher_cfg, tmp_path: Path) -> None:
    tb = tmp_path / "tb"
    train_teacher(tiny_teacher_cfg(steps=120, tensorboard=tb), tmp_path / "t")
    rows = list(csv.DictReader((tmp_path / "t" / "train_log.csv").open()))
    got = read_scalars(tb)
    assert [s for s, _ in got["teacher/epsilon"]] == [int(r["step"]) for r in rows]
    want = [(int(r["step"]), float(r["loss"])) for r in rows if r["loss"]]
    assert [(s, pytest.approx(v, rel=1e-6)) for s, v in got["teacher/loss"]] == want
    assert "teacher/step" not in got


def test_teacher_without_a_folder_writes_no_events(tiny_teacher_cfg, tmp_path: Path) -> None:
    train_teacher(tiny_teacher_cfg(steps=60, learning_starts=30), tmp_path / "t")
    assert not list(tmp_path.rglob("events.out.tfevents.*"))
