"""`pcnalloc tune`: grid-search each heuristic's parameters on training seeds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from pcnalloc.commands._common import console, progress_bar, write_json
from pcnalloc.commands._fields import field_help, list_text, seeds_text
from pcnalloc.config import NetworkConfig, TrafficConfig
from pcnalloc.core.limits import REQUESTS_MAX
from pcnalloc.pipeline.config import TuneStage

_TS = TuneStage()
"""The defaults of the options below: the tune stage's fields and the env config's."""
_CASE = NetworkConfig.model_fields["case"].default
_LOAD = TrafficConfig.model_fields["load"].default


def register(app: typer.Typer) -> None:
    """Add the ``tune`` verbs to the CLI app."""

    @app.command("tune")
    def tune_cmd(
        case: Annotated[str, typer.Option(help=field_help(NetworkConfig, "case"))] = _CASE,
        load: Annotated[float, typer.Option(help=field_help(TrafficConfig, "load"))] = _LOAD,
        scenario: Annotated[
            str | None, typer.Option(help="scenario family or YAML file (default: none)")
        ] = None,
        policies: Annotated[
            str, typer.Option(help=field_help(TuneStage, "policies", "comma-separated"))
        ] = list_text(_TS.policies),
        seeds: Annotated[
            str, typer.Option(help=field_help(TuneStage, "seeds", "e.g. 1000000-1000002"))
        ] = seeds_text(_TS.seeds),
        requests: Annotated[
            int,
            typer.Option(min=10, max=REQUESTS_MAX, help=field_help(TuneStage, "requests")),
        ] = _TS.requests,
        out: Annotated[Path, typer.Option(help="result JSON")] = Path("out/tune/tune.json"),
        overwrite: Annotated[bool, typer.Option(help="replace an existing --out")] = False,
    ) -> None:
        """Tune POLICIES on CASE at LOAD over training SEEDS; write the winners as specs."""
        from pcnalloc.config import build, env_config
        from pcnalloc.evaluate.sweep import parse_seeds
        from pcnalloc.evaluate.tune import grid_size, tune
        from pcnalloc.fileio import check_output

        names = [p.strip() for p in policies.split(",") if p.strip()]
        raw = {"policies": names, "seeds": parse_seeds(seeds), "requests": requests}
        seed_list = list(build(TuneStage, raw, "tune").seeds)
        check_output(out, kind="file", overwrite=overwrite)
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
