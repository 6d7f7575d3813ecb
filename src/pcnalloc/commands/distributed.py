"""`pcnalloc distributed gap|trust`: regional agents vs the centralised policy; site trust."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from pcnalloc.commands._common import console, parse_numbers, progress_bar, write_json
from pcnalloc.commands._fields import field_help, list_text, seeds_text
from pcnalloc.core.limits import COUNT_MAX, EPISODES_MAX, REQUESTS_MAX, SEED_MAX
from pcnalloc.distributed.config import (
    RATES,
    GapConfig,
    TrustRun,
    TrustScenario,
    rate_name,
)
from pcnalloc.errors import ConfigError

_GAP = GapConfig()
"""The defaults of ``distributed gap``: the gap config's fields (written once there)."""
_TRUST = TrustRun()
"""The defaults of ``distributed trust``: the trust run's fields and its base scenario's."""
_SC = _TRUST.base
_MALICIOUS = _SC.malicious_sites if isinstance(_SC.malicious_sites, int) else 0
"""``--malicious`` takes a count; the scenario's default is one."""
_RATE_HOW = ", ".join(f"{k} ({v})" for k, v in RATES.items()) + " or a number"


def _floats(text: str, flag: str, lo: float = 0.0, hi: float = float("inf")) -> list[float]:
    return parse_numbers(text, flag, lo=lo, hi=hi, lo_inclusive=True)


def plot_gap(rows: list[dict[str, Any]], path: Path) -> Path:
    """PNG: value-ratio and priority ≤ 1 blocking gap to the centralised policy vs staleness."""
    from pcnalloc.core.plotting import save_png, subplots

    x = [max(r["staleness_s"], 0.1) for r in rows]  # log axis: 0 s drawn at 0.1 s
    fig, axes = subplots(1, 3, figsize=(11, 3.4))
    axes[0].plot(x, [r["value_ratio_central"] for r in rows], "k--", label="centralised")
    axes[0].plot(x, [r["value_ratio_distributed"] for r in rows], "o-", label="regional")
    axes[0].set(ylabel="weighted value ratio")
    axes[0].legend(fontsize=8)
    axes[1].plot(x, [r["blocking_gap"] for r in rows], "o-", label="priority ≤ 1")
    axes[1].plot(x, [r["blocking_all_gap"] for r in rows], "s:", label="all classes")
    axes[1].set(ylabel="blocking gap (regional − central)")
    axes[1].legend(fontsize=8)
    axes[2].plot(x, [r["conflicts_per_1k"] for r in rows], "o-")
    axes[2].set(ylabel="reservation conflicts / 1000 requests")
    for ax in axes:
        ax.set(xscale="log", xlabel="staleness (s; 0 drawn at 0.1)")
    fig.suptitle(f"{rows[0]['policy']}: regional agents vs centralised")
    return save_png(fig, path, dpi=120)


def _gap_table(rows: list[dict[str, Any]], title: str) -> Table:
    t = Table(title=title)
    for h in (
        "staleness s",
        "value central",
        "value regional",
        "value gap",
        "block≤1 central",
        "block≤1 regional",
        "block≤1 gap",
        "conflicts/episode",
    ):
        t.add_column(h, justify="right")
    for r in rows:
        t.add_row(
            f"{r['staleness_s']:g}",
            f"{r['value_ratio_central']:.4f}",
            f"{r['value_ratio_distributed']:.4f}",
            f"{r['value_gap']:+.4f}",
            f"{r['blocking_central']:.4f}",
            f"{r['blocking_distributed']:.4f}",
            f"{r['blocking_gap']:+.4f}",
            f"{r['conflicts']:.1f}",
        )
    return t


