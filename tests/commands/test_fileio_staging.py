"""Output helpers: refusals before work, staged outputs that are whole or absent, stale temps."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pcnalloc.errors import OutputPathError
from pcnalloc.fileio import (
    check_output,
    clean_stale,
    created_on_failure_removed,
    staged_dir,
    staged_file,
    write_atomic,
)


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_check_output_refusals(tmp_path: Path) -> None:
    f = tmp_path / "f.json"
    f.write_text("{}")
    d = tmp_path / "d"
    d.mkdir()
    with pytest.raises(OutputPathError, match="--overwrite"):
        check_output(f, kind="file")
    with pytest.raises(OutputPathError, match="--overwrite"):
        check_output(d, kind="dir")
    with pytest.raises(OutputPathError, match="is a folder; give a file path"):
        check_output(d, kind="file", overwrite=True)
    with pytest.raises(OutputPathError, match="is a file; give a folder path"):
        check_output(f, kind="dir", overwrite=True)
    with pytest.raises(OutputPathError, match="is a file, not a folder"):
        check_output(f / "sub" / "x.json", kind="file")
    assert check_output(f, kind="file", overwrite=True) == f
    assert check_output(tmp_path / "new", kind="dir") == tmp_path / "new"
    assert not (tmp_path / "new").exists()  # a check creates nothing


def test_staged_dir_publishes_whole_or_nothing(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "lib"
    with staged_dir(out) as work:
        assert work.parent == out.parent and work != out and not out.exists()
        (work / "part.parquet").write_text("120 rows")
    assert (out / "part.parquet").read_text() == "120 rows"
    # a failing replacement keeps the old folder exactly as it was and leaves no temp
    with pytest.raises(RuntimeError), staged_dir(out, overwrite=True) as work:
        (work / "part.parquet").write_text("20 rows")
        raise RuntimeError("planted failure")
    assert (out / "part.parquet").read_text() == "120 rows"
    assert sorted(p.name for p in out.parent.iterdir()) == ["lib"]
    with pytest.raises(OutputPathError, match="--overwrite"), staged_dir(out):
        pass
    with staged_dir(out, overwrite=True) as work:
        (work / "part.parquet").write_text("20 rows")
    assert (out / "part.parquet").read_text() == "20 rows"
    assert sorted(p.name for p in out.parent.iterdir()) == ["lib"]


def test_failed_staging_removes_the_parents_it_made(tmp_path: Path) -> None:
    out = tmp_path / "x" / "y" / "out"
    with pytest.raises(KeyboardInterrupt), staged_dir(out) as work:
        (work / "half").write_text("…")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []  # no empty folders left behind
    with pytest.raises(ValueError), staged_file(out / "m.png") as tmp:
        tmp.write_bytes(b"\x89PNG")
        raise ValueError("planted")
    assert list(tmp_path.iterdir()) == []


def test_staged_file_keeps_the_suffix_and_mode(tmp_path: Path) -> None:
    out = tmp_path / "map.png"
    with staged_file(out) as tmp:
        assert tmp.suffix == ".png" and tmp.parent == tmp_path
        tmp.write_bytes(b"png")
    assert out.read_bytes() == b"png"
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask
    with (
        pytest.raises(OutputPathError, match="nothing was written"),
        staged_file(tmp_path / "none.png"),
    ):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.png"]


def test_created_on_failure_removed_keeps_an_existing_file(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "audit.jsonl"
    with pytest.raises(RuntimeError), created_on_failure_removed(log):
        log.write_text('{"header": 1}\n')  # a header-only log
        raise RuntimeError("planted")
    assert not (tmp_path / "logs").exists()
    log.parent.mkdir()
    log.write_text("kept\n")
    with pytest.raises(RuntimeError), created_on_failure_removed(log):
        raise RuntimeError("planted")
    assert log.read_text() == "kept\n"


def test_stale_temps_of_a_killed_run_are_cleaned(tmp_path: Path, caplog) -> None:
    out = tmp_path / "lib"
    dead = _dead_pid()
    stale_dir = tmp_path / f".lib.{dead}.abc123.tmp"
    stale_dir.mkdir()
    (stale_dir / "part.parquet").write_text("half")
    stale_file = tmp_path / f".lib.{dead}.k9_x.tmp"
    stale_file.write_text("half")
    live = tmp_path / f".lib.{os.getpid()}.zz.tmp"  # a live writer's temp is left alone
    live.mkdir()
    foreign = tmp_path / ".lib.q1w2e3.tmp"  # no pid: reported, not removed
    foreign.write_text("?")
    other = tmp_path / f".library.{dead}.abc.tmp"  # another output's temp: not ours
    other.write_text("x")
    with caplog.at_level(logging.WARNING, logger="pcnalloc.fileio"):
        check_output(out, kind="dir")
    assert not stale_dir.exists() and not stale_file.exists()
    assert live.exists() and foreign.exists() and other.exists()
    assert "killed run" in caplog.text and "q1w2e3" in caplog.text


def test_an_interrupted_swap_is_restored(tmp_path: Path) -> None:
    out = tmp_path / "art"
    old = tmp_path / f".art.{_dead_pid()}.ab12.old"
    old.mkdir()
    (old / "manifest.json").write_text("{}")
    assert clean_stale(out) == []
    assert (out / "manifest.json").read_text() == "{}" and not old.exists()


def test_write_atomic_temps_carry_the_pid(tmp_path: Path, monkeypatch) -> None:
    seen: list[str] = []
    real = os.replace

    def spy(a, b):  # type: ignore[no-untyped-def]
        seen.append(Path(a).name)
        return real(a, b)

    monkeypatch.setattr(os, "replace", spy)
    write_atomic(tmp_path / "r.json", "{}")
    assert seen and seen[0].startswith(f".r.json.{os.getpid()}.") and seen[0].endswith(".tmp")


def test_write_atomic_onto_a_folder_names_the_folder(tmp_path: Path) -> None:
    (tmp_path / "r.json").mkdir()
    with pytest.raises(OutputPathError, match=r"r\.json' is a folder"):
        write_atomic(tmp_path / "r.json", "{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]  # no temp left


def _read_only(monkeypatch, folder: Path) -> None:
    """Make ``folder`` unwritable: chmod for an ordinary user; root ignores the mode, so there
    the access check is told so for that folder only."""
    folder.chmod(0o555)
    if os.geteuid() == 0:
        real = os.access

        def access(p, mode, **kw):  # type: ignore[no-untyped-def]
            return False if Path(p) == folder and mode & os.W_OK else real(p, mode, **kw)

        monkeypatch.setattr(os, "access", access)


def test_an_unwritable_parent_is_refused_before_work(tmp_path: Path, monkeypatch) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    _read_only(monkeypatch, ro)
    try:
        for out, kind in [(ro / "r.json", "file"), (ro / "a" / "b" / "lib", "dir")]:
            with pytest.raises(OutputPathError, match=r"cannot write in '.*ro'"):
                check_output(out, kind=kind)  # type: ignore[arg-type]
        check_output(tmp_path / "ok.json", kind="file")  # a writable one still passes
    finally:
        ro.chmod(0o755)


def test_empty_ok_lets_an_empty_folder_through(tmp_path: Path) -> None:
    d = tmp_path / "tb"
    d.mkdir()
    assert check_output(d, kind="dir", empty_ok=True) == d
    (d / "events.out").write_text("x")
    with pytest.raises(OutputPathError, match="--overwrite"):
        check_output(d, kind="dir", empty_ok=True)
    (tmp_path / "e").mkdir()
    with pytest.raises(OutputPathError, match="--overwrite"):
        check_output(tmp_path / "e", kind="dir")  # without empty_ok an empty folder counts
