"""`pcnalloc run`: the whole pipeline on the embedded default or a config file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress, TaskID
from rich.table import Table

from pcnalloc.commands._common import console, progress_bar
from pcnalloc.commands._sets import SetOption


def check_run_folder(out: Path, *, overwrite: bool) -> None:
    """Refuse an --out that is a file, or a folder that holds files of something else.

    A run folder is this command's cache: its stages are reused. It has a stage record, or
    only sub-folders and ``report.md`` (a run killed in its first stage). A folder with other
    files is refused unless ``overwrite``, since stages replace their sub-folders.

    Raises:
        OutputPathError: naming the path.
    """
    from pcnalloc.errors import OutputPathError
    from pcnalloc.fileio import check_output
    from pcnalloc.pipeline.stages import RECORD

    check_output(out, kind="dir", overwrite=True)
    foreign = out.is_dir() and any(not p.is_dir() and p.name != "report.md" for p in out.iterdir())
    if foreign and not overwrite and not any(out.glob(f"*/{RECORD}")):
        raise OutputPathError(
            f"--out {str(out)!r} is a folder with other files (no stage records of a run); "
            "pass --overwrite to run in it anyway"
        )


def _unfinished(out: Path) -> set[str]:
    """Names under ``out`` that are not finished stage folders (no stage record)."""
    from pcnalloc.pipeline.stages import RECORD

    return {d.name for d in out.iterdir() if not (d / RECORD).is_file()}


def _remove_failed(out: Path, before: set[str] | None) -> None:
    """After a failed run: remove the stage folders this run started and did not finish (no
    stage record; what was there unfinished before is left alone) and ``out`` itself when
    this run created it and no stage finished."""
    import shutil

    from pcnalloc.pipeline.stages import RECORD

    if not out.is_dir():
        return
    for name in _unfinished(out) - (before or set()):
        if (out / name).is_dir():
            shutil.rmtree(out / name, ignore_errors=True)
    if before is None and not any(out.glob(f"*/{RECORD}")):
        shutil.rmtree(out, ignore_errors=True)


class _Bar:
    """Pipeline progress on a rich progress bar: one task per stage step."""

    def __init__(self, bar: Progress) -> None:
        self.bar = bar
        self.task: TaskID | None = None

    def start(self, label: str, total: int | None) -> None:
        if self.task is not None:
            t = self.bar.tasks[-1]
            self.bar.update(self.task, total=t.completed or 1, completed=t.completed or 1)
        self.task = self.bar.add_task(label, total=total)

    def advance(self, n: int = 1) -> None:
        if self.task is not None:
            self.bar.advance(self.task, n)


def register(app: typer.Typer) -> None:
    """Add the ``run`` verbs to the CLI app."""

    @app.command("run")
    def run(
        config: Annotated[
            Path | None, typer.Option(help="run config YAML merged over the embedded default")
        ] = None,
        sets: SetOption = None,
        out: Annotated[Path, typer.Option(help="output folder")] = Path("out/run"),
        scenario: Annotated[
            str | None,
            typer.Option(
                help="train, build the library and evaluate on this scenario family (normal, "
                "storm, fiber-cut, mixed) or YAML file; default: train on the base traffic, "
                "evaluate every family"
            ),
        ] = None,
        force: Annotated[bool, typer.Option(help="rerun stages even if up to date")] = False,
        overwrite: Annotated[
            bool, typer.Option(help="run in an existing folder that is not a run folder")
        ] = False,
    ) -> None:
        """Network → teacher → library → distil → compile → evaluate → report.

        A rerun in the same --out reuses every stage that is up to date. A failed run
        removes the stage folders it left unfinished (and --out when it created it)."""
        from pcnalloc.pipeline import load_run_config, run_pipeline

        check_run_folder(out, overwrite=overwrite)
        cfg = load_run_config(config, scenario=scenario, sets=sets or ())
        before = _unfinished(out) if out.is_dir() else None
        try:
            with progress_bar() as bar:
                summary = run_pipeline(cfg, out, force=force, progress=_Bar(bar))
        except BaseException:
            _remove_failed(out, before)
            raise
        table = Table(title=f"pcnalloc run — {out}")
        for col in (
            "case",
            "load",
            "policy",
            "value",
            "crit. blocking",
            "violations",
            "intercepted",
        ):
            table.add_column(col, justify="right" if col not in ("case", "policy") else "left")
        for r in summary["headline"]:
            ci = f" ± {r['value_ci']:.3f}" if r["value_ci"] is not None else ""
            table.add_row(
                r["case"],
                f"{r['load']:g}",
                r["policy"],
                f"{r['value']:.4f}{ci}",
                f"{r['critical_blocking']:.3f}",
                f"{r['violations']:.0f}",
                f"{r['intercepted']:.0f}",
            )
        console.print(table)
        t = Table(title="stage timings")
        t.add_column("stage")
        t.add_column("seconds", justify="right")
        t.add_column("reused")
        for k, v in summary["timings"].items():
            t.add_row(k, f"{v.get('seconds') or 0:.1f}", "yes" if v.get("skipped") else "no")
        console.print(t)
        for line in summary.get("verdict", []):
            console.print(f"• {line}")
        console.print(f"report: {out / 'report.md'}")
