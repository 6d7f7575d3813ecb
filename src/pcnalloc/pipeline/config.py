"""Configuration of ``pcnalloc run``: one section per stage; YAML in, clear errors out.

The embedded default (``data/run_default.yaml``) trains on the IEEE 30-bus case with budgets
that finish in about 15 minutes on 2 CPU cores; ``configs/tiny.yaml`` runs every stage in
about a minute; a larger file scales cases, loads, training and evaluation up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    SerializationInfo,
    field_serializer,
    field_validator,
    model_validator,
)

from pcnalloc.config import EnvConfig, _Frozen, build, read_yaml
from pcnalloc.core.limits import EPISODES_MAX, EPOCHS_MAX, REQUESTS_MAX, SEED_MAX
from pcnalloc.core.overrides import apply_sets
from pcnalloc.export.config import CompileConfig

Load = Annotated[float, Field(gt=0, le=10, allow_inf_nan=False)]
"""An offered load ρ, as the environment accepts it (checked before stage one runs)."""
Seed = Annotated[int, Field(ge=0)]
TrainSeed = Annotated[int, Field(ge=1000)]
"""Tuning seeds are training seeds (≥ 1000), disjoint from the evaluation seeds."""


def _teacher_config(value: Any) -> Any:
    """``value`` as a :class:`~pcnalloc.teacher.config.TeacherConfig` (imported here, when a
    run config is built: the teacher package loads torch, which the CLI must not at start)."""
    from pcnalloc.teacher.config import TeacherConfig

    return value if isinstance(value, TeacherConfig) else TeacherConfig.model_validate(value)


def _distill_config(value: Any) -> Any:
    """``value`` as a :class:`~pcnalloc.distill.config.DistillConfig` (imported here, when
    a run config is built: the distill package loads torch, which the CLI must not at start)."""
    from pcnalloc.distill.config import DistillConfig

    return value if isinstance(value, DistillConfig) else DistillConfig.model_validate(value)


if TYPE_CHECKING:
    from pcnalloc.distill.config import DistillConfig as DistillOverrides
    from pcnalloc.teacher.config import TeacherConfig as TeacherStage
else:
    TeacherStage = Annotated[Any, BeforeValidator(_teacher_config)]
    """The teacher stage: a TeacherConfig, validated when the run config is (see above)."""
    DistillOverrides = Annotated[Any, BeforeValidator(_distill_config)]
    """The distillation settings: a DistillConfig, validated when the run config is."""


class LibraryStage(_Frozen):
    """Trajectory library built from the trained teacher.

    One object for ``pcnalloc library build`` and the main job: the CLI takes the defaults
    and help texts of cases, loads, episodes and explore from these fields (executor and
    workers from :class:`RunConfig`). ``loads`` is the command line's one load (ρ = 1.0);
    ``run_default.yaml`` sets the main job's two (1.0 and 1.5), so its library is unchanged.
    """

    cases: tuple[str, ...] = Field(("case30",), min_length=1, description="grid cases rolled out")
    loads: tuple[Load, ...] = Field((1.0,), min_length=1, description="offered loads ρ")
    episodes: int = Field(8, ge=1, le=EPISODES_MAX, description="episodes per (case, load)")
    requests: int = Field(1000, ge=1, le=REQUESTS_MAX, description="decisions per episode")
    explore: float = Field(0.05, ge=0, le=1, description="share of random valid actions")


class DistillStage(_Frozen):
    """Constrained distillation into the edge student (``pcnalloc distill`` and the main job).

    The command line takes its student, closed-loop seeds and requests from these fields.
    ``eval_seeds`` 300-304: five paired seeds in the fidelity range (300+, apart from the main
    job's evaluation seeds 100+); the command line used 100-104, inside that range, and this
    class 300-301, until both read this field. ``run_default.yaml`` sets the main job's one
    seed (300) and 500 requests.

    ``config`` is a :class:`~pcnalloc.distill.config.DistillConfig` built from the section's
    overrides (a bad key fails when the file is read); it dumps back to those overrides, so
    the stage's key material is the section's as written. Its seed is the run's unless the
    section sets one (:meth:`distill_config`).
    """

    student: Literal["edge", "latent"] = Field(
        "edge",
        description="student kind: edge (reads the compact vector) or latent (teacher state)",
    )
    config: DistillOverrides = Field(
        default_factory=dict,
        validate_default=True,
        description="DistillConfig overrides (tau, lambda_hard, epochs …)",
    )
    ablation: bool = Field(True, description="also train KL-only, +hard, +hard+soft")
    eval_seeds: tuple[Seed, ...] = Field(
        (300, 301, 302, 303, 304), description="closed-loop fidelity seeds"
    )
    eval_requests: int = Field(
        1000, ge=1, le=REQUESTS_MAX, description="decisions per closed-loop episode"
    )

    @field_serializer("config")
    def _config_overrides(self, config: Any, info: SerializationInfo) -> dict[str, Any]:
        return dict(config.model_dump(mode=info.mode, include=config.model_fields_set))

    def distill_config(self, seed: int) -> DistillOverrides:
        """The distillation config with the run's ``seed`` unless the section set its own."""
        if "seed" in self.config.model_fields_set:
            return self.config
        return self.config.model_copy(update={"seed": seed})


class GeneraliseStage(_Frozen):
    """``pcnalloc generalise``: a generalist student from scenario-specific teachers,
    compared with each specialist and the best tuned heuristic on trained and held-out cells.

    The command line takes its option defaults and help texts from these fields; they are
    :func:`pcnalloc.distill.generalise.run_generalise`'s keyword defaults too (the library
    function cannot import this module, a layer above it; a test holds the two equal).
    """

    families: tuple[str, ...] = Field(
        ("normal", "storm", "fiber-cut"),
        min_length=1,
        description="training scenario families, one teacher + specialist each",
    )
    teachers: dict[str, str] = Field(
        default_factory=dict,
        description="family → classical teacher spec at K; families left out get the best "
        "heuristic at K tuned on that family",
    )
    train_cases: tuple[str, ...] = Field(
        ("case30",), min_length=1, description="grids the libraries use (A)"
    )
    test_cases: tuple[str, ...] = Field(
        ("case57",), min_length=1, description="held-out grids of the report (B)"
    )
    load: Load = Field(1.0, description="offered load ρ of libraries and cells")
    k: int = Field(4, ge=1, le=16, description="candidate paths K of the action layout")
    episodes: int = Field(16, ge=1, le=EPISODES_MAX, description="library episodes per family")
    requests: int = Field(300, ge=1, le=REQUESTS_MAX, description="decisions per library episode")
    epochs: int = Field(20, ge=1, le=EPOCHS_MAX, description="distillation epochs")
    student: Literal["edge", "latent"] = Field("edge", description="student kind: edge or latent")
    eval_seeds: tuple[Annotated[int, Field(ge=0, lt=1000)], ...] = Field(
        tuple(range(300, 308)),
        min_length=1,
        description="evaluation seeds (< 1000; the same for every policy and cell)",
    )
    eval_requests: int = Field(
        500, ge=1, le=REQUESTS_MAX, description="decisions per evaluation episode"
    )
    heuristics: tuple[str, ...] = Field(
        ("cspf-pe", "llp", "lcr", "trunk", "ksp-ff"),
        min_length=1,
        description="heuristics tuned for the teachers and the cell baselines",
    )
    tune_seeds: tuple[TrainSeed, ...] = Field(
        (5000, 5001), min_length=1, description="tuning seeds (≥ 1000)"
    )
    tune_requests: int = Field(300, ge=1, le=REQUESTS_MAX, description="decisions per tuning run")


CompileStage = CompileConfig
"""ONNX export, parity and int8 gates, signed manifest (:mod:`pcnalloc.export.config`, whose
defaults ``pcnalloc compile`` reads too)."""


class TuneStage(_Frozen):
    """Grid search of the heuristics' parameters on training seeds (``pcnalloc tune``).

    The command line takes its policies, seeds and requests from these fields (case and load
    from the env config); the main job's evaluation tunes the same heuristics at the same
    horizon (``EvaluateStage.tuned_heuristics`` and ``tune_requests`` default to these) on its
    own, shorter list of seeds (``EvaluateStage.tune_seeds``; ``run_default.yaml`` sets two, for
    its 15-minute budget).
    """

    policies: tuple[str, ...] = Field(
        ("ksp-ff", "cspf-pe", "cspf-pv", "llp", "trunk", "lcr"),
        min_length=1,
        description="heuristics tuned",
    )
    seeds: tuple[TrainSeed, ...] = Field(
        (1_000_000, 1_000_001, 1_000_002),
        min_length=1,
        description="TRAINING seeds (≥ 1000) every grid point plays",
    )
    requests: int = Field(500, ge=10, le=REQUESTS_MAX, description="decisions per episode")


_TUNE = TuneStage.model_fields


class EvaluateStage(_Frozen):
    """Every policy on the same seeds, plus the offline bound on small windows.

    One object for ``pcnalloc evaluate`` and the main job: the CLI takes its option defaults
    and help texts from these fields (``teacher evaluate`` its cases, seeds and requests), and
    the run config's ``evaluate`` section is it. The defaults are the command line's:

    * ``policies``: the five operator heuristics, which need no artifact (a learned policy
      needs a checkpoint, ``teacher@CKPT``); ``run_default.yaml`` adds this run's teacher,
      students and edge artifact and ``ksp-ff:16``.
    * ``seeds`` 0-4: five paired seeds (Student's t with 4 degrees of freedom, 2.78, against
      4.30 with three), apart from the project's other ranges (main-job evaluation 100+,
      families 200+, fidelity 300+, tuning ≥ 1000, the teacher's checks 90,001+, training
      1,000,000+).
    * ``requests`` 1000: the horizon the teacher is trained on (``EnvConfig.episode_requests``)
      and the one the main job, ``teacher evaluate`` and ``distill`` evaluate at, so results of
      the verbs compare (the CLI used 2000 until both read this field).
    * ``bound_time_limit_s`` 20: the bound is asked for explicitly (``--offline-bound``), so it
      gets the time to close; the main job's 15-minute budget sets 5 s in ``run_default.yaml``.
    """

    policies: tuple[str, ...] = Field(
        ("ksp-ff", "cspf-pe", "llp", "sp-ff", "random"),
        min_length=1,
        description="policy specs (heuristics, teacher@CKPT, sb3@ZIP …); in pcnalloc run, a bare "
        "teacher/student/edge names this run's artifacts",
    )
    cases: tuple[str, ...] = Field(("case30",), min_length=1, description="grid cases")
    loads: tuple[Load, ...] = Field((0.5, 1.0, 1.5), min_length=1, description="offered loads ρ")
    seeds: tuple[Seed, ...] = Field(
        (0, 1, 2, 3, 4),
        min_length=1,
        description="episode seeds (held out: below the training seeds)",
    )
    requests: int = Field(1000, ge=1, le=REQUESTS_MAX, description="decisions per episode")
    bound_cases: tuple[str, ...] = Field(("case30",), description="cases of the MILP windows")
    bound_requests: int = Field(
        200, ge=0, description="requests per MILP window (pcnalloc run: 0 skips the bound)"
    )
    bound_seeds: tuple[Seed, ...] = Field((100,), description="seeds of the MILP windows")
    bound_loads: tuple[Load, ...] = Field((1.0,), description="loads of the MILP windows")
    bound_time_limit_s: float = Field(
        20.0,
        gt=0,
        le=3600,
        description="HiGHS limit per MILP window (s); the LP relaxation, given 3× as long, "
        "certifies the bound when the MILP does not close",
    )
    scenarios: tuple[str, ...] = Field(
        ("normal", "storm", "fiber-cut", "mixed"),
        description="scenario families evaluated with paired statistics (empty = skip)",
    )
    scenario_policies: tuple[str, ...] = Field(
        ("teacher", "edge+rules"),
        description="learned policies of the scenario-family evaluation",
    )
    tuned_heuristics: tuple[str, ...] = Field(
        _TUNE["policies"].default,
        description="heuristics tuned per family on training seeds and evaluated tuned",
    )
    tune_seeds: tuple[TrainSeed, ...] = Field(
        (1_000_000,), min_length=1, description="training seeds of the tuning (≥ 1000)"
    )
    tune_requests: int = Field(
        _TUNE["requests"].default, ge=10, description="decisions per tuning episode"
    )
    scenario_cases: tuple[str, ...] = Field(
        ("case30", "case57"),
        description="cases of the scenario-family evaluation (include grids not trained on)",
    )
    scenario_loads: tuple[Load, ...] = Field((1.0,), description="loads of the families")
    scenario_seeds: tuple[Seed, ...] = Field(
        (200, 201, 202, 203, 204, 205, 206, 207),
        description="paired seeds of the families (the same for every policy)",
    )

    @field_validator("scenarios")
    @classmethod
    def _families(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from pcnalloc.config import load_scenario

        for name in v:
            load_scenario(name)  # an unknown family fails before stage one
        return v


class TeacherEvaluateStage(_Frozen):
    """``pcnalloc teacher evaluate``: the greedy teacher against heuristics.

    The grid's cases, seeds and requests are :class:`EvaluateStage`'s; these fields are what
    the teacher's check adds.
    """

    loads: tuple[Load, ...] = Field((1.0, 1.5), min_length=1, description="offered loads ρ")
    baselines: tuple[str, ...] = Field(
        ("ksp-ff", "ksp-ff:8", "ksp-ff:16", "cspf-pe"),
        description="heuristic specs the teacher is compared with",
    )


class RunConfig(_Frozen):
    """All stages of the main job.

    The ``teacher`` section of a file holds :class:`~pcnalloc.teacher.config.TeacherConfig`
    overrides (steps, lr, loads …); the stage is that config with the run's ``seed`` (unless
    the section sets its own) and the run's ``env`` (which the section may not set), so a bad
    teacher key fails when the file is read. Dumped, the stage is its overrides again (the
    fields the file set, less ``env`` and the run's seed), so the teacher stage's key reads
    the same material as when the section was a free mapping.
    """

    seed: int = Field(0, ge=0, le=SEED_MAX, description="seed of teacher training and distillation")
    env: EnvConfig = Field(default_factory=EnvConfig, description="training environment")
    teacher: TeacherStage = Field(
        description="TeacherConfig overrides (steps, lr, loads …); env and seed are the run's"
    )
    library: LibraryStage = Field(default_factory=LibraryStage)
    distill: DistillStage = Field(default_factory=DistillStage)
    compile: CompileStage = Field(default_factory=CompileStage)
    evaluate: EvaluateStage = Field(default_factory=EvaluateStage)
    executor: Literal["serial", "process", "ray"] = Field(
        "process", description="where rollouts and sweeps run"
    )
    workers: int = Field(2, ge=1, description="worker processes (process/ray executors)")
    key_dir: str | None = Field(
        None,
        description="folder of the Ed25519 signing key, outside the output tree, created once "
        "and never replaced (None = $PCNALLOC_KEY_DIR or the user config folder)",
    )

    @model_validator(mode="before")
    @classmethod
    def _teacher_of_this_run(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        over = data.get("teacher", {})
        if not isinstance(over, Mapping):
            return data  # a TeacherConfig already, or a bad value the field reports
        if "env" in over:
            raise ValueError("teacher.env: the run's env section sets the teacher's environment")
        seed = data.get("seed", cls.model_fields["seed"].default)
        return {**data, "teacher": {"seed": seed, **over, "env": data.get("env", {})}}

    @field_serializer("teacher")
    def _teacher_overrides(self, teacher: Any, info: SerializationInfo) -> dict[str, Any]:
        drop = {"env"} | ({"seed"} if teacher.seed == self.seed else set())
        keys = teacher.model_fields_set - drop
        return dict(teacher.model_dump(mode=info.mode, include=keys))


def load_run_config(
    path: str | Path | None = None, *, scenario: str | None = None, sets: Sequence[str] = ()
) -> RunConfig:
    """The embedded default (``path=None``) or a YAML file merged over it.

    Args:
        path: run config YAML merged over the embedded default.
        scenario: one scenario family (or scenario YAML file) for the whole run: the teacher
            trains on it (``env.traffic.scenario``, which the library's rollouts and the
            headline evaluation inherit) and the family evaluation plays only it
            (``evaluate.scenarios``). None keeps the file's choice (by default the teacher
            trains on the calm base traffic and every family is evaluated).
        sets: dotted overrides (``teacher.steps=2000``, see :mod:`pcnalloc.core.overrides`)
            applied last, before validation.

    Raises:
        ConfigError: naming every bad field.
    """
    with resources.as_file(resources.files("pcnalloc") / "data" / "run_default.yaml") as p:
        base = read_yaml(p)
    if path is not None:
        base = _merge(base, read_yaml(path))
    if scenario is not None:
        one = {"env": {"traffic": {"scenario": scenario}}, "evaluate": {"scenarios": [scenario]}}
        base = _merge(base, one)
    if sets:
        from pcnalloc.teacher.config import TeacherConfig  # loads torch: only when asked

        base = apply_sets(base, sets, RunConfig, {"teacher": TeacherConfig})
    return build(RunConfig, base, f"run config {str(path) if path else '(embedded default)'}")


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
