"""`pcnalloc teacher train`: train (or resume) the Double-DQN teacher with progress and logs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from pcnalloc.commands._common import console, parse_numbers, progress_bar
from pcnalloc.commands._fields import field_help, list_text, seeds_text
from pcnalloc.commands._sets import SetOption
from pcnalloc.core.limits import REQUESTS_MAX, SEED_MAX, STEPS_MAX, WORKERS_MAX
from pcnalloc.pipeline.config import EvaluateStage, RunConfig, TeacherEvaluateStage

_EV = EvaluateStage()
"""Defaults of ``teacher evaluate``'s grid options: the evaluate stage's fields."""
_TE = TeacherEvaluateStage()
"""Defaults of its loads and baselines: the teacher evaluate stage's fields."""


def _loads(text: str) -> tuple[float, ...]:
    return tuple(parse_numbers(text, "--load"))


def register(app: typer.Typer) -> None:
    """Add the ``teacher`` verbs to the CLI app."""
    teacher_app = typer.Typer(help="Double-DQN teacher over the 128-d joint state.")
    app.add_typer(teacher_app, name="teacher")
    register_evaluate(teacher_app)

    @teacher_app.command("train")
    def train(
        out: Annotated[Path, typer.Option(help="folder for checkpoints, CSV log and PNG")],
        case: Annotated[str | None, typer.Option(help="grid case (overrides the config)")] = None,
        load: Annotated[
            str | None,
            typer.Option(help="offered load ρ, or comma-separated loads cycled per episode"),
        ] = None,
        steps: Annotated[
            int | None, typer.Option(min=1, max=STEPS_MAX, help="environment steps")
        ] = None,
        seed: Annotated[int | None, typer.Option(min=0, max=SEED_MAX, help="training seed")] = None,
        resume: Annotated[
            bool, typer.Option("--resume", help="continue from the latest checkpoint in --out")
        ] = False,
        config: Annotated[
            Path | None, typer.Option(help="TeacherConfig YAML (fields of TeacherConfig)")
        ] = None,
        sets: SetOption = None,
        scenario: Annotated[
            str | None,
            typer.Option(help="scenario family (normal, storm, fiber-cut, mixed) or YAML file"),
        ] = None,
        tensorboard: Annotated[
            Path | None, typer.Option(help="also write the log rows as TensorBoard scalars here")
        ] = None,
        overwrite: Annotated[
            bool, typer.Option(help="replace an existing --out (once the new run finishes)")
        ] = False,
    ) -> None:
        """Train a teacher; evaluate it against the baseline on held-out seeds as it learns.

        A new run trains in a temp folder renamed to --out when it finishes (a failed or
        interrupted run leaves nothing); --resume continues in place in an existing --out.
        With --tensorboard DIR the run folder DIR/teacher is staged the same way (DIR itself
        is a log folder shared with other runs); --resume appends to it.
        """
        import contextlib

        from pcnalloc.commands._tboutput import tensorboard_output
        from pcnalloc.errors import OutputPathError
        from pcnalloc.fileio import check_output, staged_dir
        from pcnalloc.teacher import teacher_config, train_teacher

        if resume:
            if not out.is_dir():
                check_output(out, kind="dir", overwrite=True)  # a file: the one-line refusal
                raise OutputPathError(f"--out {str(out)!r} does not exist; nothing to --resume")
        else:
            check_output(out, kind="dir", overwrite=overwrite)

        overrides: dict = {}
        if tensorboard is not None:
            overrides["tensorboard"] = tensorboard
        if case is not None:
            overrides["env"] = {"network": {"case": case}}
        if scenario is not None:
            overrides.setdefault("env", {})["traffic"] = {"scenario": scenario}
        if load is not None:
            overrides["loads"] = _loads(load)
        if steps is not None:
            overrides["steps"] = steps
        if seed is not None:
            overrides["seed"] = seed
        cfg = teacher_config(config, sets=sets or (), **overrides)
        # the flag's or the config file's log folder; this run's output is DIR/teacher
        tb = tensorboard_output(cfg.tensorboard, "teacher", overwrite=overwrite, append=resume)
        where = contextlib.nullcontext(out) if resume else staged_dir(out, overwrite=overwrite)
        with tb, where as work, progress_bar() as bar:
            task = bar.add_task(f"teacher {cfg.env.network.case}", total=cfg.steps)

            def on_progress(step: int, scalars: dict) -> None:
                bar.update(
                    task,
                    completed=step,
                    description=f"teacher ε={scalars['epsilon']:.2f} loss={scalars['loss']:.4f}",
                )

            result = train_teacher(cfg, work, resume=resume, on_progress=on_progress)
            bar.update(task, completed=result.step)
        checkpoint = out / Path(result.checkpoint).relative_to(work)
        table = Table(title=f"teacher training — {cfg.env.network.case}, loads {list(cfg.loads)}")
        table.add_column("quantity")
        table.add_column("value", justify="right")
        table.add_row("env steps", str(result.step))
        table.add_row("episodes", str(result.episodes))
        table.add_row("gradient steps", str(result.updates))
        table.add_row("wall time (s)", f"{result.wall_s:.1f}")
        for k, v in result.last_eval.items():
            table.add_row(k.replace("_", " "), f"{v:.4f}")
        table.add_row("checkpoint", str(checkpoint))
        table.add_row("log", str(Path(out) / "train_log.csv"))
        console.print(table)


