"""`pcnalloc distill`: distil a trajectory library into an edge or latent student, with fidelity
and (``--ablation``) the KL / +hard / +hard+soft loss ablation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from pcnalloc.commands._common import console, progress_bar
from pcnalloc.commands._fields import field_help, list_text, seeds_text
from pcnalloc.commands._sets import SetOption
from pcnalloc.core.limits import EPISODES_MAX, EPOCHS_MAX, REQUESTS_MAX, SEED_MAX
from pcnalloc.pipeline.config import DistillStage, GeneraliseStage

_DS = DistillStage.model_construct()
"""The defaults of ``distill``: the distill stage's fields (built without validation: its
``config`` field validates through the distill package, which loads torch)."""

_G = GeneraliseStage
_GEN = GeneraliseStage()
"""The defaults of ``generalise``: the generalise stage's fields (written once there)."""


def parse_seeds(text: str) -> list[int]:
    """``"100-104"`` → [100 … 104]; ``"1,5,9"`` → [1, 5, 9]; ``""`` → []."""
    from pcnalloc.errors import ConfigError

    seeds: list[int] = []
    try:
        for part in (p.strip() for p in text.split(",") if p.strip()):
            if "-" in part[1:]:
                a, b = part.split("-", 1)
                lo, hi = int(a), int(b)
                if hi < lo:
                    raise ValueError
                seeds.extend(range(lo, hi + 1))
            else:
                seeds.append(int(part))
    except ValueError:
        raise ConfigError(
            f"bad --eval-seeds {text!r}; accepted: a range like 100-104 or a comma list of ints"
        ) from None
    if any(s < 0 for s in seeds):
        raise ConfigError(f"bad --eval-seeds {text!r}; seeds must be ≥ 0")
    return seeds


def check_teacher_matches(library: Path, sha256: str, where: Path) -> None:
    """Refuse a ``--teacher`` checkpoint that is not one the library was built from.

    Raises:
        ConfigError: naming both hashes.
    """
    from pcnalloc.errors import ConfigError
    from pcnalloc.library import LibraryReader

    meta = LibraryReader(library).metadata
    known = {str(meta.get("teacher_sha256") or "")}
    known |= {str(t.get("sha256") or "") for t in meta.get("extra", {}).get("teachers", [])}
    known.discard("")
    if known and sha256 not in known:
        lib = ", ".join(f"{k[:16]}…" for k in sorted(known))
        raise ConfigError(
            f"--teacher {str(where)!r} (sha256 {sha256[:16]}…) is not the teacher of library "
            f"{str(library)!r} ({lib}); give the checkpoint the library was built from"
        )


class _BarReporter:
    def __init__(self, bar: Any) -> None:
        self.bar = bar
        self.task: Any = None

    def stage(self, description: str, total: int) -> None:
        if self.task is not None:
            self.bar.update(self.task, completed=self.bar.tasks[-1].total)
        self.task = self.bar.add_task(description, total=total)

    def advance(self, n: int = 1, description: str | None = None) -> None:
        if self.task is None:
            return
        if description is None:
            self.bar.advance(self.task, n)
        else:
            self.bar.update(self.task, advance=n, description=description)


