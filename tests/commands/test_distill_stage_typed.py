"""The run config's distillation settings are a typed ``DistillConfig`` (no free mapping):
a bad key fails when the file is read, the section dumps back to its overrides (the stage's
key material), and the distillation takes the run's seed unless the section sets one."""

from __future__ import annotations

import pytest

from pcnalloc.distill.config import DistillConfig, distill_config
from pcnalloc.errors import ConfigError
from pcnalloc.pipeline.config import load_run_config


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