def register(app: typer.Typer) -> None:
    """Add the ``distributed`` verbs to the CLI app."""
    dist_app = typer.Typer(help="Regional edge agents and site trust (DESIGN §8).")
    app.add_typer(dist_app, name="distributed")

    @dist_app.command("gap")
    def gap(
        case: Annotated[str, typer.Option(help=field_help(GapConfig, "case"))] = _GAP.case,
        policy: Annotated[str, typer.Option(help=field_help(GapConfig, "policy"))] = _GAP.policy,
        staleness: Annotated[
            str, typer.Option(help=field_help(GapConfig, "staleness_s", "comma-separated"))
        ] = list_text(_GAP.staleness_s),
        seeds: Annotated[
            str, typer.Option(help=field_help(GapConfig, "seeds", "0-2, 1,3,7 …"))
        ] = seeds_text(_GAP.seeds),
        requests: Annotated[
            int, typer.Option(min=1, max=REQUESTS_MAX, help=field_help(GapConfig, "requests"))
        ] = _GAP.requests,
        load: Annotated[float, typer.Option(help=field_help(GapConfig, "load"))] = _GAP.load,
        out: Annotated[Path, typer.Option(help="output folder")] = Path("out/distributed"),
        overwrite: Annotated[bool, typer.Option(help="replace an existing --out folder")] = False,
    ) -> None:
        """Value and blocking gap of regional agents to the centralised policy vs staleness."""
        from pcnalloc.config import build
        from pcnalloc.distributed.regions import distributed_gap
        from pcnalloc.evaluate.sweep import parse_seeds
        from pcnalloc.fileio import check_output, staged_dir

        raw = {
            "case": case,
            "policy": policy,
            "staleness_s": _floats(staleness, "--staleness"),
            "seeds": parse_seeds(seeds),
            "requests": requests,
            "load": load,
        }
        gc = build(GapConfig, raw, "distributed gap")
        check_output(out, kind="dir", overwrite=overwrite)
        stale, seed_list = list(gc.staleness_s), list(gc.seeds)
        cfg = gc.env_config()
        total = requests * len(seed_list) * (1 + len(stale))
        with progress_bar() as bar:
            task = bar.add_task(f"gap {policy} on {case}", total=total)
            rows = distributed_gap(
                policy,
                cfg,
                staleness_s=stale,
                seeds=seed_list,
                requests=requests,
                progress=lambda n: bar.advance(task, n),
            )
        meta = {"case": case, "policy": policy, "load": load, "seeds": seed_list}
        with staged_dir(out, overwrite=overwrite, check=False) as work:
            write_json(work / "gap.json", {**meta, "requests": requests, "rows": rows})
            plot_gap(rows, work / "gap.png")
        console.print(
            _gap_table(rows, f"{policy} on {case}, load {load}, seeds {seeds}, {requests} requests")
        )
        console.print(f"wrote {out / 'gap.json'} and {out / 'gap.png'}")

    @dist_app.command("trust")
    def trust(
        scenario: Annotated[
            str, typer.Option(help=field_help(TrustRun, "scenario"))
        ] = _TRUST.scenario,
        case: Annotated[str, typer.Option(help=field_help(TrustScenario, "case"))] = _SC.case,
        malicious: Annotated[
            int,
            typer.Option(
                min=0,
                max=COUNT_MAX,
                help=field_help(TrustScenario, "malicious_sites", "a count here"),
            ),
        ] = _MALICIOUS,
        drop_share: Annotated[
            float, typer.Option(min=0, max=1, help=field_help(TrustScenario, "drop_share"))
        ] = _SC.drop_share,
        feedback_share: Annotated[
            float,
            typer.Option(min=0, max=1, help=field_help(TrustScenario, "malicious_feedback_share")),
        ] = _SC.malicious_feedback_share,
        rate: Annotated[
            str,
            typer.Option(help=field_help(TrustScenario, "requests_per_slot", _RATE_HOW)),
        ] = rate_name(_SC.requests_per_slot),
        slots: Annotated[
            int, typer.Option(min=1, max=EPISODES_MAX, help=field_help(TrustScenario, "slots"))
        ] = _SC.slots,
        shares: Annotated[
            str, typer.Option(help=field_help(TrustRun, "shares", "comma-separated"))
        ] = list_text(_TRUST.shares),
        seeds: Annotated[
            str, typer.Option(help=field_help(TrustRun, "seeds", "0-1, 1,3,7 …"))
        ] = seeds_text(_TRUST.seeds),
        seed: Annotated[
            int,
            typer.Option(
                min=0,
                max=SEED_MAX,
                help=field_help(TrustScenario, "seed", "the sweep takes --seeds"),
            ),
        ] = _SC.seed,
        out: Annotated[Path, typer.Option(help="output folder")] = Path("out/trust"),
        overwrite: Annotated[bool, typer.Option(help="replace an existing --out folder")] = False,
    ) -> None:
        """Bayesian site reputation under malicious sites and false feedback."""
        from pcnalloc.config import build
        from pcnalloc.distributed.scenarios import (
            feedback_sweep,
            plot_feedback_sweep,
            plot_trust_curves,
            run_trust_scenario,
        )
        from pcnalloc.evaluate.sweep import parse_seeds
        from pcnalloc.fileio import check_output, staged_dir

        if rate in RATES:
            rps = RATES[rate]
        elif rate.isdigit() and int(rate) > 0:
            rps = int(rate)
        else:
            raise ConfigError(f"bad --rate {rate!r}; accepted: low, high or a positive integer")
        raw = {
            "scenario": scenario,
            "base": {
                "case": case,
                "malicious_sites": malicious,
                "drop_share": drop_share,
                "malicious_feedback_share": feedback_share,
                "requests_per_slot": rps,
                "slots": slots,
                "seed": seed,
            },
            "shares": _floats(shares, "--shares", 0.0, 1.0),
            "seeds": parse_seeds(seeds),
        }
        run = build(TrustRun, raw, "distributed trust")
        check_output(out, kind="dir", overwrite=overwrite)
        base = run.base
        report: dict[str, Any] = {}
        with staged_dir(out, overwrite=overwrite, check=False) as work:
            if run.scenario in ("malicious-sites", "all"):
                with progress_bar() as bar:
                    task = bar.add_task(f"malicious sites on {case}", total=slots)
                    res = run_trust_scenario(base, progress=lambda n: bar.advance(task, n))
                report["malicious_sites"] = res
                plot_trust_curves(res, work / "trust_curves.png")
                t = Table(
                    title=f"{malicious} malicious sites dropping {drop_share:.0%}, "
                    f"{feedback_share:.0%} false feedback, {rps} requests/slot"
                )
                t.add_column("metric")
                t.add_column("value", justify="right")
                for name, s in res["isolation_slot"].items():
                    t.add_row(f"isolation slot of {name}", "never" if s is None else str(s))
                t.add_row("false-isolation rate (ever)", f"{res['false_isolation_rate']:.3f}")
                final = res["final_false_isolation_rate"]
                t.add_row("false-isolation rate (final)", f"{final:.3f}")
                t.add_row(
                    "honest reputation mean / min",
                    f"{res['honest_final_mean']:.3f} / {res['honest_final_min']:.3f}",
                )
                v = res["critical_via_malicious"]
                t.add_row(
                    "Zone I/II flows via a malicious site trusted / distrusted",
                    f"{v['before_isolation']} / {v['after_isolation']}",
                )
                console.print(t)
            if run.scenario in ("false-feedback", "all"):
                share_list, seed_list = list(run.shares), list(run.seeds)
                with progress_bar() as bar:
                    task = bar.add_task(
                        "false-feedback sweep", total=len(share_list) * len(RATES) * len(seed_list)
                    )
                    rows = feedback_sweep(
                        base, share_list, seeds=seed_list, progress=lambda n: bar.advance(task, n)
                    )
                report["false_feedback"] = rows
                plot_feedback_sweep(rows, work / "feedback_sweep.png")
                t = Table(
                    title="final honest-site reputation vs false-feedback share (no attackers)"
                )
                cols = ("rate", "requests/slot", "share", "weighted", "mean", "min", "false isol.")
                for h in cols:
                    t.add_column(h, justify="right")
                for r in rows:
                    t.add_row(
                        r["rate"],
                        str(r["requests_per_slot"]),
                        f"{r['share']:.0%}",
                        f"{r['honest_final_weighted']:.3f}",
                        f"{r['honest_final_mean']:.3f}",
                        f"{r['honest_final_min']:.3f}",
                        f"{r['false_isolation_rate']:.3f}",
                    )
                console.print(t)
            write_json(work / "trust.json", report)
        console.print(f"wrote {out}/trust.json and PNG curves")