def register_evaluate(teacher_app: typer.Typer) -> None:
    """Add ``teacher evaluate`` to the ``teacher`` sub-app."""

    @teacher_app.command("evaluate")
    def evaluate(
        teacher: Annotated[Path, typer.Option(help="checkpoint .pt or training folder")],
        cases: Annotated[
            str, typer.Option(help=field_help(EvaluateStage, "cases", "comma-separated"))
        ] = list_text(_EV.cases),
        loads: Annotated[
            str, typer.Option(help=field_help(TeacherEvaluateStage, "loads", "comma-separated"))
        ] = list_text(_TE.loads),
        seeds: Annotated[
            str, typer.Option(help=field_help(EvaluateStage, "seeds", "0-4, 1,3,7 …"))
        ] = seeds_text(_EV.seeds),
        baselines: Annotated[
            str,
            typer.Option(help=field_help(TeacherEvaluateStage, "baselines", "comma-separated")),
        ] = list_text(_TE.baselines),
        requests: Annotated[
            int,
            typer.Option(min=1, max=REQUESTS_MAX, help=field_help(EvaluateStage, "requests")),
        ] = _EV.requests,
        workers: Annotated[
            int,
            typer.Option(min=1, max=WORKERS_MAX, help=field_help(RunConfig, "workers")),
        ] = RunConfig.model_fields["workers"].default,
        out: Annotated[Path | None, typer.Option(help="write the sweep JSON here")] = None,
        overwrite: Annotated[bool, typer.Option(help="replace an existing --out")] = False,
    ) -> None:
        """Greedy teacher vs tuned heuristics on held-out seeds, mean ± 95 % CI over seeds."""
        from pcnalloc.fileio import check_output

        if out is not None:
            check_output(out, kind="file", overwrite=overwrite)
        from pcnalloc.commands._common import write_json
        from pcnalloc.config import build
        from pcnalloc.core.executors import make_executor
        from pcnalloc.evaluate.sweep import parse_seeds, sweep
        from pcnalloc.teacher import TRAIN_SEED_BASE, resolve_checkpoint

        names = [b.strip() for b in baselines.split(",") if b.strip()]
        te = build(
            TeacherEvaluateStage,
            {"loads": _loads(loads), "baselines": names},
            "teacher evaluate",
        )
        ck = resolve_checkpoint(teacher)
        seed_list = parse_seeds(seeds)
        if max(seed_list) >= TRAIN_SEED_BASE:
            from pcnalloc.errors import ConfigError

            raise ConfigError(f"evaluation seeds must be < {TRAIN_SEED_BASE} (held out)")
        # The checkpoint travels in the spec (one picklable string), so spawned workers need
        # no environment variable; reports name the policy "teacher" (display_name).
        policies = [f"teacher@{ck.resolve()}", *te.baselines]
        case_list = [c.strip() for c in cases.split(",") if c.strip()]
        load_list = list(te.loads)
        n = len(policies) * len(case_list) * len(load_list) * len(seed_list)
        with make_executor("process", workers) as ex, progress_bar() as bar:
            task = bar.add_task("teacher vs heuristics", total=n)
            result = sweep(
                policies,
                case_list,
                load_list,
                seed_list,
                requests,
                ex,
                imports=("pcnalloc.teacher",),
                progress=lambda k: bar.advance(task, k),
            )
        result["teacher_checkpoint"] = str(ck)
        if out is not None:
            check_output(out, kind="file", overwrite=overwrite)  # none appeared meanwhile
            write_json(out, result)
        table = Table(title=f"teacher {ck.name} vs heuristics ({len(seed_list)} seeds, 95 % CI)")
        for col in ("case", "load", "policy", "value ratio", "blocking prio ≤ 1"):
            table.add_column(col, justify="right" if col[0] in "vb" else "left")
        for row in result["aggregate"]:
            m = row["metrics"]
            cells = []
            for k in ("weighted_value_ratio", "blocking_priority_le1"):
                ci = m[k]["ci95"]
                cells.append(
                    f"{m[k]['mean']:.4f} ± {ci:.4f}" if ci is not None else f"{m[k]['mean']:.4f}"
                )
            table.add_row(row["case"], f"{row['load']:g}", row["policy"], *cells)
        console.print(table)
