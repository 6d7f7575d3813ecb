"""`pcnalloc library build|info`: write and inspect the teacher trajectory library."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from pcnalloc.commands._common import console, parse_numbers, progress_bar
from pcnalloc.commands._fields import field_help, list_text
from pcnalloc.commands._sets import SetOption
from pcnalloc.core.limits import EPISODES_MAX, REQUESTS_MAX, SEED_MAX, WORKERS_MAX
from pcnalloc.core.seeds import LIBRARY_LOCKSTEP, LIBRARY_SEED_BASE
from pcnalloc.pipeline.config import LibraryStage, RunConfig

_LIB = LibraryStage()
"""The defaults of the options below: the library stage's fields (written once there)."""
_RUN = RunConfig.model_fields


def _floats(text: str, what: str) -> list[float]:
    return parse_numbers(text, what)


def _teachers(text: str) -> list[str]:
    """Comma-separated teachers; a comma inside ``@key=value,…`` parameters stays with its
    spec (a part with ``=`` and no ``@`` continues the previous one)."""
    out: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if out and "=" in part and "@" not in part and "@" in out[-1]:
            out[-1] += "," + part
        else:
            out.append(part)
    return out


def register(app: typer.Typer) -> None:
    """Add the ``library`` verbs to the CLI app."""
    lib_app = typer.Typer(help="Trajectory library of teacher rollouts (Parquet).")
    app.add_typer(lib_app, name="library")

    @lib_app.command("build")
    def build(
        teacher: Annotated[
            str,
            typer.Option(
                help="teacher checkpoint .pt or training folder, or a classical teacher "
                "(cspf-pe, trunk, trunk-reservation, lcr, ksp-ff, with optional :K and "
                "@key=value, e.g. cspf-pe:4); comma-separated for a multi-teacher library"
            ),
        ],
        out: Annotated[Path, typer.Option(help="library folder")],
        cases: Annotated[
            str, typer.Option(help=field_help(LibraryStage, "cases", "comma-separated"))
        ] = list_text(_LIB.cases),
        loads: Annotated[
            str, typer.Option(help=field_help(LibraryStage, "loads", "comma-separated"))
        ] = list_text(_LIB.loads),
        episodes: Annotated[
            int,
            typer.Option(min=1, max=EPISODES_MAX, help=field_help(LibraryStage, "episodes")),
        ] = _LIB.episodes,
        requests: Annotated[
            int | None,
            typer.Option(
                min=1, max=REQUESTS_MAX, help="decisions per episode (default: teacher's)"
            ),
        ] = None,
        explore: Annotated[
            float, typer.Option(min=0.0, max=1.0, help=field_help(LibraryStage, "explore"))
        ] = _LIB.explore,
        workers: Annotated[
            int, typer.Option(min=1, max=WORKERS_MAX, help=field_help(RunConfig, "workers"))
        ] = _RUN["workers"].default,
        executor: Annotated[
            str, typer.Option(help=field_help(RunConfig, "executor", "serial, process or ray"))
        ] = _RUN["executor"].default,
        lockstep: Annotated[
            int,
            typer.Option(
                min=1, max=WORKERS_MAX, help="episodes per task, batched through the teacher"
            ),
        ] = LIBRARY_LOCKSTEP,
        seed: Annotated[
            int, typer.Option(min=0, max=SEED_MAX, help="env seed of the first episode")
        ] = LIBRARY_SEED_BASE,
        scenario: Annotated[
            str | None,
            typer.Option(
                help="scenario family (normal, storm, fiber-cut, mixed) or YAML file; a "
                "comma-separated list gives one per teacher (scenario-specific teachers, rows "
                "tagged <scenario>/<teacher>)"
            ),
        ] = None,
        config: Annotated[
            Path | None,
            typer.Option(help="EnvConfig YAML of classical teachers (default: packaged)"),
        ] = None,
        sets: SetOption = None,
        overwrite: Annotated[
            bool, typer.Option(help="replace an existing library folder (once the new is whole)")
        ] = False,
    ) -> None:
        """Roll the teacher out (greedy + ε exploration) and write rows to Parquet."""
        from pcnalloc.core.executors import make_executor
        from pcnalloc.fileio import check_output, staged_dir
        from pcnalloc.library.build import build_library

        check_output(out, kind="dir", overwrite=overwrite)
        case_list = [c.strip() for c in cases.split(",") if c.strip()]
        teachers = _teachers(teacher)
        base = None
        if config is not None or sets:
            from pcnalloc.config import EnvConfig, build, read_yaml
            from pcnalloc.core.overrides import apply_sets

            raw = apply_sets(read_yaml(config) if config else {}, sets, EnvConfig)
            base = build(EnvConfig, raw, "environment config")
        from pcnalloc.config import EnvConfig
        from pcnalloc.network import cached_network

        net_cfg = (base or EnvConfig()).network
        for c in case_list:  # a bad case is one line here, not a dead worker process later
            cached_network(c, net_cfg)
        from pcnalloc.library.build import resolve_teacher

        for t in teachers:  # bad kinds and scenarios fail before the progress bar opens
            if not Path(t).exists():
                resolve_teacher(t, base)
        scenarios: str | list[str] | None = scenario
        if scenario is not None and "," in scenario:
            scenarios = [x.strip() for x in scenario.split(",") if x.strip()]
            if len(scenarios) != len(teachers):
                from pcnalloc.library import LibraryError

                raise LibraryError(
                    f"--scenario lists {len(scenarios)} scenarios for {len(teachers)} teachers; "
                    "give one, or one per teacher"
                )
        if scenario is not None:
            from pcnalloc.config import load_scenario

            for x in [scenarios] if isinstance(scenarios, str) else scenarios or []:
                load_scenario(x)
        load_list = _floats(loads, "--loads")
        total = episodes * len(case_list) * len(load_list) * (requests or 1000) * len(teachers)
        with (
            staged_dir(out, overwrite=overwrite) as tmp,
            make_executor(executor, workers) as ex,
            progress_bar() as bar,
        ):
            task = bar.add_task("library rows", total=total)
            res = build_library(
                teachers if len(teachers) > 1 else teachers[0],
                tmp,
                cases=case_list,
                loads=load_list,
                episodes=episodes,
                requests=requests,
                explore=explore,
                executor=ex,
                seed_base=seed,
                lockstep=lockstep,
                progress=lambda n: bar.advance(task, n),
                scenario=scenarios,
                env=base,
            )
            bar.update(task, total=res.rows, completed=res.rows)
        table = Table(title=f"library {out / res.path.name}")
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
        console.print(f"sources {rd.sources}")
