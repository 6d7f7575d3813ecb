"""Every verb checks its output paths before any work and leaves nothing partial behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pcnalloc.cli import main


def _one_error_line(capsys) -> str:
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


def _snapshot(p: Path) -> dict[str, bytes] | bytes:
    if p.is_dir():
        return {str(q.relative_to(p)): q.read_bytes() for q in sorted(p.rglob("*")) if q.is_file()}
    return p.read_bytes()


# (verb, arguments before the output flag, output flag, what the verb writes there)
VERBS: list[tuple[str, list[str], str, str]] = [
    ("teacher train", ["teacher", "train"], "--out", "dir"),
    ("teacher evaluate", ["teacher", "evaluate", "--teacher", "none.pt"], "--out", "file"),
    ("library build", ["library", "build", "--teacher", "ksp-ff"], "--out", "dir"),
    ("distill", ["distill", "--library", "none"], "--out", "dir"),
    ("distill --json", ["distill", "--library", "none", "--out", "NEW"], "--json", "file"),
    (
        "compile",
        ["compile", "--student", "s.pt", "--library", "lib", "--key", "k.key"],
        "--out",
        "dir",
    ),
    ("simulate --json", ["simulate", "--requests", "10"], "--json", "file"),
    ("evaluate", ["evaluate"], "--out", "dir"),
    ("tune", ["tune"], "--out", "file"),
    ("network show --png", ["network", "show", "TINY"], "--png", "file"),
    ("network show --json", ["network", "show", "TINY"], "--json", "file"),
    ("run", ["run"], "--out", "dir"),
    ("distributed gap", ["distributed", "gap"], "--out", "dir"),
    ("distributed trust", ["distributed", "trust"], "--out", "dir"),
    ("generalise", ["generalise"], "--out", "dir"),
    ("access simulate --json", ["access", "simulate"], "--json", "file"),
    ("access simulate --png", ["access", "simulate"], "--png", "file"),
    ("access evaluate", ["access", "evaluate"], "--out", "dir"),
    ("access train", ["access", "train"], "--out", "dir"),
    (
        "access compare --json",
        ["access", "compare", "--policies", "matching,raf"],
        "--json",
        "file",
    ),
    ("access couple --json", ["access", "couple"], "--json", "file"),
    ("audit head", ["audit", "head", "none.log", "--public-key", "none.pub"], "--out", "file"),
    ("audit prove", ["audit", "prove", "none.log", "--index", "0"], "--out", "file"),
    ("audit consistency", ["audit", "consistency", "none.log", "--old-size", "1"], "--out", "file"),
]


def _args(prefix: list[str], tmp: Path, tiny: Path) -> list[str]:
    return [str(tiny) if a == "TINY" else str(tmp / "new") if a == "NEW" else a for a in prefix]


@pytest.mark.parametrize(("verb", "prefix", "flag", "kind"), VERBS, ids=[v[0] for v in VERBS])
@pytest.mark.parametrize("existing", ["file", "dir"])
def test_existing_output_is_refused_and_untouched(
    tmp_path: Path, capsys, tiny_graph_file: Path, verb, prefix, flag, kind, existing
) -> None:
    target = tmp_path / "out"
    if existing == "file":
        target.write_text("keep me\n")
    else:
        target.mkdir()
        (target / "keep.txt").write_text("keep me\n")
    before = _snapshot(target)
    assert main([*_args(prefix, tmp_path, tiny_graph_file), flag, str(target)]) == 2
    line = _one_error_line(capsys)
    if existing == kind:
        assert "--overwrite" in line, line
    else:
        want = "is a folder; give a file path" if kind == "file" else "is a file; give a folder"
        assert want in line, line
    assert _snapshot(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing else created


def test_keys_new_into_a_file_is_one_line(tmp_path: Path, capsys) -> None:
    f = tmp_path / "k"
    f.write_text("x")
    assert main(["keys", "new", "--out", str(f)]) == 2
    assert str(f) in _one_error_line(capsys)
    assert main(["keys", "new", "--out", str(tmp_path / "d"), "--name", "../up"]) == 2
    assert "not accepted" in _one_error_line(capsys)
    assert not (tmp_path / "d").exists()  # a refused name creates no folder


def _lib_args(out: Path, tiny: Path, requests: int) -> list[str]:
    return [
        "library", "build", "--teacher", "ksp-ff", "--out", str(out), "--cases", str(tiny),
        "--episodes", "1", "--requests", str(requests), "--executor", "serial",
    ]  # fmt: skip


def _rows(lib: Path) -> int:
    return int(json.loads((lib / "_manifest.json").read_text())["rows"])


def test_library_build_never_replaces_a_library_silently(
    tmp_path: Path, capsys, tiny_graph_file: Path, monkeypatch
) -> None:
    lib = tmp_path / "lib"
    assert main(_lib_args(lib, tiny_graph_file, 60)) == 0
    assert _rows(lib) == 60
    capsys.readouterr()
    assert main(_lib_args(lib, tiny_graph_file, 20)) == 2  # the 60-row library stays
    assert "--overwrite" in _one_error_line(capsys) and _rows(lib) == 60

    import pcnalloc.library.build as lb

    real = lb.build_library

    def half_then_fail(teacher, out_dir, **kw):  # type: ignore[no-untyped-def]
        real(teacher, out_dir, **kw)
        raise RuntimeError("planted failure after the rows were written")

    monkeypatch.setattr(lb, "build_library", half_then_fail)
    assert main([*_lib_args(lib, tiny_graph_file, 20), "--overwrite"]) == 1
    assert _rows(lib) == 60  # a failed replacement keeps the old library
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lib"]  # and no temp folder
    assert main(_lib_args(tmp_path / "a" / "b", tiny_graph_file, 20)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lib"]  # no empty parents
    monkeypatch.setattr(lb, "build_library", real)
    assert main([*_lib_args(lib, tiny_graph_file, 20), "--overwrite"]) == 0
    assert _rows(lib) == 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lib"]


def test_stale_temp_of_a_killed_build_is_cleaned(tmp_path: Path, tiny_graph_file: Path) -> None:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    stale = tmp_path / f".lib.{p.pid}.abcd12.tmp"
    stale.mkdir()
    (stale / "part-00000.parquet").write_bytes(b"PAR1 half")
    assert main(_lib_args(tmp_path / "lib", tiny_graph_file, 20)) == 0
    assert sorted(x.name for x in tmp_path.iterdir()) == ["lib"]


def test_teacher_train_failure_leaves_nothing(tmp_path: Path, monkeypatch, capsys) -> None:
    import pcnalloc.teacher as teacher

    def fail(cfg, out_dir, **kw):  # type: ignore[no-untyped-def]
        (Path(out_dir) / "step_00000100.pt").write_bytes(b"half")
        (Path(out_dir) / "train_log.csv").write_text("step\n")
        raise KeyboardInterrupt

    monkeypatch.setattr(teacher, "train_teacher", fail)
    out = tmp_path / "runs" / "teacher"
    assert main(["teacher", "train", "--out", str(out), "--steps", "10"]) == 130
    assert list(tmp_path.iterdir()) == []
    capsys.readouterr()
    assert main(["teacher", "train", "--out", str(out), "--resume"]) == 2
    assert "nothing to --resume" in _one_error_line(capsys)


def test_simulate_failure_removes_a_new_audit_log(
    tmp_path: Path, tiny_graph_file: Path, monkeypatch
) -> None:
    import pcnalloc.evaluate as ev

    def fail(*a, **kw):  # type: ignore[no-untyped-def]
        raise RuntimeError("planted")

    monkeypatch.setattr(ev, "run_policy", fail)
    log = tmp_path / "logs" / "audit.jsonl"
    args = ["simulate", "--case", str(tiny_graph_file), "--requests", "10", "--audit", str(log)]
    assert main(args) == 1
    assert list(tmp_path.iterdir()) == []  # no header-only audit file, no empty folder


def test_simulate_json_overwrite(tmp_path: Path, tiny_graph_file: Path, capsys) -> None:
    out = tmp_path / "r.json"
    args = ["simulate", "--case", str(tiny_graph_file), "--requests", "20", "--json", str(out)]
    assert main(args) == 0 and json.loads(out.read_text())["requests"] == 20
    capsys.readouterr()
    assert main(args) == 2 and "--overwrite" in _one_error_line(capsys)
    assert main([*args, "--overwrite", "--seed", "3"]) == 0
    assert json.loads(out.read_text())["seed"] == 3


def test_evaluate_failure_writes_no_folder(
    tmp_path: Path, tiny_graph_file: Path, monkeypatch
) -> None:
    import pcnalloc.evaluate.report as rep

    def fail(*a, **kw):  # type: ignore[no-untyped-def]
        raise RuntimeError("planted")

    monkeypatch.setattr(rep, "markdown_report", fail)
    out = tmp_path / "ev"
    args = ["evaluate", "--policies", "ksp-ff", "--cases", str(tiny_graph_file), "--loads", "1",
            "--seeds", "0", "--requests", "20", "--executor", "serial",
            "--out", str(out)]  # fmt: skip
    assert main(args) == 1
    assert list(tmp_path.iterdir()) == []


def test_network_png_is_staged(tmp_path: Path, tiny_graph_file: Path, capsys) -> None:
    png = tmp_path / "maps" / "m.png"
    args = ["network", "show", str(tiny_graph_file), "--png", str(png)]
    assert main(args) == 0 and png.read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    assert main(args) == 2 and "--overwrite" in _one_error_line(capsys)
    assert main([*args, "--overwrite"]) == 0
    assert sorted(p.name for p in png.parent.iterdir()) == ["m.png"]


def test_run_refuses_a_foreign_folder_and_bad_loads_at_once(tmp_path: Path, capsys) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.txt").write_text("mine")
    assert main(["run", "--out", str(home)]) == 2
    assert "no stage records" in _one_error_line(capsys)
    from pcnalloc.commands.run import check_run_folder

    killed = tmp_path / "killed"  # a run killed in its first stage: reused, not refused
    (killed / "network").mkdir(parents=True)
    check_run_folder(killed, overwrite=False)
    bad = tmp_path / "bad.yaml"
    bad.write_text("evaluate: {loads: [1.0, -0.5]}\n")
    out = tmp_path / "run"
    assert main(["run", "--config", str(bad), "--out", str(out)]) == 2
    assert "evaluate.loads" in _one_error_line(capsys) and not out.exists()
    for text, field in [
        ("library: {loads: [.nan]}\n", "library.loads"),
        ("evaluate: {tune_seeds: [5]}\n", "evaluate.tune_seeds"),
        ("evaluate: {scenario_cases: [case_nope]}\n", "case_nope"),
        ("evaluate: {tuned_heuristics: [no-such]}\n", "no-such"),
    ]:
        bad.write_text(text)
        assert main(["run", "--config", str(bad), "--out", str(out)]) == 2
        assert field in _one_error_line(capsys) and not out.exists()


def test_failed_run_removes_only_its_unfinished_stages(tmp_path: Path, monkeypatch) -> None:
    import pcnalloc.pipeline as pipeline

    def fail(cfg, out, **kw):  # type: ignore[no-untyped-def]
        (Path(out) / "network").mkdir(parents=True, exist_ok=True)
        (Path(out) / "network" / "stage.json").write_text("{}")
        (Path(out) / "teacher").mkdir()
        (Path(out) / "teacher" / "step_1.pt").write_text("half")
        raise RuntimeError("planted")

    monkeypatch.setattr(pipeline, "run_pipeline", fail)
    out = tmp_path / "run"
    assert main(["run", "--out", str(out)]) == 1
    assert sorted(p.name for p in out.iterdir()) == ["network"]  # finished stage kept

    def fail_early(cfg, out, **kw):  # type: ignore[no-untyped-def]
        Path(out).mkdir(parents=True)
        (Path(out) / "network").mkdir()
        raise RuntimeError("planted")

    monkeypatch.setattr(pipeline, "run_pipeline", fail_early)
    assert main(["run", "--out", str(tmp_path / "fresh")]) == 1
    assert not (tmp_path / "fresh").exists()


def test_audit_verify_of_an_empty_file_is_not_ok(tmp_path: Path, capsys) -> None:
    assert main(["keys", "new", "--out", str(tmp_path / "k")]) == 0
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    capsys.readouterr()
    try:
        rc = main(["audit", "verify", str(empty), "--public-key", str(tmp_path / "k/pcnalloc.pub")])
    except SystemExit as ex:  # the verb reports FAIL through typer.Exit(1)
        rc = int(ex.code or 0)
    text = capsys.readouterr()
    assert rc != 0 and "OK" not in text.out
    assert "no complete record" in text.out + text.err


@pytest.mark.skipif(os.name != "posix", reason="pid-tagged temps need POSIX kill(0)")
def test_check_happens_before_work(tmp_path: Path, capsys, monkeypatch) -> None:
    """teacher evaluate used to refuse its --out only after the whole sweep."""
    import pcnalloc.teacher as teacher

    called: list[str] = []
    monkeypatch.setattr(teacher, "resolve_checkpoint", lambda p: called.append(str(p)))
    out = tmp_path / "sweep.json"
    out.write_text("{}")
    assert main(["teacher", "evaluate", "--teacher", "x.pt", "--out", str(out)]) == 2
    assert called == [] and "--overwrite" in _one_error_line(capsys)


def test_distributed_gap_is_staged(tmp_path: Path, tiny_graph_file: Path, capsys) -> None:
    out = tmp_path / "gap"
    args = ["distributed", "gap", "--case", str(tiny_graph_file), "--seeds", "0"]
    args += ["--requests", "20", "--staleness", "0,1", "--out", str(out)]
    assert main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == ["gap.json", "gap.png"]
    capsys.readouterr()
    assert main(args) == 2 and "--overwrite" in _one_error_line(capsys)
    assert main([*args, "--overwrite"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gap"]


def test_keys_new_writes_both_files_or_neither(tmp_path: Path, monkeypatch) -> None:
    import pcnalloc.fileio as fileio

    def disk_full(path, data):  # type: ignore[no-untyped-def]
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(fileio, "write_atomic", disk_full)
    assert main(["keys", "new", "--out", str(tmp_path / "k" / "keys")]) == 2
    assert list(tmp_path.iterdir()) == []  # no private key without its public key


@pytest.mark.parametrize("verb", [["teacher", "train"], ["distill", "--library", "none"]])
def test_tensorboard_path_that_is_a_file_is_refused(tmp_path: Path, capsys, verb) -> None:
    pytest.importorskip("tensorboard")
    f = tmp_path / "tb"
    f.write_text("x")
    args = [*verb, "--out", str(tmp_path / "o"), "--tensorboard", str(f)]
    assert main(args) == 2
    line = _one_error_line(capsys)
    assert "--tensorboard" in line and "is a file; give a folder path" in line
    assert not (tmp_path / "o").exists()
