"""--tensorboard DIR: DIR is a log folder shared by runs; a verb's own run folder is checked
before any work, staged, named after --out and removed when the command fails."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_checkpoint_mismatch import TEACHER_YAML

from pcnalloc.cli import main

pytest.importorskip("tensorboard")


def _one_error_line(capsys) -> str:
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture(scope="module")
def lib(tmp_path_factory: pytest.TempPathFactory, tiny_graph_file: Path) -> Path:
    out = tmp_path_factory.mktemp("tblib") / "lib"
    args = ["library", "build", "--teacher", "ksp-ff", "--out", str(out), "--cases"]
    args += [str(tiny_graph_file), "--episodes", "3", "--requests", "30", "--executor", "serial"]
    assert main(args) == 0
    return out


def _distill(lib: Path, out: Path, tb: Path, *extra: str) -> list[str]:
    return ["distill", "--library", str(lib), "--out", str(out), "--epochs", "1",
            "--tensorboard", str(tb), *extra]  # fmt: skip


def test_distill_run_is_named_after_out_and_shares_the_log_folder(
    lib: Path, tmp_path: Path, capsys
) -> None:
    tb = tmp_path / "tb"
    tb.mkdir()
    (tb / "teacher").mkdir()  # another verb's run in the same log folder is left alone
    (tb / "teacher" / "events.out.tfevents.1").write_bytes(b"x")
    assert main(_distill(lib, tmp_path / "s1", tb)) == 0
    assert main(_distill(lib, tmp_path / "s2", tb)) == 0
    runs = sorted(p.parent.relative_to(tb).as_posix() for p in tb.rglob("events.out.*"))
    assert runs == ["student/s1", "student/s2", "teacher"]  # not the staged temp's name
    assert not [p for p in tb.rglob("*") if p.name.startswith(".")]  # no temp left
    from pcnalloc.core.tblog import read_scalars

    assert "student/s1/val_total" in read_scalars(tb / "student" / "s1")


def test_distill_refuses_an_existing_run_before_work(
    lib: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    tb = tmp_path / "tb"
    assert main(_distill(lib, tmp_path / "s", tb)) == 0
    (tmp_path / "s").rename(tmp_path / "kept")  # --out is free, the run folder is not
    before = (tb / "student" / "s").stat().st_mtime_ns, _tree(tb)
    import pcnalloc.distill.run as dr

    called: list[int] = []
    monkeypatch.setattr(dr, "run_distillation", lambda *a, **k: called.append(1))
    capsys.readouterr()
    assert main(_distill(lib, tmp_path / "s", tb)) == 2
    line = _one_error_line(capsys)
    assert "--tensorboard" in line and "student/s" in line and "--overwrite" in line, line
    assert called == [] and not (tmp_path / "s").exists()
    assert ((tb / "student" / "s").stat().st_mtime_ns, _tree(tb)) == before
    monkeypatch.undo()
    assert main(_distill(lib, tmp_path / "s", tb, "--overwrite")) == 0  # replaced whole
    assert len(list((tb / "student" / "s").glob("events.out.*"))) == 1


def test_distill_failure_leaves_no_run_folder(lib: Path, tmp_path: Path, monkeypatch) -> None:
    import pcnalloc.distill.run as dr

    def fail(*a, **k):  # type: ignore[no-untyped-def]
        raise RuntimeError("planted failure in the closed loop")

    monkeypatch.setattr(dr, "held_out_fidelity", fail)  # after the training published its run
    tb = tmp_path / "logs" / "tb"
    assert main(_distill(lib, tmp_path / "s", tb)) == 1
    assert list(tmp_path.iterdir()) == []  # no run, no temp, no empty log folders


def test_distill_config_file_log_folder_is_checked_too(lib: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "tb" / "student" / "s"
    run.mkdir(parents=True)
    (run / "events.out.tfevents.1").write_bytes(b"earlier")
    cfg = tmp_path / "d.yaml"
    cfg.write_text(f"tensorboard: {tmp_path / 'tb'}\n")
    args = ["distill", "--library", str(lib), "--out", str(tmp_path / "s"), "--config", str(cfg)]
    assert main(args) == 2
    assert "--overwrite" in _one_error_line(capsys)
    assert (run / "events.out.tfevents.1").read_bytes() == b"earlier"


def _teacher(tmp_path: Path, tiny: Path, out: str, tb: Path, *extra: str) -> list[str]:
    cfg = tmp_path / "teacher.yaml"
    cfg.write_text(TEACHER_YAML.format(case=tiny))
    return ["teacher", "train", "--config", str(cfg), "--out", str(tmp_path / out),
            "--tensorboard", str(tb), *extra]  # fmt: skip


def test_teacher_run_folder_staged_refused_and_resumed(
    tmp_path: Path, tiny_graph_file: Path, capsys, monkeypatch
) -> None:
    tb = tmp_path / "tb"
    (tb / "teacher").mkdir(parents=True)  # an empty run folder made ahead is accepted
    assert main(_teacher(tmp_path, tiny_graph_file, "t", tb)) == 0
    assert [p.name for p in tb.iterdir()] == ["teacher"]
    events = sorted((tb / "teacher").glob("events.out.*"))
    assert len(events) == 1
    import pcnalloc.teacher as teacher

    called: list[int] = []
    monkeypatch.setattr(teacher, "train_teacher", lambda *a, **k: called.append(1))
    capsys.readouterr()
    assert main(_teacher(tmp_path, tiny_graph_file, "t2", tb)) == 2
    line = _one_error_line(capsys)
    assert "--tensorboard" in line and "teacher" in line and "--overwrite" in line, line
    assert called == [] and not (tmp_path / "t2").exists()
    monkeypatch.undo()
    # --resume continues the run in place: its events are kept and new ones appended
    assert main([*_teacher(tmp_path, tiny_graph_file, "t", tb), "--resume", "--steps", "40"]) == 0
    assert set(events) < set((tb / "teacher").glob("events.out.*"))


def test_teacher_failure_leaves_no_run_folder(
    tmp_path: Path, tiny_graph_file: Path, monkeypatch
) -> None:
    from pcnalloc.teacher.train import Trainer

    calls = [0]

    def run_then_fail(self):  # type: ignore[no-untyped-def]
        self.tb.add(1, {"loss": 1.0})  # some events are written into the staged run
        calls[0] += 1
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "_run", run_then_fail)
    tb = tmp_path / "logs" / "tb"
    assert main(_teacher(tmp_path, tiny_graph_file, "t", tb)) == 130
    assert calls == [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["teacher.yaml"]  # nothing else


def test_a_failed_training_alone_leaves_no_run(lib: Path, tmp_path: Path) -> None:
    """Library callers (the stages of pcnalloc run) get whole-or-absent runs too."""
    from pcnalloc.distill.config import DistillConfig
    from pcnalloc.distill.trainer import train_student

    tb = tmp_path / "tb"
    cfg = DistillConfig(epochs=3, tensorboard=tb)

    def fail(row):  # type: ignore[no-untyped-def]
        raise RuntimeError("planted failure after an epoch's scalars")

    with pytest.raises(RuntimeError, match="planted"):
        train_student(lib, kind="edge", cfg=cfg, out_dir=tmp_path / "edge", on_epoch=fail)
    assert not (tb / "student" / "edge").exists()
    assert not [p for p in tb.rglob("*") if p.name.startswith(".")]
    res = train_student(lib, kind="edge", cfg=cfg, out_dir=tmp_path / "edge", tb_run="x/y")
    assert res.history and list((tb / "x" / "y").glob("events.out.*"))


def test_generalise_config_log_folder_is_checked_before_work(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    run = tmp_path / "tb" / "student" / "g"
    run.mkdir(parents=True)
    (run / "events.out.tfevents.1").write_bytes(b"earlier")
    cfg = tmp_path / "d.yaml"
    cfg.write_text(f"tensorboard: {tmp_path / 'tb'}\n")
    import pcnalloc.distill.generalise as gen

    called: list[int] = []
    monkeypatch.setattr(gen, "run_generalise", lambda *a, **k: called.append(1))
    assert main(["generalise", "--out", str(tmp_path / "g"), "--config", str(cfg)]) == 2
    assert "--overwrite" in _one_error_line(capsys) and called == []
    assert (run / "events.out.tfevents.1").read_bytes() == b"earlier"
