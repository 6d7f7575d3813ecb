"""The CLI boundary: bad input is one line and exit 2; an internal error points to --debug."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from pcnalloc import cli


def _err_lines(capsys) -> list[str]:
    return [x for x in capsys.readouterr().err.splitlines() if x.strip()]


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("bytes.yaml", b"rules:\n  - \xff\xfe bad\n", "not UTF-8"),
        (
            "deep.yaml",
            (
                "rules:\n  - id: deep\n    severity: hard\n    violates: "
                + "{not: " * 2000
                + "{field: hops, op: gt, value: 1}"
                + "}" * 2000
                + "\n"
            ).encode(),
            "nested too deeply",
        ),
        (
            "deep30.yaml",
            (
                "rules:\n  - id: deep\n    severity: hard\n    violates: "
                + "{not: " * 30
                + "{field: hops, op: gt, value: 1}"
                + "}" * 30
                + "\n"
            ).encode(),
            "nested deeper than 16",
        ),
        ("nan.yaml", b"params: {util_knee: .nan}\n", "finite number"),
    ],
)
def test_bad_rule_files_are_one_line_exit_2(tmp_path: Path, capsys, name, content, match) -> None:
    p = tmp_path / name
    p.write_bytes(content)
    assert cli.main(["rules", "check", str(p)]) == 2
    lines = _err_lines(capsys)
    assert len(lines) == 1 and match in lines[0] and "Traceback" not in lines[0]


def _boom_app(exc: BaseException) -> typer.Typer:
    app = typer.Typer()

    @app.command()
    def boom() -> None:
        raise exc

    @app.command()
    def other() -> None:  # two commands keep typer from collapsing to a single one
        pass

    return app


def test_anticipated_failures_are_one_line(monkeypatch, capsys) -> None:
    monkeypatch.setattr(cli, "app", _boom_app(IsADirectoryError(21, "Is a directory", "/tmp")))
    assert cli.main(["boom"]) == 2
    lines = _err_lines(capsys)
    assert lines == ["error: cannot use '/tmp': Is a directory"]


def test_unexpected_error_points_to_debug_and_debug_raises(monkeypatch, capsys) -> None:
    monkeypatch.setattr(cli, "app", _boom_app(ValueError("surprise")))
    assert cli.main(["boom"]) == 1
    lines = _err_lines(capsys)
    assert len(lines) == 1 and "ValueError: surprise" in lines[0] and "--debug" in lines[0]
    with pytest.raises(ValueError, match="surprise"):
        cli.main(["--debug", "boom"])
