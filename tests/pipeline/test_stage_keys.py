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
