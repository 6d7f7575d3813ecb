"""A checkpoint that does not belong to the library is one line, exit 2, before any work."""

from __future__ import annotations

from pathlib import Path

import pytest

from pcnalloc.cli import main
from pcnalloc.errors import ConfigError

TEACHER_YAML = """\
env:
  network: {{case: {case}}}
  traffic: {{warm_start: false, events: {{faults_per_hour: 0.0, fiber_cuts_per_hour: 0.0}}}}
  episode_requests: 60
steps: 20
learning_starts: 10
train_every: 1
batch_size: 8
buffer_size: 200
eval_every: 0
checkpoint_every: 20
log_every: 10
hidden: 16
gnn_hidden: 8
lstm_hidden: 8
q_hidden: 16
"""


def _lines(capsys) -> list[str]:
    return [x for x in capsys.readouterr().err.splitlines() if x.strip()]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory, tiny_graph_file: Path) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("mismatch")
    cfg = d / "teacher.yaml"
    cfg.write_text(TEACHER_YAML.format(case=tiny_graph_file))
    assert main(["teacher", "train", "--config", str(cfg), "--out", str(d / "teacher")]) == 0
    lib_args = ["--cases", str(tiny_graph_file), "--episodes", "1", "--requests", "20"]
    lib_args += ["--executor", "serial"]
    lib = ["library", "build", "--teacher", "ksp-ff", "--out", str(d / "lib")]
    assert main([*lib, *lib_args]) == 0
    assert main(["keys", "new", "--out", str(d / "k")]) == 0
    return {
        "dir": d,
        "teacher": d / "teacher",
        "lib": d / "lib",
        "key": d / "k" / "pcnalloc.key",
        "lib_args": lib_args,  # type: ignore[dict-item]
    }


def test_distill_refuses_another_teacher(artifacts, capsys) -> None:
    out = artifacts["dir"] / "student"
    args = ["distill", "--library", str(artifacts["lib"]), "--out", str(out)]
    capsys.readouterr()
    assert main([*args, "--teacher", str(artifacts["teacher"])]) == 2
    lines = _lines(capsys)
    assert len(lines) == 1 and "is not the teacher of library" in lines[0], lines
    assert not out.exists()


def test_the_librarys_own_teacher_is_accepted(artifacts) -> None:
    from pcnalloc.commands.distill import check_teacher_matches
    from pcnalloc.teacher import TeacherPolicy

    lib = artifacts["dir"] / "lib-dqn"
    args = ["library", "build", "--teacher", str(artifacts["teacher"]), "--out", str(lib)]
    assert main([*args, *artifacts["lib_args"]]) == 0  # type: ignore[list-item]
    t = TeacherPolicy.load(artifacts["teacher"])
    check_teacher_matches(lib, t.sha256, artifacts["teacher"])  # no error: its own teacher
    with pytest.raises(ConfigError, match="not the teacher"):  # planted: another hash
        check_teacher_matches(lib, "0" * 64, artifacts["teacher"])


def test_compile_refuses_a_student_of_another_shape(artifacts, capsys) -> None:
    import torch

    from pcnalloc.export.compile import save_student_checkpoint

    student = artifacts["dir"] / "wrong.pt"
    save_student_checkpoint(torch.nn.Sequential(torch.nn.Linear(7, 5)), student)
    out = artifacts["dir"] / "art"
    args = ["compile", "--student", str(student), "--library", str(artifacts["lib"])]
    capsys.readouterr()
    assert main([*args, "--key", str(artifacts["key"]), "--out", str(out)]) == 2
    lines = _lines(capsys)
    assert len(lines) == 1 and "does not take this library's" in lines[-1], lines
    assert not out.exists()
