"""``pcnalloc serve`` takes its option defaults and help texts from ``ServiceConfig``, which
also checks the values (a bad ``--log-level`` is refused before the port opens)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer

from pcnalloc.cli import app, main
from pcnalloc.edge.config import ServiceConfig

SHARED = {"host", "case", "rules", "audit", "audit_key", "integrity_only", "precision", "log_level"}


def _mismatches(command: Any) -> list[str]:
    """Options named after a service field whose default or help is not the field's."""
    fields = ServiceConfig.model_fields
    return sorted(
        p.name
        for p in command.params
        if p.name in fields
        and p.name in SHARED
        and (
            p.default != fields[p.name].default
            or not str(p.help).startswith(str(fields[p.name].description))
        )
    )


def test_serve_options_are_the_service_fields() -> None:
    cmd = typer.main.get_command(app).commands["serve"]  # type: ignore[attr-defined]
    assert SHARED <= {p.name for p in cmd.params}
    assert _mismatches(cmd) == []


def test_the_comparison_catches_a_planted_second_default() -> None:
    planted = typer.Typer()

    @planted.command()
    def serve_cmd(
        host: str = typer.Option("0.0.0.0", help=ServiceConfig.model_fields["host"].description),
        precision: str = typer.Option("fp32", help="model precision: fp32 or int8"),
        log_level: str = typer.Option("info", help="uvicorn log level"),
    ) -> None: ...

    assert _mismatches(typer.main.get_command(planted)) == ["host", "precision"]


def test_a_bad_log_level_is_refused_before_serving(tmp_path: Path, monkeypatch, capsys) -> None:
    token = tmp_path / "token"
    token.write_text("a-token-of-more-than-16-chars\n")
    os.chmod(token, 0o600)
    monkeypatch.setattr("uvicorn.run", lambda *a, **kw: (_ for _ in ()).throw(AssertionError))
    argv = ["serve", "--artifact", str(tmp_path / "none"), "--public-key", str(tmp_path / "k")]
    argv += ["--region", "0", "--port", "8765", "--token-file", str(token)]
    assert main([*argv, "--log-level", "loud"]) == 2
    err = capsys.readouterr().err
    assert "log_level" in err and "loud" in err and "Traceback" not in err
