"""The compile stage's settings are one config (``CompileConfig``): ``pcnalloc compile`` takes
its option defaults and help texts from it, and the main job passes every field on."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import typer

import pcnalloc.export.compile as compile_mod
import pcnalloc.network.builder as builder
from pcnalloc.cli import app
from pcnalloc.export.config import CompileConfig
from pcnalloc.pipeline.config import CompileStage, load_run_config
from pcnalloc.pipeline.steps import compile_stage


def _mismatches(command: Any, model: type = CompileConfig) -> list[str]:
    """Options named after a config field whose default or help is not the field's."""
    fields = model.model_fields
    bad = []
    for p in command.params:
        if p.name in fields:
            f = fields[p.name]
            if p.default != f.default or p.help != f.description:
                bad.append(p.name)
    return bad


def test_cli_compile_options_are_the_config_fields() -> None:
    cmd = typer.main.get_command(app).commands["compile"]  # type: ignore[attr-defined]
    names = {p.name for p in cmd.params}
    assert {"int8", "rows", "min_agreement"} <= names
    assert _mismatches(cmd) == []
    assert CompileStage is CompileConfig and load_run_config().compile == CompileConfig()


def test_the_comparison_catches_a_planted_second_default() -> None:
    planted = typer.Typer()

    @planted.command()
    def compile_cmd(
        rows: int = typer.Option(2048, help=CompileConfig.model_fields["rows"].description),
        int8: bool = typer.Option(True, help="another text"),
    ) -> None: ...

    assert sorted(_mismatches(typer.main.get_command(planted))) == ["int8", "rows"]


class _Bar:
    def start(self, *a: object) -> None:
        pass


def test_main_job_passes_every_compile_field_and_falls_back_to_fp32(
    tmp_path: Path, monkeypatch
) -> None:
    calls: list[dict[str, Any]] = []
    seen_rows: list[int] = []

    def fake_compile(module, rows, *, int8, out_dir, **kw):  # type: ignore[no-untyped-def]
        calls.append({"int8": int8, "min_agreement": kw["min_agreement"]})
        if int8:
            raise compile_mod.QuantizationRejected(0.5, kw["min_agreement"], 7)
        out_dir.mkdir(parents=True)
        return SimpleNamespace(path=out_dir, parity_max_abs=0.0, int8_agreement=None, model_bytes=1)

    def fake_rows(folder, key, *, max_rows):  # type: ignore[no-untyped-def]
        seen_rows.append(max_rows)
        return [], SimpleNamespace(network=SimpleNamespace(case="tiny"))

    monkeypatch.setattr(compile_mod, "compile_student", fake_compile)
    monkeypatch.setattr(compile_mod, "load_student_module", lambda p: SimpleNamespace())
    monkeypatch.setattr(compile_mod, "library_rows", fake_rows)
    monkeypatch.setattr(builder, "cached_network", lambda case, cfg: None)
    cfg = load_run_config(
        sets=["compile.rows=7", "compile.min_agreement=0.9", f"key_dir={tmp_path / 'keys'}"]
    )
    res = compile_stage(cfg, {"folder": "lib"}, {"student": "s.pt"}, tmp_path / "c", _Bar())
    assert seen_rows == [7]
    assert calls == [{"int8": True, "min_agreement": 0.9}, {"int8": False, "min_agreement": 0.9}]
    assert "int8 model rejected" in res["int8_rejected"]
