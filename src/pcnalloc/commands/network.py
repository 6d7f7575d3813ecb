"""`pcnalloc network show CASE`: summary table and optional PNG map."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from pcnalloc.commands._common import console, write_json


def register(app: typer.Typer) -> None:
    """Add the ``network`` verbs to the CLI app."""
    net_app = typer.Typer(
        help="Inspect communication networks built from grid cases.", no_args_is_help=True
    )

    @net_app.command("show")
    def show(
        case: Annotated[str, typer.Argument(help="pandapower case, MATPOWER file or graph JSON")],
        png: Annotated[Path | None, typer.Option(help="write a PNG map here")] = None,
        json_out: Annotated[
            Path | None, typer.Option("--json", help="write the summary JSON")
        ] = None,
        overwrite: Annotated[bool, typer.Option(help="replace an existing --png / --json")] = False,
    ) -> None:
        """Build the network of CASE and print its summary."""
        from pcnalloc.config import NetworkConfig
        from pcnalloc.fileio import check_output, staged_file
        from pcnalloc.network import cached_network

        if png is not None:
            check_output(png, kind="file", overwrite=overwrite, flag="--png")
        if json_out is not None:
            check_output(json_out, kind="file", overwrite=overwrite, flag="--json")

        net = cached_network(case, NetworkConfig(case=case))  # the on-disk cache: no pandapower
        summary = net.summary()
        table = Table(title=f"communication network of {case}")
        table.add_column("property")
        table.add_column("value")
        for k, v in summary.items():
            table.add_row(k, str(v))
        pools = net.pool_capacity_kbps.sum(axis=0) / 1000.0
        table.add_row("pool capacity Mb/s (rt, nrt, mgmt)", ", ".join(f"{p:,.0f}" for p in pools))
        console.print(table)
        if png is not None:
            from pcnalloc.network.plot import plot_network

            with staged_file(png, overwrite=overwrite, flag="--png") as tmp:
                plot_network(net, tmp)
            console.print(f"map written to {png}")
        if json_out is not None:
            check_output(json_out, kind="file", overwrite=overwrite, flag="--json")
            write_json(json_out, summary)

    @net_app.command("cases")
    def cases() -> None:
        """List the bundled grid cases."""
        from pcnalloc.network import available_cases

        console.print(", ".join(available_cases()))

    app.add_typer(net_app, name="network")
