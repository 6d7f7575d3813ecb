"""`pcnalloc run`: the whole pipeline on the embedded default or a config file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from pcnalloc.commands._common import console, progress_bar


class _Bar:
    """Pipeline progress on a rich progress bar: one task per stage step."""

    def __init__(self, bar) -> None:  # type: ignore[no-untyped-def]
        self.bar = bar
        self.task = None

    def start(self, label: str, total: int | None) -> None:
        if self.task is not None:
            t = self.bar.tasks[-1]
            self.bar.update(self.task, total=t.completed or 1, completed=t.completed or 1)
        self.task = self.bar.add_task(label, total=total)

    def advance(self, n: int = 1) -> None:
        if self.task is not None:
            self.bar.advance(self.task, n)


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run(
        config: Annotated[
            Path | None, typer.Option(help="run config YAML merged over the embedded default")
        ] = None,
        out: Annotated[Path, typer.Option(help="output folder")] = Path("out/run"),
        force: Annotated[bool, typer.Option(help="rerun stages even if up to date")] = False,
    ) -> None:
        """Network → teacher → library → distil → compile → evaluate → report."""
        from pcnalloc.pipeline import load_run_config, run_pipeline

        cfg = load_run_config(config)
        with progress_bar() as bar:
            summary = run_pipeline(cfg, out, force=force, progress=_Bar(bar))
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
