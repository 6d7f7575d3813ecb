"""``pcnalloc library build`` takes its defaults and help texts from the library stage's
config (``LibraryStage``; executor and workers from ``RunConfig``), which the main job reads.
"""

from __future__ import annotations

from typing import Any

import typer

from pcnalloc.cli import app
from pcnalloc.commands._common import parse_numbers
from pcnalloc.pipeline.config import LibraryStage, RunConfig, load_run_config

PARSE = {
    "cases": lambda t: tuple(p.strip() for p in t.split(",") if p.strip()),
    "loads": lambda t: tuple(parse_numbers(t, "--loads")),
}
FIELDS: dict[str, type] = {
    **dict.fromkeys(("cases", "loads", "episodes", "explore"), LibraryStage),
    "executor": RunConfig,
    "workers": RunConfig,
}


def _mismatches(command: Any) -> list[str]:
    bad = []
    for p in command.params:
        if p.name not in FIELDS:
            continue
        f = FIELDS[p.name].model_fields[p.name]
        value = PARSE.get(p.name, lambda v: v)(p.default)
        if value != f.default or not str(p.help).startswith(str(f.description)):
            bad.append(p.name)
    return sorted(bad)


def _build() -> Any:
    return typer.main.get_command(app).commands["library"].commands["build"]  # type: ignore[attr-defined]


def test_library_build_options_are_the_stage_fields() -> None:
    cmd = _build()
    assert {p.name for p in cmd.params} >= set(FIELDS)
    assert _mismatches(cmd) == []


def test_the_check_catches_a_planted_second_default() -> None:
    cmd = _build()
    loads = next(p for p in cmd.params if p.name == "loads")
    old = loads.default
    try:
        loads.default = "1.0,1.5"
        assert _mismatches(cmd) == ["loads"]
    finally:
        loads.default = old


def test_the_main_job_keeps_its_two_loads() -> None:
    assert load_run_config().library.loads == (1.0, 1.5)


def _signature_mismatches(command: Any) -> list[str]:
    """Options whose default is not ``build_library``'s (lockstep, and seed as seed_base)."""
    import inspect

    from pcnalloc.library.build import build_library

    sig = inspect.signature(build_library).parameters
    want = {"lockstep": sig["lockstep"].default, "seed": sig["seed_base"].default}
    return sorted(p.name for p in command.params if p.name in want and p.default != want[p.name])


def test_lockstep_and_seed_are_the_library_builders() -> None:
    assert _signature_mismatches(_build()) == []


def test_the_signature_check_catches_a_planted_seed() -> None:
    cmd = _build()
    seed = next(p for p in cmd.params if p.name == "seed")
    old = seed.default
    try:
        seed.default = 100_000
        assert _signature_mismatches(cmd) == ["seed"]
    finally:
        seed.default = old
