"""`pcnalloc tune`: grid-search each heuristic's parameters on training seeds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from pcnalloc.commands._common import console, progress_bar, write_json


def register(app: typer.Typer) -> None:
    """Add the ``tune`` verbs to the CLI app."""

    @app.command("tune")
    def tune_cmd(
        case: Annotated[str, typer.Option(help="grid case")] = "case30",
        load: Annotated[float, typer.Option(help="offered load ρ (> 0)")] = 1.0,
        scenario: Annotated[
            str | None, typer.Option(help="scenario family or YAML file (default: none)")
        ] = None,
        policies: Annotated[
            str, typer.Option(help="comma-separated heuristics")
        ] = "ksp-ff,cspf-pe,cspf-pv,llp,trunk,lcr",
        seeds: Annotated[
            str, typer.Option(help="TRAINING seeds (≥ 1000), e.g. 1000000-1000002")
        ] = "1000000-1000002",
        requests: Annotated[
            int, typer.Option(min=10, max=1_000_000, help="decisions per episode")
        ] = 500,
        out: Annotated[Path, typer.Option(help="result JSON")] = Path("out/tune/tune.json"),
        overwrite: Annotated[bool, typer.Option(help="replace an existing --out")] = False,
    ) -> None:
        """Tune POLICIES on CASE at LOAD over training SEEDS; write the winners as specs."""
        from pcnalloc.config import env_config
        from pcnalloc.evaluate.sweep import parse_seeds
        from pcnalloc.evaluate.tune import grid_size, tune
        from pcnalloc.fileio import check_output

        check_output(out, kind="file", overwrite=overwrite)
        names = [p.strip() for p in policies.split(",") if p.strip()]
        seed_list = parse_seeds(seeds)
        cfg = env_config(network={"case": case}, traffic={"load": load, "scenario": scenario})
        console.print(f"tuning {', '.join(names)} on {case} at ρ={load:g} over seeds {seed_list}")
        with progress_bar() as bar:
            task = bar.add_task("grid points × seeds", total=grid_size(names) * len(seed_list))
            res = tune(names, cfg, seed_list, requests, progress=lambda n: bar.advance(task, n))
        table = Table(title=f"tuned heuristics ({case}, ρ={load:g}, training seeds)")
        for col in ("policy", "tuned spec", "value", "crit. blocking", "default value"):
            table.add_column(col)
        for name, spec in res.best_specs.items():
            sc, d = res.best_scores[name], res.default_scores.get(name)
            table.add_row(
                name,
                spec,
                f"{sc['value']:.4f}",
                f"{sc['critical_blocking']:.3f}",
                f"{d['value']:.4f}" if d else "-",
            )
        console.print(table)
        payload = {
            "case": case,
            "load": load,
            "scenario": scenario,
            "requests": requests,
            **res.to_json(),
        }
        check_output(out, kind="file", overwrite=overwrite)  # none appeared meanwhile
        write_json(out, payload)
        console.print(f"wrote {out}")
