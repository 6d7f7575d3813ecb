"""`pcnalloc evaluate`: every policy on every case, load and seed; tables, JSON, report, plots."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from pcnalloc.commands._common import console, parse_numbers, progress_bar, write_atomic, write_json
from pcnalloc.commands._fields import field_help, list_text, seeds_text
from pcnalloc.commands._sets import SetOption
from pcnalloc.core.limits import REQUESTS_MAX, WORKERS_MAX
from pcnalloc.pipeline.config import EvaluateStage, RunConfig

_EV = EvaluateStage()
"""The defaults of the options below: the evaluate stage's fields (written once there)."""
_EXECUTOR = RunConfig.model_fields["executor"]


def _split(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def _loads(text: str) -> list[float]:
    return parse_numbers(text, "--loads")


def _rich_table(title: str, header: list[str], rows: list[list[str]]) -> Table:
    table = Table(title=title)
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i < 2 else "right")
    for r in rows:
        table.add_row(*r)
    return table


def register(app: typer.Typer) -> None:
    """Add the ``evaluate`` verbs to the CLI app."""

    @app.command("evaluate")
    def evaluate(
        policies: Annotated[
            str, typer.Option(help=field_help(EvaluateStage, "policies", "comma-separated"))
        ] = list_text(_EV.policies),
        cases: Annotated[
            str, typer.Option(help=field_help(EvaluateStage, "cases", "comma-separated"))
        ] = list_text(_EV.cases),
        loads: Annotated[
            str, typer.Option(help=field_help(EvaluateStage, "loads", "comma-separated"))
        ] = list_text(_EV.loads),
        seeds: Annotated[
            str, typer.Option(help=field_help(EvaluateStage, "seeds", "0-4, 1,3,7 or 0-2,9"))
        ] = seeds_text(_EV.seeds),
        requests: Annotated[
            int,
            typer.Option(min=1, max=REQUESTS_MAX, help=field_help(EvaluateStage, "requests")),
        ] = _EV.requests,
        executor: Annotated[
            str, typer.Option(help=field_help(RunConfig, "executor", "serial, process or ray"))
        ] = _EXECUTOR.default,
        workers: Annotated[
            int | None, typer.Option(min=1, max=WORKERS_MAX, help="workers (default: all cores)")
        ] = None,
        out: Annotated[Path, typer.Option(help="output folder")] = Path("out/evaluate"),
        config: Annotated[
            Path | None, typer.Option(help="EnvConfig YAML applied to every run")
        ] = None,
        sets: SetOption = None,
        scenario: Annotated[
            str | None,
            typer.Option(help="scenario family (normal, storm, fiber-cut, mixed) or YAML file"),
        ] = None,
        offline_bound: Annotated[
            bool, typer.Option("--offline-bound", help="also solve the hindsight MILP bound")
        ] = False,
        bound_requests: Annotated[
            int,
            typer.Option(min=1, max=REQUESTS_MAX, help=field_help(EvaluateStage, "bound_requests")),
        ] = _EV.bound_requests,
        bound_time_limit_s: Annotated[
            float,
            typer.Option(
                "--bound-time-limit",
                min=0.1,
                max=3600,
                help=field_help(EvaluateStage, "bound_time_limit_s"),
            ),
        ] = _EV.bound_time_limit_s,
        overwrite: Annotated[
            bool, typer.Option(help="replace an existing --out folder (once the new is whole)")
        ] = False,
    ) -> None:
        """Evaluate POLICIES on CASES × LOADS × SEEDS and write sweep.json, report.md, PNGs."""
        from pcnalloc.config import read_yaml
        from pcnalloc.core import make_executor
        from pcnalloc.errors import ConfigError
        from pcnalloc.evaluate.report import (
            PLOTS,
            bound_rows,
            markdown_report,
            plot_vs_load,
            table_rows,
        )
        from pcnalloc.evaluate.sweep import bound_sweep, parse_seeds, sweep, validate_grid
        from pcnalloc.fileio import check_output, staged_dir

        # Validate everything before any long work starts.
        pols, case_list, load_list = _split(policies), _split(cases), _loads(loads)
        seed_list = parse_seeds(seeds)
        overrides: dict[str, Any] = read_yaml(config) if config else {}
        if scenario is not None:  # the bound's windows stay calm (it models no grid events)
            overrides.setdefault("traffic", {})["scenario"] = scenario
        from pcnalloc.config import EnvConfig
        from pcnalloc.core.overrides import apply_sets

        overrides = apply_sets(overrides, sets, EnvConfig)
        if len(set(pols)) != len(pols):
            raise ConfigError(f"--policies {policies!r} names a policy twice")
        check_output(out, kind="dir", overwrite=overwrite)
        validate_grid(pols, case_list, load_list, seed_list, requests, overrides)

        n_runs = len(pols) * len(case_list) * len(load_list) * len(seed_list)
        bound: dict[str, Any] | None = None
        with make_executor(executor, workers) as ex, progress_bar() as bar:
            task = bar.add_task(f"sweep on {ex.name} ({ex.workers} workers)", total=n_runs)
            result = sweep(
                pols, case_list, load_list, seed_list, requests, ex,
                env_overrides=overrides, progress=lambda n: bar.advance(task, n),
            )  # fmt: skip
            if offline_bound:
                n_win = len(case_list) * len(load_list) * len(seed_list)
                btask = bar.add_task("offline MILP bound", total=n_win)
                bound = bound_sweep(
                    pols, case_list, load_list, seed_list, bound_requests, ex,
                    env_overrides=overrides, time_limit_s=bound_time_limit_s,
                    progress=lambda n: bar.advance(btask, n),
                )  # fmt: skip

        header, rows = table_rows(result, compact=True)
        for case in case_list:  # one table per case keeps the columns readable at 80 wide
            title = f"{case}: mean ± 95 % CI over {len(seed_list)} seeds"
            console.print(_rich_table(title, header[1:], [r[1:] for r in rows if r[0] == case]))
        if bound is not None:
            header, rows = bound_rows(bound, compact=True)
            for case in case_list:
                title = f"{case}: gap to the offline bound ({bound_requests} requests)"
                console.print(_rich_table(title, header[1:], [r[1:] for r in rows if r[0] == case]))
        with staged_dir(out, overwrite=overwrite, check=False) as work:
            write_json(work / "sweep.json", result | ({"offline_bound": bound} if bound else {}))
            for name, (metric, label) in PLOTS.items():
                write_atomic(work / name, plot_vs_load(result, metric, label))
            write_atomic(work / "report.md", markdown_report(result, bound, list(PLOTS)))
        console.print(f"wrote {out / 'sweep.json'}, {out / 'report.md'} and {len(PLOTS)} plots")
