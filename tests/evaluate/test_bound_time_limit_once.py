"""The bound's HiGHS time limit has one default: the evaluate stage's ``bound_time_limit_s``."""

from __future__ import annotations

import dataclasses
import inspect

from pcnalloc.evaluate.sweep import GapItem, bound_sweep
from pcnalloc.pipeline.config import EvaluateStage


def _defaulted(fn: object) -> set[str]:
    return {
        name
        for name, p in inspect.signature(fn).parameters.items()  # type: ignore[arg-type]
        if p.default is not inspect.Parameter.empty
    }


def test_the_sweep_writes_no_time_limit_of_its_own() -> None:
    assert "time_limit_s" in inspect.signature(bound_sweep).parameters
    assert "time_limit_s" not in _defaulted(bound_sweep)
    gap_field = {f.name: f for f in dataclasses.fields(GapItem)}["time_limit_s"]
    assert gap_field.default is dataclasses.MISSING
    assert EvaluateStage().bound_time_limit_s > 0  # where the one default is written


def test_the_check_catches_a_planted_default() -> None:
    def planted(requests: int, *, time_limit_s: float = 20.0) -> None: ...

    assert "time_limit_s" in _defaulted(planted)