def register(app: typer.Typer) -> None:
    """Add the ``distill`` verbs to the CLI app."""

    @app.command("distill")
    def distill(
        library: Annotated[Path, typer.Option(help="trajectory library folder or .parquet file")],
        out: Annotated[Path, typer.Option(help="output folder (student.pt, reports, plots)")],
        student: Annotated[
            str, typer.Option(help=field_help(DistillStage, "student"))
        ] = _DS.student,
        arch: Annotated[
            str | None,
            typer.Option(
                help="shared (one head scores every action's candidate features; latent: "
                "state+compact input), mlp (plain MLP on compact or on the state alone) or "
                "mlp-blind (edge MLP that does not read the per-action validity flag); "
                "default: mlp"
            ),
        ] = None,
        config: Annotated[
            Path | None, typer.Option(help="DistillConfig YAML (τ, λ_hard, λ_soft, lr, …)")
        ] = None,
        sets: SetOption = None,
        ablation: Annotated[
            bool, typer.Option("--ablation", help="also train KL-only and KL+hard variants")
        ] = False,
        teacher: Annotated[
            Path | None,
            typer.Option(help="teacher checkpoint (.pt or folder) for the closed-loop runs"),
        ] = None,
        eval_seeds: Annotated[
            str,
            typer.Option(
                help=field_help(DistillStage, "eval_seeds", "e.g. 300-304; needs --teacher")
            ),
        ] = seeds_text(_DS.eval_seeds),
        requests: Annotated[
            int,
            typer.Option(min=1, max=REQUESTS_MAX, help=field_help(DistillStage, "eval_requests")),
        ] = _DS.eval_requests,
        epochs: Annotated[
            int | None, typer.Option(min=1, max=EPOCHS_MAX, help="override config epochs")
        ] = None,
        seed: Annotated[
            int | None, typer.Option(min=0, max=SEED_MAX, help="override config seed")
        ] = None,
        json_out: Annotated[
            Path | None, typer.Option("--json", help="also write the full report JSON here")
        ] = None,
        tensorboard: Annotated[
            Path | None,
            typer.Option(help="also write the history rows as TensorBoard scalars here"),
        ] = None,
        overwrite: Annotated[
            bool, typer.Option(help="replace an existing --out / --json (once the new is whole)")
        ] = False,
    ) -> None:
        """Distil LIBRARY into a STUDENT; report held-out and closed-loop fidelity."""
        from pcnalloc.commands._common import write_json
        from pcnalloc.commands._tboutput import tensorboard_output
        from pcnalloc.config import build
        from pcnalloc.distill import distill_config
        from pcnalloc.distill.fidelity import ablation_table, fidelity_table
        from pcnalloc.distill.run import run_distillation
        from pcnalloc.fileio import check_output, staged_dir

        stage = {
            "student": student,
            "eval_seeds": parse_seeds(eval_seeds),
            "eval_requests": requests,
        }
        build(DistillStage, stage, "distill")
        check_output(out, kind="dir", overwrite=overwrite)
        if json_out is not None:
            check_output(json_out, kind="file", overwrite=overwrite, flag="--json")

        overrides: dict[str, Any] = {}
        if epochs is not None:
            overrides["epochs"] = epochs
        if seed is not None:
            overrides["seed"] = seed
        if tensorboard is not None:
            overrides["tensorboard"] = tensorboard
        cfg = distill_config(config, sets=sets or (), **overrides)
        tb_run = f"student/{out.name}"  # named after --out, not its staged temp
        # the flag's or the config file's log folder; this run's output is DIR/student/NAME
        tb = tensorboard_output(cfg.tensorboard, tb_run, overwrite=overwrite)
        teacher_policy = None
        if teacher is not None:
            from pcnalloc.teacher import TeacherPolicy

            teacher_policy = TeacherPolicy.load(teacher)
            check_teacher_matches(library, teacher_policy.sha256, teacher)
        seeds = parse_seeds(eval_seeds) if teacher_policy is not None else []
        with tb, staged_dir(out, overwrite=overwrite) as work, progress_bar() as bar:
            report = run_distillation(
                library,
                kind=student,
                cfg=cfg,
                out_dir=work,
                teacher=teacher_policy,
                eval_seeds=seeds,
                requests=requests,
                ablation=ablation,
                arch=arch,
                reporter=_BarReporter(bar),
                tb_run=tb_run,
            )
        console.print(fidelity_table(report, title=f"{student} student fidelity"))
        if ablation:
            console.print(ablation_table(report["ablation"], title=f"{student} loss ablation"))
        if json_out is not None:
            check_output(json_out, kind="file", overwrite=overwrite, flag="--json")
            write_json(json_out, report)
        console.print(f"wrote {out}/student.pt, fidelity.json, history.csv, curves.png")

    @app.command("generalise")
    def generalise(
        out: Annotated[Path, typer.Option(help="output folder (libraries, students, report)")],
        families: Annotated[
            str, typer.Option(help=field_help(_G, "families", "comma-separated"))
        ] = list_text(_GEN.families),
        teachers: Annotated[
            str,
            typer.Option(
                help=field_help(
                    _G,
                    "teachers",
                    "family=spec pairs separated by ';' (e.g. normal=cspf-pe:4;storm=llp:4)",
                )
            ),
        ] = ";".join(f"{f}={spec}" for f, spec in _GEN.teachers.items()),
        train_cases: Annotated[
            str, typer.Option(help=field_help(_G, "train_cases", "comma-separated"))
        ] = list_text(_GEN.train_cases),
        test_cases: Annotated[
            str, typer.Option(help=field_help(_G, "test_cases", "comma-separated"))
        ] = list_text(_GEN.test_cases),
        test_families: Annotated[
            str | None, typer.Option(help="families of the report (default: families + mixed)")
        ] = None,
        load: Annotated[float, typer.Option(min=0.01, help=field_help(_G, "load"))] = _GEN.load,
        k: Annotated[int, typer.Option(min=1, max=16, help=field_help(_G, "k"))] = _GEN.k,
        episodes: Annotated[
            int, typer.Option(min=1, max=EPISODES_MAX, help=field_help(_G, "episodes"))
        ] = _GEN.episodes,
        requests: Annotated[
            int, typer.Option(min=1, max=REQUESTS_MAX, help=field_help(_G, "requests"))
        ] = _GEN.requests,
        config: Annotated[Path | None, typer.Option(help="DistillConfig YAML")] = None,
        sets: SetOption = None,
        epochs: Annotated[
            int, typer.Option(min=1, max=EPOCHS_MAX, help=field_help(_G, "epochs"))
        ] = _GEN.epochs,
        student: Annotated[str, typer.Option(help=field_help(_G, "student"))] = _GEN.student,
        arch: Annotated[str | None, typer.Option(help="student arch (see distill)")] = None,
        eval_seeds: Annotated[
            str, typer.Option(help=field_help(_G, "eval_seeds", "300-307, 1,3,7 …"))
        ] = seeds_text(_GEN.eval_seeds),
        eval_requests: Annotated[
            int, typer.Option(min=1, max=REQUESTS_MAX, help=field_help(_G, "eval_requests"))
        ] = _GEN.eval_requests,
        heuristics: Annotated[
            str, typer.Option(help=field_help(_G, "heuristics", "comma-separated"))
        ] = list_text(_GEN.heuristics),
        tune_seeds: Annotated[
            str, typer.Option(help=field_help(_G, "tune_seeds", "5000,5001 or 5000-5001"))
        ] = seeds_text(_GEN.tune_seeds),
        tune_requests: Annotated[
            int, typer.Option(min=1, max=REQUESTS_MAX, help=field_help(_G, "tune_requests"))
        ] = _GEN.tune_requests,
        overwrite: Annotated[bool, typer.Option(help="replace an existing --out")] = False,
    ) -> None:
        """Multi-policy distillation: a generalist student from scenario-specific teachers,
        compared (paired, 95 % CI) with each specialist and the best tuned heuristic on
        trained and held-out grids and families."""
        from pcnalloc.commands._tboutput import tensorboard_output
        from pcnalloc.distill import distill_config
        from pcnalloc.distill.generalise import TABLE_FILE, parse_teachers, run_generalise, tb_run
        from pcnalloc.fileio import check_output

        def names(text: str) -> list[str]:
            return [x.strip() for x in text.split(",") if x.strip()]

        from pcnalloc.config import build

        raw = {
            "families": names(families),
            "teachers": parse_teachers(teachers),
            "train_cases": names(train_cases),
            "test_cases": names(test_cases),
            "load": load,
            "k": k,
            "episodes": episodes,
            "requests": requests,
            "epochs": epochs,
            "student": student,
            "eval_seeds": parse_seeds(eval_seeds),
            "eval_requests": eval_requests,
            "heuristics": names(heuristics),
            "tune_seeds": parse_seeds(tune_seeds),
            "tune_requests": tune_requests,
        }
        gs = build(GeneraliseStage, raw, "generalise")
        check_output(out, kind="dir", overwrite=overwrite)  # staged by run_generalise
        cfg = distill_config(config, sets=sets or (), epochs=gs.epochs)
        # the config file's log folder; this run's output is DIR/student/NAME
        tb = tensorboard_output(cfg.tensorboard, tb_run(out), overwrite=overwrite)
        with tb, progress_bar() as bar:
            report = run_generalise(
                out,
                families=gs.families,
                teachers=gs.teachers,
                train_cases=gs.train_cases,
                test_cases=gs.test_cases,
                test_families=None if test_families is None else names(test_families),
                load=gs.load,
                k=gs.k,
                episodes=gs.episodes,
                requests=gs.requests,
                cfg=cfg,
                student=gs.student,
                arch=arch,
                eval_seeds=gs.eval_seeds,
                eval_requests=gs.eval_requests,
                heuristics=gs.heuristics,
                tune_seeds=gs.tune_seeds,
                tune_requests=gs.tune_requests,
                reporter=_BarReporter(bar),
                overwrite=overwrite,
            )
        console.print((out / TABLE_FILE).read_text())
        console.print(f"summary: {report['summary']}")
        console.print(f"wrote {out}/generalise.json, {TABLE_FILE}, students/, libraries/")
