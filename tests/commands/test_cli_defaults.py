"""Every CLI default is written once: in a stage's config object, which the verb reads.

What is measured: a default written as a literal on a verb's parameter in
``pcnalloc/commands/`` (``requests: Annotated[int, typer.Option(...)] = 2000``) is a second
copy of a value some config already holds, so the two drift (``evaluate`` used 2000 requests
where the pipeline used 1000). A default taken from a config field (``= _CFG.requests``) is
not a copy. ``None`` and ``False`` mean "not given" / "off" and are not counted.

The literals still in the CLI are listed in ``data/cli_literal_defaults.txt`` while verbs
move to config-derived options: a new literal fails here, and a listed one that is gone must
be struck from the file (the list only shrinks).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pcnalloc

ROOT = Path(pcnalloc.__file__).parent
BASELINE = Path(__file__).with_name("data") / "cli_literal_defaults.txt"


def literal_defaults(commands: Path) -> dict[str, object]:
    """``module.function.parameter`` → literal default, for every typer option or argument."""
    found: dict[str, object] = {}
    for f in sorted(commands.glob("*.py")):
        for fn in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if not isinstance(fn, ast.FunctionDef):
                continue
            a = fn.args
            pos = [None] * (len(a.args) - len(a.defaults)) + list(a.defaults)
            for arg, default in zip([*a.args, *a.kwonlyargs], [*pos, *a.kw_defaults], strict=True):
                ann = ast.unparse(arg.annotation) if arg.annotation is not None else ""
                if default is None or not ("typer.Option" in ann or "typer.Argument" in ann):
                    continue
                try:
                    value = ast.literal_eval(default)
                except ValueError:
                    continue  # an expression: read from a config or a constant
                if value is not None and value is not False:
                    found[f"{f.stem}.{fn.name}.{arg.arg}"] = value
    return found


def _baseline() -> set[str]:
    lines = BASELINE.read_text(encoding="utf-8").splitlines()
    return {ln.split("#", 1)[0].strip() for ln in lines} - {""}


def test_no_new_literal_default_in_the_cli() -> None:
    new = sorted(set(literal_defaults(ROOT / "commands")) - _baseline())
    assert not new, (
        "take these defaults from the stage's config object instead of writing them again: "
        + ", ".join(new)
    )


def test_the_list_of_literal_defaults_only_shrinks() -> None:
    gone = sorted(_baseline() - set(literal_defaults(ROOT / "commands")))
    assert not gone, f"no longer literal: strike them from {BASELINE.name}: {', '.join(gone)}"


def test_the_scan_catches_a_planted_literal_and_spares_a_config_default(tmp_path) -> None:
    (tmp_path / "verb.py").write_text(
        "from typing import Annotated\nimport typer\n"
        "def cmd(\n"
        "    requests: Annotated[int, typer.Option(help='n')] = 2000,\n"
        "    seed: Annotated[int, typer.Option(help='s')] = _CFG.seed,\n"
        "    json_out: Annotated[str | None, typer.Option(help='j')] = None,\n"
        "    force: Annotated[bool, typer.Option(help='f')] = False,\n"
        "    cases: Annotated[str, typer.Option(help='c')] = 'case30',\n"
        ") -> None: ...\n"
    )
    assert literal_defaults(tmp_path) == {"verb.cmd.requests": 2000, "verb.cmd.cases": "case30"}
