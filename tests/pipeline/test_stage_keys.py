"""Honest caching: a stage key changes with the package's source; the signing key persists."""

from __future__ import annotations

from pcnalloc.pipeline import stages
from pcnalloc.pipeline.config import load_run_config
from pcnalloc.pipeline.steps import key_dir


def test_stage_key_follows_the_source(monkeypatch) -> None:
    k = stages.stage_key("teacher", {"steps": 10})
    assert k == stages.stage_key("teacher", {"steps": 10})
    monkeypatch.setattr(stages, "_CODE", ["a-changed-simulator"])
    assert stages.stage_key("teacher", {"steps": 10}) != k


def test_key_dir_is_outside_the_output_tree(tmp_path, monkeypatch) -> None:
    cfg = load_run_config()
    monkeypatch.setenv("PCNALLOC_KEY_DIR", str(tmp_path / "keys"))
    assert key_dir(cfg) == tmp_path / "keys"
    pinned = cfg.model_copy(update={"key_dir": str(tmp_path / "mine")})
    assert key_dir(pinned) == tmp_path / "mine"


def test_a_stage_is_recomputed_after_a_source_or_version_change(tmp_path, monkeypatch) -> None:
    """Same config: reused; changed source (patched code hash) or installed version: rerun."""
    calls: list[str] = []

    def stage(folder):
        calls.append(folder.name)
        (folder / "result.txt").write_text(str(len(calls)))
        return {"n": len(calls)}

    def run() -> dict:
        return stages.StageRunner(tmp_path).run("teacher", {"steps": 10}, stage)

    assert run() == {"n": 1} and run() == {"n": 1} and len(calls) == 1  # reused
    monkeypatch.setattr(stages, "_CODE", ["a-changed-simulator"])
    assert run() == {"n": 2} and len(calls) == 2
    assert run() == {"n": 2}  # and reused again under the new code
    monkeypatch.setattr(stages, "__version__", "9.9.9")
    assert run() == {"n": 3} and (tmp_path / "teacher" / "result.txt").read_text() == "3"


def test_the_stage_key_takes_the_installed_version() -> None:
    from importlib.metadata import version

    assert stages.__version__ == version("pcnalloc")
