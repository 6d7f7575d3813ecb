"""`pcnalloc simulate`: play one policy on one case and load; summary table and JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from pcnalloc.commands._common import console, progress_bar, write_json
from pcnalloc.commands._fields import field_help
from pcnalloc.commands._sets import SetOption
from pcnalloc.config import NetworkConfig, TrafficConfig
from pcnalloc.core.limits import REQUESTS_MAX, SEED_MAX
from pcnalloc.core.play import SimulateConfig

_SIM = SimulateConfig()
"""The defaults of the options below: the simulate config's fields (written once there)."""
_NET, _TRAFFIC = NetworkConfig.model_fields, TrafficConfig.model_fields


def summary_table(result: dict[str, Any]) -> Table:
    """The headline metrics and timings of one simulate result as a rich table."""
    m, t = result["metrics"], result["timing"]
    table = Table(
        title=f"{result['policy']} on {result['case']} at load {result['load']} "
        f"(seed {result['seed']}, {result['requests']} requests)"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        ("weighted value ratio", f"{m['weighted_value_ratio']:.4f}"),
        ("blocking probability", f"{m['blocking_probability']:.4f}"),
        ("blocking, priority ≤ 1", f"{m['blocking_priority_le1']:.4f}"),
        ("outcomes", ", ".join(f"{k} {v}" for k, v in m["outcomes"].items())),
        (
            "carried utilisation rt/nrt/mgmt",
            " / ".join(f"{v:.3f}" for v in m["carried_utilisation_per_slice"].values()),
        ),
        ("Mb/s·hops per carried Mb/s", f"{m['mbps_hops_per_carried_mbps']:.3f}"),
        (
            "max / p95 link utilisation",
            f"{m['max_link_utilisation']:.3f} / {m['p95_link_utilisation']:.3f}",
        ),
        ("Jain fairness (link utilisation)", f"{m['jain_fairness_link_utilisation']:.3f}"),
        ("mean latency / bound", f"{m['mean_latency_over_bound']:.3f}"),
        ("executed hard violations", str(m["executed_hard_violations"])),
        ("intercepted", str(m["intercepted"])),
        ("pre-empted flows", str(m["preempted_flows"])),
        (
            "faults / fiber cuts / 1+1 switch-overs",
            f"{m['faults']} / {m['fiber_cuts']} / {m['protection_switchovers']}",
        ),
        ("decisions per second", f"{t['decisions_per_s']:,.0f}"),
        (
            "policy latency p50 / p99 (µs)",
            f"{t['policy_latency_us_p50']:.1f} / {t['policy_latency_us_p99']:.1f}",
        ),
    ]
    for k, v in rows:
        table.add_row(k, v)
    return table


def register(app: typer.Typer) -> None:
    """Add the ``simulate`` verbs to the CLI app."""

    @app.command("simulate")
    def simulate(
        case: Annotated[
            str | None,
            typer.Option(help=f"grid case name or file [default: {_NET['case'].default}]"),
        ] = None,
        policy: Annotated[
            str, typer.Option(help=field_help(SimulateConfig, "policy"))
        ] = _SIM.policy,
        load: Annotated[
            float | None,
            typer.Option(help=f"offered load ρ (> 0) [default: {_TRAFFIC['load'].default:g}]"),
        ] = None,
        scenario: Annotated[
            str | None,
            typer.Option(help="scenario family (normal, storm, fiber-cut, mixed) or YAML file"),
        ] = None,
        requests: Annotated[
            int,
            typer.Option(min=1, max=REQUESTS_MAX, help=field_help(SimulateConfig, "requests")),
        ] = _SIM.requests,
        seed: Annotated[
            int, typer.Option(min=0, max=SEED_MAX, help=field_help(SimulateConfig, "seed"))
        ] = _SIM.seed,
        config: Annotated[
            Path | None,
            typer.Option(help="EnvConfig YAML; --case/--load/--scenario override it when given"),
        ] = None,
        sets: SetOption = None,
        json_out: Annotated[Path | None, typer.Option("--json", help="result JSON path")] = None,
        rules: Annotated[
            Path | None, typer.Option(help="rule file merged over the default rules")
        ] = None,
        guard: Annotated[
            bool, typer.Option(help="put the policy behind the rule engine (interception)")
        ] = False,
        audit: Annotated[
            Path | None, typer.Option(help="append every decision to this hash-chained log")
        ] = None,
        key: Annotated[
            Path | None, typer.Option(help="Ed25519 private key that signs audit checkpoints")
        ] = None,
        overwrite: Annotated[bool, typer.Option(help="replace an existing --json file")] = False,
    ) -> None:
        """Play POLICY on CASE at LOAD for REQUESTS decisions and report the metrics."""
        import contextlib

        from pcnalloc.baselines import make_policy
        from pcnalloc.config import EnvConfig, build, read_yaml
        from pcnalloc.evaluate import run_policy
        from pcnalloc.fileio import check_output, created_on_failure_removed

        if json_out is not None:
            check_output(json_out, kind="file", overwrite=overwrite, flag="--json")
        if audit is not None and audit.is_dir():
            check_output(audit, kind="file", overwrite=True, flag="--audit")  # one line

        build(SimulateConfig, {"policy": policy, "requests": requests, "seed": seed}, "simulate")
        raw: dict[str, Any] = read_yaml(config) if config else {}
        if case is not None:  # a flag overrides the file only when it is given
            raw.setdefault("network", {})["case"] = case
        if load is not None:
            raw.setdefault("traffic", {})["load"] = load
        if scenario is not None:
            raw.setdefault("traffic", {})["scenario"] = scenario
        if rules is not None:
            from pcnalloc.rules.schema import RuleSet

            RuleSet.load(rules)  # validate before any long work
            raw["rules"] = str(rules)
        from pcnalloc.core.overrides import apply_sets

        raw = apply_sets(raw, sets, EnvConfig)
        cfg = build(EnvConfig, raw, "environment config")
        pol = make_policy(policy)
        from pcnalloc.network import cached_network

        cached_network(cfg.network.case, cfg.network)  # fail fast on a bad case, before the bar
        with contextlib.ExitStack() as stack:
            log = None
            if guard or audit is not None:
                from pcnalloc.rules.guard import GuardedPolicy

                if audit is not None:
                    from pcnalloc.edge.audit import AuditLog

                    # a new log that this run fails to fill is removed (no header-only file)
                    stack.enter_context(created_on_failure_removed(audit))
                    log = AuditLog(
                        audit,
                        private_key=key,
                        checkpoint_every=1000,
                        sync_every=100,
                        meta={"case": cfg.network.case, "policy": policy, "seed": seed},
                    )
                    stack.callback(log.close)  # signs the tail: verify needs a closing head
                pol = GuardedPolicy(pol, audit=log)
            with progress_bar() as bar:
                task = bar.add_task(f"{policy} on {cfg.network.case}", total=requests)
                result = run_policy(
                    pol, cfg, seed=seed, requests=requests, progress=lambda n: bar.advance(task, n)
                )
        console.print(summary_table(result))
        if json_out is not None:
            check_output(json_out, kind="file", overwrite=overwrite, flag="--json")
            write_json(json_out, result)
