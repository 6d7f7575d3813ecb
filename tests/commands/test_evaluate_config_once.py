"""``pcnalloc evaluate`` and ``teacher evaluate`` take their grid defaults and help texts from
the evaluate stage's config (``EvaluateStage``), the object the main job reads too.

A list option's default is text; it counts as the field's default when the verb's own parser
reads it back to the field's values.
"""

from __future__ import annotations

from typing import Any

import typer

from pcnalloc.cli import app
from pcnalloc.commands._common import parse_numbers
from pcnalloc.evaluate.sweep import parse_seeds
from pcnalloc.pipeline.config import EvaluateStage, RunConfig, load_run_config


def _split(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


PARSE = {
    "policies": _split,
    "cases": _split,
    "loads": lambda t: tuple(parse_numbers(t, "--loads")),
    "seeds": lambda t: tuple(parse_seeds(t)),
}
"""How the command line reads each list option (the others are taken as they are)."""
FIELDS: dict[str, type] = {
    **dict.fromkeys(EvaluateStage.model_fields, EvaluateStage),
    "executor": RunConfig,
    "workers": RunConfig,
}


def _mismatches(command: Any, names: set[str]) -> list[str]:
    """Options in ``names`` whose default or help is not their config field's."""
    bad = []
    for p in command.params:
        if p.name not in names:
            continue
        f = FIELDS[p.name].model_fields[p.name]
        value = PARSE.get(p.name, lambda v: v)(p.default)
        if value != f.default or not str(p.help).startswith(str(f.description)):
            bad.append(p.name)
    return sorted(bad)


def _command(*path: str) -> Any:
    cmd: Any = typer.main.get_command(app)
    for name in path:
        cmd = cmd.commands[name]
    return cmd


EVALUATE = {
    "policies", "cases", "loads", "seeds", "requests", "executor", "bound_requests",
    "bound_time_limit_s",
}  # fmt: skip
TEACHER = {"cases", "seeds", "requests", "workers"}


def test_evaluate_options_are_the_stage_fields() -> None:
    cmd = _command("evaluate")
    assert EVALUATE <= {p.name for p in cmd.params}
    assert _mismatches(cmd, EVALUATE) == []
    flags = {p.name: p.opts for p in cmd.params}
    assert flags["bound_time_limit_s"] == ["--bound-time-limit"]  # the flag keeps its name


def test_teacher_evaluate_shares_the_grid_fields() -> None:
    cmd = _command("teacher", "evaluate")
    assert TEACHER <= {p.name for p in cmd.params}
    assert _mismatches(cmd, TEACHER) == []


def test_the_comparison_catches_a_planted_second_default() -> None:
    planted = typer.Typer()
    help_of = {n: EvaluateStage.model_fields[n].description for n in ("requests", "seeds")}

    @planted.command()
    def evaluate(
        requests: int = typer.Option(2000, help=help_of["requests"]),
        seeds: str = typer.Option("0-4", help=help_of["seeds"]),
        cases: str = typer.Option("case30", help="another text"),
        loads: str = typer.Option("0.5,1,1.5", help="offered loads ρ"),
    ) -> None: ...

    assert _mismatches(typer.main.get_command(planted), EVALUATE) == ["cases", "requests"]


def test_the_main_job_keeps_its_own_evaluation() -> None:
    """run_default.yaml sets what the main job evaluates; the class defaults are the CLI's."""
    ev = load_run_config().evaluate
    assert ev.policies[:4] == ("teacher", "student", "student+rules", "edge+rules")
    assert (ev.seeds, ev.requests, ev.bound_time_limit_s) == ((100, 101, 102, 103), 1000, 5.0)
    assert EvaluateStage().seeds == (0, 1, 2, 3, 4) and EvaluateStage().bound_time_limit_s == 20
