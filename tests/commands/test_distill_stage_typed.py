"""``pcnalloc distill`` takes its student, closed-loop seeds and requests from
``DistillStage``; the run config's distillation settings are a typed ``DistillConfig`` (no
free mapping): a bad key fails when the file is read, the section dumps back to its
overrides (the stage's key material), and the distillation takes the run's seed unless the
section sets one."""

from __future__ import annotations

from pathlib import Path

import pytest
from option_fields import Spec, command, mismatches, planted

from pcnalloc.cli import main
from pcnalloc.commands.distill import parse_seeds
from pcnalloc.distill.config import DistillConfig, distill_config
from pcnalloc.errors import ConfigError
from pcnalloc.pipeline.config import DistillStage, load_run_config


def test_the_section_is_a_distill_config_that_dumps_to_its_overrides() -> None:
    cfg = load_run_config()
    assert isinstance(cfg.distill.config, DistillConfig)
    assert cfg.distill.model_dump()["config"] == {"epochs": 20}  # run_default.yaml's section
    assert cfg.distill.distill_config(cfg.seed) == distill_config(seed=cfg.seed, epochs=20)


def test_the_run_seed_is_used_unless_the_section_sets_one() -> None:
    assert load_run_config(sets=["seed=7"]).distill.distill_config(7).seed == 7
    own = load_run_config(sets=["seed=7", "distill.config.seed=3"])
    assert own.distill.distill_config(7).seed == 3
    assert own.distill.model_dump()["config"] == {"epochs": 20, "seed": 3}


@pytest.mark.parametrize("bad", ["distill.config.nope=1", "distill.config.epochs=0"])
def test_a_bad_distill_key_fails_when_the_file_is_read(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"distill\.config"):
        load_run_config(sets=[bad])


DISTILL: Spec = {
    "student": (DistillStage, "student", None),
    "eval_seeds": (DistillStage, "eval_seeds", lambda t: tuple(parse_seeds(t))),
    "requests": (DistillStage, "eval_requests", None),
}


def test_distill_options_are_the_stage_fields() -> None:
    assert mismatches(command("distill"), DISTILL) == []


def test_the_check_catches_a_planted_second_default() -> None:
    cmd = command("distill")
    with planted(cmd, "eval_seeds", "100-104"):
        assert mismatches(cmd, DISTILL) == ["eval_seeds"]


def test_fidelity_seeds_sit_in_the_fidelity_range() -> None:
    """Five paired seeds at 300+ (the verb used 100-104, the main job's evaluation range)."""
    assert DistillStage.model_fields["eval_seeds"].default == (300, 301, 302, 303, 304)
    assert load_run_config().distill.eval_seeds == (300,)  # run_default.yaml's own


@pytest.mark.parametrize(
    ("argv", "named"), [(["--student", "huge"], "student"), (["--eval-seeds", "x"], "eval-seeds")]
)
def test_a_bad_distill_value_is_one_line_before_any_output(
    argv: list[str], named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["distill", "--library", str(tmp_path), "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert named in err and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert not out.exists()
