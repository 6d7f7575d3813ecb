"""``pcnalloc rules check|explain``: validate a rule file; show which rules fire per action."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from pcnalloc.commands._common import console
from pcnalloc.commands._fields import field_help
from pcnalloc.config import NetworkConfig, TrafficConfig
from pcnalloc.core.limits import SEED_MAX
from pcnalloc.core.play import EXPLAIN_STEP_MAX, ExplainConfig

_EX = ExplainConfig()
"""The defaults of the options below: the explain config's fields and the env config's."""
_CASE = NetworkConfig.model_fields["case"].default
_LOAD = TrafficConfig.model_fields["load"].default

rules_app = typer.Typer(help="Safety rules of the edge rule engine.", no_args_is_help=True)


@rules_app.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="rule YAML file (merged over the defaults)")],
    catalog: Annotated[
        Path | None, typer.Option(help="service catalog YAML; default: the packaged one")
    ] = None,
) -> None:
    """Validate FILE (syntax, fields, operators, values, classes); exit non-zero if bad."""
    from pcnalloc.rules.engine import RuleEngine
    from pcnalloc.rules.schema import RuleSet
    from pcnalloc.traffic.catalog import load_catalog

    rs = RuleSet.load(file)
    engine = RuleEngine(rs, load_catalog(catalog))
    table = Table(title=f"rules: {file}")
    for col in ("id", "severity", "applies to", "scope", "enabled"):
        table.add_column(col)
    for r in rs.rules:
        scope = ", ".join(f"{k}={v}" for k, v in r.scope.items()) or "all"
        table.add_row(r.id, r.severity, r.applies_to, scope, "yes" if r.enabled else "no")
    console.print(table)
    counts = {
        s: sum(r.severity == s for r in rs.active_rules) for s in ("critical", "hard", "soft")
    }
    console.print(
        f"OK: {len(rs.active_rules)} active rules ({counts}), "
        f"{len(engine.priorities.changes())} emergency priority changes, sha256 {rs.sha256[:16]}"
    )


@rules_app.command("explain")
def explain(
    case: Annotated[str, typer.Option(help=field_help(NetworkConfig, "case"))] = _CASE,
    seed: Annotated[
        int, typer.Option(min=0, max=SEED_MAX, help=field_help(ExplainConfig, "seed"))
    ] = _EX.seed,
    step: Annotated[
        int,
        typer.Option(min=0, max=EXPLAIN_STEP_MAX, help=field_help(ExplainConfig, "step")),
    ] = _EX.step,
    rules: Annotated[Path | None, typer.Option(help="rule YAML merged over the defaults")] = None,
    policy: Annotated[
        str, typer.Option(help=field_help(ExplainConfig, "policy", "plays the first STEP requests"))
    ] = _EX.policy,
    load: Annotated[float, typer.Option(help=field_help(TrafficConfig, "load"))] = _LOAD,
) -> None:
    """Replay the env to request STEP with POLICY and show which rules fire for each action."""
    from pcnalloc.baselines import make_policy
    from pcnalloc.config import build, env_config
    from pcnalloc.envs import PowerCommEnv
    from pcnalloc.evaluate.runner import env_config_for
    from pcnalloc.rules.engine import RequestContext, build_engine

    build(ExplainConfig, {"policy": policy, "seed": seed, "step": step}, "rules explain")
    pol = make_policy(policy)
    cfg = env_config_for(pol, env_config(network={"case": case}, traffic={"load": load}))
    env = PowerCommEnv(cfg, observation=pol.observation)
    engine = build_engine(rules, env.catalog, trust_threshold=cfg.trust_threshold)
    pol.reset(seed)
    obs, _ = env.reset(seed=seed)
    for _ in range(step):
        obs, *_ = env.step(pol.act(obs))
    req, ev = env.current_request, env.current_evaluation
    ctx = RequestContext.from_env(env)
    v = engine.check(ev.fields, ctx)
    f, L = ev.fields, cfg.grant_levels
    console.print(
        f"request {step}: class [bold]{env.catalog.names[req.cls]}[/] src {req.src} → dst "
        f"{req.dst}, region {ctx.region}, emergency {'active' if ctx.emergency else 'inactive'}, "
        f"effective priority {v.priority}; policy {policy} proposes {pol.act(obs)}"
    )
    table = Table(title=f"rules fired per action ({case}, seed {seed}, rules {engine.sha256[:12]})")
    for col in ("a", "path", "grant", "lat/bound", "fits(+pre)", "trust", "allowed"):
        table.add_column(col, no_wrap=True)
    table.add_column("rules fired (hard, soft)", overflow="fold")
    for a in range(v.forbidden_A.shape[0]):
        fired = v.explain(a)
        hard = [rid for rid, _ in fired if rid in engine.rule_ids]
        soft = [rid for rid, _ in fired if rid in engine.soft_ids]
        text = ", ".join(f"[red]{r}[/]" for r in hard) + (
            (" " if hard else "") + ", ".join(f"[dim]{r}[/]" for r in soft) if soft else ""
        )
        reject = a == v.forbidden_A.shape[0] - 1
        table.add_row(
            str(a),
            "reject" if reject else f"k={a // L}",
            "" if reject else f"{f['grant'][a]:.2f}",
            "" if reject else f"{f['latency_over_bound'][a]:.3f}",
            "" if reject else f"{bool(f['fits'][a])}({bool(f['fits_with_preemption'][a])})",
            "" if reject else f"{f['min_trust'][a]:.2f}",
            "[red]no[/]" if v.forbidden_A[a] else "yes",
            text or "-",
        )
    console.print(table)
    for a in range(v.forbidden_A.shape[0]):
        for rid, why in v.explain(a, soft=False):
            console.print(f"  a={a} {rid}: {escape(why)}")


def register(app: typer.Typer) -> None:
    """Add the ``rules`` verbs to the CLI app."""
    app.add_typer(rules_app, name="rules")
