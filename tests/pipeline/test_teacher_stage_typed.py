"""The run config's teacher stage is a TeacherConfig, and its key reads the same material.

The ``teacher`` section of a run file holds TeacherConfig overrides; the stage validates them
with the run's seed and env when the file is read, and dumps back to the overrides, so the
teacher stage's key material for a file is what it was when the section was a free mapping:
``{"seed": run seed, **section, "env": env}``.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from importlib import resources

import pytest
import yaml

from pcnalloc.errors import ConfigError
from pcnalloc.pipeline.config import load_run_config
from pcnalloc.pipeline.run import _teacher_overrides


def _canon(x: object) -> str:
    blob = json.dumps(x, sort_keys=True, default=str)  # as pcnalloc.pipeline.stages.stage_key
    return hashlib.sha256(blob.encode()).hexdigest()


def _packaged() -> dict:
    text = (resources.files("pcnalloc") / "data" / "run_default.yaml").read_text()
    return yaml.safe_load(text)


def test_the_stage_is_a_teacher_config_with_the_runs_seed_and_env() -> None:
    from pcnalloc.teacher.config import TeacherConfig

    cfg = load_run_config()
    assert isinstance(cfg.teacher, TeacherConfig)
    assert cfg.teacher.steps == _packaged()["teacher"]["steps"]
    assert cfg.teacher.seed == cfg.seed and cfg.teacher.env == cfg.env


def test_the_packaged_default_keys_the_teacher_as_before() -> None:
    raw = _packaged()
    cfg = load_run_config()
    before = {"seed": raw["seed"], **raw["teacher"], "env": cfg.env.model_dump()}
    assert _canon(_teacher_overrides(cfg)) == _canon(before)
    assert cfg.model_dump()["teacher"] == raw["teacher"] | {"loads": tuple(raw["teacher"]["loads"])}


def test_a_section_seed_wins_and_stays_in_the_material(tmp_path) -> None:
    f = tmp_path / "run.yaml"
    f.write_text("seed: 3\nteacher: {seed: 7, steps: 50}\n")
    cfg = load_run_config(f)
    assert cfg.teacher.seed == 7 and cfg.seed == 3
    mat = _teacher_overrides(cfg)
    assert mat["seed"] == 7 and mat["steps"] == 50
    f.write_text("seed: 3\nteacher: {steps: 50}\n")
    assert _teacher_overrides(load_run_config(f))["seed"] == 3


def test_the_check_catches_a_planted_full_dump() -> None:
    cfg = load_run_config()
    full = {
        "seed": cfg.seed,
        **cfg.teacher.model_dump(exclude={"env"}),
        "env": cfg.env.model_dump(),
    }
    assert _canon(full) != _canon(_teacher_overrides(cfg))


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("teacher: {stepz: 5}\n", ["teacher.stepz", "Extra inputs"]),
        ("teacher: {steps: -4}\n", ["teacher.steps", "greater than"]),
        ("teacher: {env: {k_paths: 3}}\n", ["teacher.env", "run's env section"]),
    ],
)
def test_a_bad_teacher_section_fails_when_the_file_is_read(tmp_path, text, words) -> None:
    f = tmp_path / "run.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_run_config(f)
    assert all(w in str(err.value) for w in words), str(err.value)


def test_the_run_config_module_loads_no_torch() -> None:
    code = "import sys, pcnalloc.pipeline.config\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
