"""``pcnalloc run``: network → teacher → library → distil → compile → evaluate → report.

Every stage lives in ``OUT/<stage>/``, is keyed by its config and its inputs' keys, and is
skipped on a rerun when nothing it depends on changed (``force`` reruns everything).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

from pcnalloc.pipeline.config import RunConfig
from pcnalloc.pipeline.stages import StageRunner

log = logging.getLogger(__name__)


class Progress(Protocol):
    """Progress sink: the CLI passes a rich-backed one; library callers may pass none."""

    def start(self, label: str, total: int | None) -> None: ...

    def advance(self, n: int = 1) -> None: ...


class _Quiet:
    def start(self, label: str, total: int | None) -> None:
        log.info("%s", label)

    def advance(self, n: int = 1) -> None:
        return None


def _executor(cfg: RunConfig) -> Any:
    from pcnalloc.core.executors import make_executor

    return make_executor(cfg.executor, cfg.workers)


def validate(cfg: RunConfig) -> None:
    """Fail before any long work: unknown cases or policies, bad stage configs."""
    from pcnalloc.baselines.registry import make_policy
    from pcnalloc.network import cached_network

    cfg.distill.distill_config(cfg.seed)
    for case in {
        cfg.env.network.case,
        *cfg.library.cases,
        *cfg.evaluate.cases,
        *cfg.evaluate.bound_cases,
        *cfg.evaluate.scenario_cases,
    }:
        cached_network(case, cfg.env.network.model_copy(update={"case": case}))
    learned = {"teacher", "student", "edge"}
    for spec in cfg.evaluate.tuned_heuristics:
        make_policy(spec)
    for spec in (*cfg.evaluate.policies, *cfg.evaluate.scenario_policies):
        base = spec.removesuffix("+rules").partition(":")[0]
        if base not in learned:
            make_policy(spec)
        elif ":" in spec or "@" in spec:
            from pcnalloc.errors import ConfigError

            raise ConfigError(f"policy {spec!r}: this run supplies its own {base} artifact")


def _teacher_overrides(cfg: RunConfig) -> dict[str, Any]:
    """The teacher stage's key material: the run seed, the section's overrides, the env."""
    over = cfg.model_dump(include={"teacher"})["teacher"]  # the section's overrides
    return {"seed": cfg.seed, **over, "env": cfg.env.model_dump()}


def run_pipeline(
    cfg: RunConfig, out: str | Path, *, force: bool = False, progress: Progress | None = None
) -> dict[str, Any]:
    """Run (or resume) every stage; returns the report summary with per-stage timings."""
    out = Path(out)
    bar = progress or _Quiet()
    validate(cfg)
    runner = StageRunner(out, force=force)
    ex = _executor(cfg)
    try:
        return _stages(cfg, out, runner, bar, ex)
    finally:
        ex.close()


def _stages(cfg: RunConfig, out: Path, runner: StageRunner, bar: Progress, ex: Any) -> dict:
    from pcnalloc.pipeline import steps

    net = runner.run(
        "network", cfg.env.network.model_dump(), lambda d: steps.network_stage(cfg, d, bar)
    )
    teacher = runner.run(
        "teacher",
        {"net": net, "teacher": _teacher_overrides(cfg)},
        lambda d: steps.teacher_stage(cfg.teacher, d, bar),
    )
    library = runner.run(
        "library",
        {"teacher": teacher, "library": cfg.library.model_dump()},
        lambda d: steps.library_stage(cfg, teacher, d, bar, ex),
    )
    distill = runner.run(
        "distill",
        {"library": library, "distill": cfg.distill.model_dump(), "seed": cfg.seed},
        lambda d: steps.distill_stage(cfg, teacher, library, d, bar),
    )
    compiled = runner.run(
        "compile",
        {"distill": distill, "compile": cfg.compile.model_dump()},
        lambda d: steps.compile_stage(cfg, library, distill, d, bar),
    )
    evaluation = runner.run(
        "evaluate",
        {
            "teacher": teacher,
            "distill": distill,
            "compile": compiled,
            "evaluate": cfg.evaluate.model_dump(),
            "env": cfg.env.model_dump(),
        },
        lambda d: steps.evaluate_stage(cfg, teacher, distill, compiled, d, bar, ex),
    )
    report = runner.run(
        "report",
        {"all": [net, teacher, library, distill, compiled, evaluation]},
        lambda d: steps.report_stage(cfg, out, runner.timings, d, bar),
    )
    return {"out": str(out), "timings": runner.timings, **report}
