"""The teacher's layer sizes are written once: in the encoder's shape, which the config reads."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pcnalloc.teacher.config as teacher_config_module
from pcnalloc.nn import EncoderShape
from pcnalloc.teacher.config import ENCODER_SIZES, TeacherConfig


def literal_size_defaults(source: str) -> dict[str, object]:
    """``TeacherConfig`` size fields whose default is written as a literal (a second copy)."""
    found: dict[str, object] = {}
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.ClassDef) and node.name == "TeacherConfig"):
            continue
        for stmt in node.body:
            if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
                continue
            if stmt.target.id not in ENCODER_SIZES or stmt.value is None:
                continue
            value = stmt.value
            if isinstance(value, ast.Call) and value.args:
                value = value.args[0]  # Field(DEFAULT, …)
            if isinstance(value, ast.Constant):
                found[stmt.target.id] = value.value
    return found


def test_size_defaults_are_the_encoders() -> None:
    src = Path(teacher_config_module.__file__).read_text(encoding="utf-8")
    assert literal_size_defaults(src) == {}
    shape = {f.name: f.default for f in dataclasses.fields(EncoderShape)}
    assert TeacherConfig().encoder_sizes() == {k: shape[k] for k in ENCODER_SIZES}


def test_the_scan_catches_a_planted_literal() -> None:
    planted = (
        "class TeacherConfig(BaseModel):\n"
        "    hidden: int = Field(64, ge=8)\n"
        "    q_hidden: int = Field(EncoderShape.q_hidden, ge=8)\n"
        "    heads: int = 1\n"
        "    lr: float = Field(1e-3)\n"
    )
    assert literal_size_defaults(planted) == {"hidden": 64, "heads": 1}
