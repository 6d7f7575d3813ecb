"""``pcnalloc tune`` and ``teacher evaluate`` take their defaults and help texts from
``TuneStage`` and ``TeacherEvaluateStage`` (case and load from the env config), which also
check the values; the main job tunes the same heuristics at the same horizon."""

from __future__ import annotations

from pathlib import Path

import pytest
from option_fields import Spec, command, mismatches, planted, split

from pcnalloc.cli import main
from pcnalloc.commands._common import parse_numbers
from pcnalloc.config import NetworkConfig, TrafficConfig
from pcnalloc.evaluate.sweep import parse_seeds
from pcnalloc.pipeline.config import (
    EvaluateStage,
    TeacherEvaluateStage,
    TuneStage,
    load_run_config,
)

TUNE: Spec = {
    "case": (NetworkConfig, "case", None),
    "load": (TrafficConfig, "load", None),
    "policies": (TuneStage, "policies", split),
    "seeds": (TuneStage, "seeds", lambda t: tuple(parse_seeds(t))),
    "requests": (TuneStage, "requests", None),
}
TEACHER: Spec = {
    "loads": (TeacherEvaluateStage, "loads", lambda t: tuple(parse_numbers(t, "--loads"))),
    "baselines": (TeacherEvaluateStage, "baselines", split),
}


def test_tune_options_are_the_stage_fields() -> None:
    assert mismatches(command("tune"), TUNE) == []


def test_teacher_evaluate_options_are_the_stage_fields() -> None:
    assert mismatches(command("teacher", "evaluate"), TEACHER) == []


def test_the_check_catches_a_planted_second_default() -> None:
    tune, teacher = command("tune"), command("teacher", "evaluate")
    with planted(tune, "seeds", "1000000-1000001"):
        assert mismatches(tune, TUNE) == ["seeds"]
    with planted(teacher, "loads", "1.0"):
        assert mismatches(teacher, TEACHER) == ["loads"]


def test_the_main_job_tunes_the_same_heuristics_on_its_own_seeds() -> None:
    ev, tune = load_run_config().evaluate, TuneStage()
    assert EvaluateStage().tuned_heuristics == tune.policies
    assert EvaluateStage().tune_requests == tune.requests == 500
    assert ev.tune_seeds == (1_000_000, 1_000_001) and tune.seeds == (
        1_000_000,
        1_000_001,
        1_000_002,
    )


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["tune", "--seeds", "5"], "seeds"),
        (["tune", "--policies", ","], "policies"),
        (["teacher", "evaluate", "--teacher", "none.pt", "--loads", "20"], "loads"),
    ],
)
def test_a_bad_value_is_one_config_line(
    argv: list[str], named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.json"
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert named in err and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert not out.exists()
