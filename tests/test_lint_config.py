"""The lint configuration can fail: ruff's complexity and docstring rules and mypy each
catch a planted fault, and ``make lint`` runs them all."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    exe = BIN / name
    if not exe.exists():
        found = shutil.which(name)
        if found is None:
            pytest.skip(f"{name} is not installed (dev extra)")
        return found
    return str(exe)


def _ruff(code: str, filename: str) -> str:
    out = subprocess.run(
        [
            *(_tool("ruff"), "check", "--no-cache", "--output-format", "concise"),
            *("--stdin-filename", filename, "-"),
        ],
        input=code,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    return out.stdout


COMPLEX = (
    '"""A module."""\n\n\ndef branchy(x: int) -> int:\n    """Branch a lot."""\n'
    + "".join(f"    if x == {i}:\n        return {i}\n" for i in range(16))
    + "    return -1\n"
)


def test_make_lint_runs_ruff_and_mypy_on_the_package() -> None:
    makefile = (REPO / "Makefile").read_text()
    lint = makefile.split("\nlint:", 1)[1].split("\n\n", 1)[0]
    assert "ruff check" in lint and "ruff format --check" in lint
    assert "mypy src/pcnalloc" in lint


def test_ruff_refuses_a_function_above_complexity_15() -> None:
    assert "C901" in _ruff(COMPLEX, "src/pcnalloc/_planted.py")
    reasoned = COMPLEX.replace("int) -> int:", "int) -> int:  # noqa: C901 - a dispatch table")
    assert "C901" not in _ruff(reasoned, "src/pcnalloc/_planted.py")


def test_ruff_wants_docstrings_in_the_package_but_not_in_tests() -> None:
    code = '"""A module."""\n\n\ndef public(x: int) -> int:\n    return x\n'
    assert "D103" in _ruff(code, "src/pcnalloc/planted.py")
    assert "D103" not in _ruff(code, "tests/test_planted.py")


def test_mypy_with_the_project_config_catches_a_type_error(tmp_path) -> None:
    bad = tmp_path / "planted.py"
    bad.write_text("def f(x: int) -> str:\n    return x\n")
    out = subprocess.run(
        [
            *(_tool("mypy"), "--config-file", str(REPO / "pyproject.toml")),
            *("--cache-dir", str(tmp_path / "cache"), str(bad)),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert out.returncode == 1 and "return-value" in out.stdout, out.stdout
