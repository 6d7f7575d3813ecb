"""``pcnalloc generalise`` takes its defaults and help texts from
``GeneraliseStage``, which also checks the values; ``run_generalise``'s keyword defaults
(the library function sits below the config's layer) are held equal to the same fields."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from option_fields import Spec, command, mismatches, planted, split

from pcnalloc.cli import main
from pcnalloc.commands.distill import parse_seeds
from pcnalloc.distill.generalise import parse_teachers, run_generalise
from pcnalloc.pipeline.config import GeneraliseStage

LISTS = ("families", "train_cases", "test_cases", "heuristics")
SEEDS = ("eval_seeds", "tune_seeds")
SPEC: Spec = {
    **{n: (GeneraliseStage, n, split) for n in LISTS},
    **{n: (GeneraliseStage, n, lambda t: tuple(parse_seeds(t))) for n in SEEDS},
    "teachers": (GeneraliseStage, "teachers", parse_teachers),
    **{
        n: (GeneraliseStage, n, None)
        for n in GeneraliseStage.model_fields
        if n not in (*LISTS, *SEEDS, "teachers")
    },
}


def test_generalise_options_are_the_stage_fields() -> None:
    assert len(SPEC) == 15
    assert mismatches(command("generalise"), SPEC) == []


def test_the_check_catches_a_planted_second_default() -> None:
    cmd = command("generalise")
    with planted(cmd, "tune_seeds", "5000"), planted(cmd, "epochs", 10):
        assert mismatches(cmd, SPEC) == ["epochs", "tune_seeds"]


def _signature_drift(defaults: dict[str, object]) -> list[str]:
    """Keyword defaults of ``run_generalise`` that are not the stage's (as tuples)."""
    stage = GeneraliseStage().model_dump()
    norm = {k: tuple(v) if isinstance(v, list | tuple) else v for k, v in defaults.items()}
    return sorted(
        k
        for k, v in stage.items()
        if k in norm and norm[k] != (tuple(v) if isinstance(v, list | tuple) else v)
    )


def test_run_generalise_defaults_are_the_stage_fields() -> None:
    sig = inspect.signature(run_generalise).parameters
    defaults = {k: p.default for k, p in sig.items() if p.default is not inspect.Parameter.empty}
    defaults["teachers"] = defaults["teachers"] or {}  # None means "none given"
    assert set(GeneraliseStage.model_fields) - set(sig) == {"epochs"}  # epochs: in cfg
    assert _signature_drift(defaults) == []
    assert _signature_drift({**defaults, "tune_requests": 200}) == ["tune_requests"]


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--eval-seeds", "300,2000"], "eval_seeds"),
        (["--tune-seeds", "5"], "tune_seeds"),
        (["--student", "huge"], "student"),
        (["--families", ","], "families"),
    ],
)
def test_a_bad_value_is_one_config_line_before_any_output(
    argv: list[str], named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["generalise", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert named in err and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert not out.exists()
