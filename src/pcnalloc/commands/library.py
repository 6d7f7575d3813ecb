"""`pcnalloc library build|info`: write and inspect the teacher trajectory library."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from pcnalloc.commands._common import console, parse_numbers, progress_bar


def _floats(text: str, what: str) -> list[float]:
    return parse_numbers(text, what)


def register(app: typer.Typer) -> None:
    lib_app = typer.Typer(help="Trajectory library of teacher rollouts (Parquet).")
    app.add_typer(lib_app, name="library")

    @lib_app.command("build")
    def build(
        teacher: Annotated[Path, typer.Option(help="teacher checkpoint .pt or training folder")],
        out: Annotated[Path, typer.Option(help="library folder")],
        cases: Annotated[str, typer.Option(help="comma-separated grid cases")] = "case30",
        loads: Annotated[str, typer.Option(help="comma-separated offered loads ρ")] = "1.0",
        episodes: Annotated[int, typer.Option(min=1, help="episodes per case and load")] = 8,
        requests: Annotated[
            int | None, typer.Option(min=1, help="decisions per episode (default: teacher's)")
        ] = None,
        explore: Annotated[
            float, typer.Option(min=0.0, max=1.0, help="share of random valid actions")
        ] = 0.05,
        workers: Annotated[int, typer.Option(min=1, help="local worker processes")] = 2,
        executor: Annotated[str, typer.Option(help="serial, process or ray")] = "process",
        lockstep: Annotated[
            int, typer.Option(min=1, help="episodes per task, batched through the teacher")
        ] = 8,
        seed: Annotated[int, typer.Option(min=0, help="env seed of the first episode")] = 200_000,
    ) -> None:
        """Roll the teacher out (greedy + ε exploration) and write rows to Parquet."""
        from pcnalloc.core.executors import make_executor
        from pcnalloc.library.build import build_library

        case_list = [c.strip() for c in cases.split(",") if c.strip()]
        load_list = _floats(loads, "--loads")
        total = episodes * len(case_list) * len(load_list) * (requests or 1000)
        with make_executor(executor, workers) as ex, progress_bar() as bar:
            task = bar.add_task("library rows", total=total)
            res = build_library(
                teacher,
                out,
                cases=case_list,
                loads=load_list,
                episodes=episodes,
                requests=requests,
                explore=explore,
                executor=ex,
                seed_base=seed,
                lockstep=lockstep,
                progress=lambda n: bar.advance(task, n),
            )
            bar.update(task, total=res.rows, completed=res.rows)
        table = Table(title=f"library {res.path}")
        for col in ("case@load", "rows", "greedy share", "mean reward"):
            table.add_column(col, justify="left" if col == "case@load" else "right")
        for key, s in res.per_case_load.items():
            table.add_row(
                key, f"{int(s['rows'])}", f"{s['greedy_share']:.3f}", f"{s['mean_reward']:.3f}"
            )
        table.add_row("all", str(res.rows), "", f"{res.rows_per_s:.0f} rows/s")
        console.print(table)

    @lib_app.command("info")
    def info(path: Annotated[Path, typer.Argument(help="library folder or .parquet file")]) -> None:
        """Row count, layout and provenance of a library."""
        from pcnalloc.library import LibraryReader, column_shapes

        rd = LibraryReader(path)
        table = Table(title=f"{path}: {rd.num_rows} rows")
        table.add_column("column")
        table.add_column("shape per row", justify="right")
        for k, v in column_shapes(rd.spec).items():
            table.add_row(k, str(v))
        console.print(table)
        m = rd.metadata
        console.print(
            f"teacher sha256 {m['teacher_sha256'][:16]}…  cases {m['cases']}  loads {m['loads']}"
            f"  seeds {len(m['seeds'])}  schema v{m['schema_version']}"
        )
