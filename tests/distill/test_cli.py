"""`pcnalloc distill` end to end on a synthetic library (no teacher: held-out figures only)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pcnalloc.cli import main
from pcnalloc.commands.distill import parse_seeds
from pcnalloc.errors import ConfigError


def test_parse_seeds() -> None:
    assert parse_seeds("100-104") == [100, 101, 102, 103, 104]
    assert parse_seeds("1,5, 9") == [1, 5, 9]
    assert parse_seeds("") == []
    with pytest.raises(ConfigError, match="bad --eval-seeds"):
        parse_seeds("9-3")


def test_distill_command_with_ablation(synthetic_library: Path, tmp_path: Path) -> None:
    out = tmp_path / "edge"
    args = ["distill", "--library", str(synthetic_library), "--out", str(out), "--arch", "mlp"]
    assert main([*args, "--epochs", "2", "--ablation"]) == 0
    assert {"student.pt", "fidelity.json", "ablation.json", "history.csv", "curves.png"} <= {
        p.name for p in out.iterdir()
    }
    rows = json.loads((out / "ablation.json").read_text())
    assert [r["variant"] for r in rows] == ["kl", "kl+hard", "kl+hard+soft"]
    assert [(r["lambda_hard"], r["lambda_soft"]) for r in rows] == [(0, 0), (1, 0), (1, 0.1)]
    fid = json.loads((out / "fidelity.json").read_text())
    assert 0 <= fid["held_out"]["top1_agreement"] <= 1
    assert main(["distill", "--library", str(tmp_path / "none"), "--out", str(out)]) == 2
