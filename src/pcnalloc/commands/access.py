"""`pcnalloc access simulate|evaluate`: the PLC/5G access layer (DESIGN §11)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from pcnalloc.commands._common import console, parse_numbers, progress_bar, write_json
from pcnalloc.commands._sets import SetOption
from pcnalloc.core.limits import EPISODES_MAX, ROWS_MAX, SEED_MAX, SEEDS_MAX
from pcnalloc.twolayer.compile_config import ACCESS_COMPILE_DEFAULTS, AccessCompileConfig

OverwriteOpt = Annotated[
    bool, typer.Option(help="replace existing outputs (once the new ones are whole)")
]


def _compile_help(field: str) -> str:
    """An ``access compile`` option's help: the compile config field's description."""
    return str(AccessCompileConfig.model_fields[field].description)


def _teacher_help(field: str) -> str:
    """An ``access train`` option's help: the access teacher config field's description
    (read from the pydantic schema without importing torch or the access model)."""
    from pcnalloc.twolayer.teacher_config import AccessTeacherConfig

    return str(AccessTeacherConfig.model_fields[field].description)


def _teacher_default(field: str) -> str:
    """An ``access train`` option's default: the access teacher config field's."""
    from pcnalloc.twolayer.teacher_config import AccessTeacherConfig

    return str(AccessTeacherConfig.model_fields[field].default)


def _check_files(overwrite: bool, **outputs: Path | None) -> None:
    """Refuse unusable file outputs (flag name → path) before any work: an existing file
    without ``overwrite``, a folder, a parent that is a file."""
    from pcnalloc.fileio import check_output

    for flag, path in outputs.items():
        if path is not None:
            check_output(path, kind="file", overwrite=overwrite, flag=f"--{flag}")


def _write_json(path: Path | None, obj: Any, overwrite: bool) -> None:
    """Write ``obj`` atomically; checked again first, so that none appeared meanwhile."""
    if path is not None:
        _check_files(overwrite, json=path)
        write_json(path, obj)


def _table(title: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=title)
    for col in (
        "policy",
        "weighted sum",
        "mean delay (s)",
        "traffic cost ($)",
        "5G share",
        "VQ median",
        "max O/T",
        "switches",
        "slot p50 (µs)",
    ):
        table.add_column(col, justify="left" if col == "policy" else "right")
    for r in rows:
        m, t = r["metrics"], r["timing"]
        table.add_row(
            r["policy"],
            f"{m['weighted_sum']:.3f}",
            f"{m['mean_delay_s']:.3f}",
            f"{m['traffic_cost']:.5f}",
            f"{m['share_5g']:.2f}",
            f"{m['virtual_queue']['median_final']:.2f}",
            f"{m['virtual_queue']['max_final_over_T']:.3f}",
            str(m["mode_switches"]),
            f"{t['slot_decision_us_p50']:.0f}",
        )
    return table


def register(app: typer.Typer) -> None:
    """Add the ``access`` verbs to the CLI app."""
    access_app = typer.Typer(
        help="PLC/5G dual-mode access of distribution-grid devices.", no_args_is_help=True
    )
    app.add_typer(access_app, name="access")
    register_learned(access_app)
    register_coupling(access_app)

    @access_app.command("simulate")
    def simulate(
        policies: Annotated[
            str, typer.Option(help="comma-separated access policies")
        ] = "matching,raf,raom,all-plc,all-5g,greedy",
        seed: Annotated[int, typer.Option(min=0, max=SEED_MAX, help="episode seed")] = 0,
        devices: Annotated[int | None, typer.Option(min=1, help="override I (≤ J1 + J2)")] = None,
        grid: Annotated[str | None, typer.Option(help="override the grid case")] = None,
        config: Annotated[Path | None, typer.Option(help="YAML overrides of the default")] = None,
        sets: SetOption = None,
        json_out: Annotated[Path | None, typer.Option("--json", help="result JSON path")] = None,
        png: Annotated[Path | None, typer.Option(help="queue backlog CDF PNG path")] = None,
        overwrite: OverwriteOpt = False,
    ) -> None:
        """Play each policy over V epochs of T0 slots; summary table, JSON, backlog CDF."""
        from pcnalloc.access.config import load_access_config
        from pcnalloc.access.registry import make_access_policy
        from pcnalloc.access.simulate import run_access
        from pcnalloc.fileio import staged_file

        _check_files(overwrite, json=json_out, png=png)
        kw: dict[str, Any] = {}
        if devices is not None:
            kw["devices"] = devices
        if grid is not None:
            kw["grid"] = grid
        cfg = load_access_config(config, sets=sets or (), **kw)
        names = [p.strip() for p in policies.split(",") if p.strip()]
        pols = [make_access_policy(n) for n in names]  # fail fast on a bad name
        from pcnalloc.access.model import AccessModel

        AccessModel(cfg, seed)  # fail fast on a bad grid or SINR_min, before the bar
        results = []
        with progress_bar() as bar:
            task = bar.add_task("access simulate", total=len(pols) * cfg.epochs)
            for p in pols:
                results.append(
                    run_access(p, cfg, seed=seed, progress=lambda n: bar.advance(task, n))
                )
        console.print(_table(f"access on {cfg.grid}, I={cfg.devices}, seed {seed}", results))
        if png is not None:
            from pcnalloc.access.figures import backlog_cdf_png

            with staged_file(png, overwrite=overwrite, flag="--png") as tmp:
                backlog_cdf_png(
                    {r["policy"]: r["metrics"]["backlog_kbit_final"] for r in results},
                    tmp,
                    "final data backlog (kbit)",
                )
        _write_json(json_out, {"config": cfg.model_dump(mode="json"), "runs": results}, overwrite)

    @access_app.command("evaluate")
    def evaluate(
        out: Annotated[Path, typer.Option(help="folder for JSON and PNGs")] = Path("out/access"),
        policies: Annotated[
            str, typer.Option(help="comma-separated policies")
        ] = "matching,raf,raom",
        seeds: Annotated[int, typer.Option(min=1, max=SEEDS_MAX, help="seeds 0..N-1 per cell")] = 3,
        devices: Annotated[str, typer.Option(help="I values")] = "10,30,50,70,90,110",
        g5_shares: Annotated[str, typer.Option(help="5G shares (%)")] = "15,30,45,60",
        sinr_min: Annotated[str, typer.Option(help="SINR_min values (dB)")] = "8,10,12.3,14,16",
        alphas: Annotated[str, typer.Option(help="α values")] = "100,300,500,700,900",
        config: Annotated[Path | None, typer.Option(help="YAML overrides of the default")] = None,
        sets: SetOption = None,
        overwrite: Annotated[
            bool, typer.Option(help="replace an existing --out (once the new one is whole)")
        ] = False,
    ) -> None:
        """The paper's figures: weighted sum vs I, cost vs 5G share, sensitivity to SINR_min
        and α, and the virtual-queue CDF; JSON with paired CIs against ``matching``."""
        from pcnalloc.access.config import load_access_config
        from pcnalloc.access.figures import backlog_cdf_png, sweep_png
        from pcnalloc.access.registry import make_access_policy
        from pcnalloc.access.sweeps import paired_ci, sweep
        from pcnalloc.fileio import check_output, staged_dir

        check_output(out, kind="dir", overwrite=overwrite)
        base = load_access_config(config, sets=sets or ())
        names = [p.strip() for p in policies.split(",") if p.strip()]
        for n in names:
            make_access_policy(n)
        grids = {
            "devices": parse_numbers(
                devices, "--devices", lo=1, hi=base.subchannels, lo_inclusive=True
            ),
            "g5_share": parse_numbers(g5_shares, "--g5-shares", lo=0, hi=100),
            "sinr_min_db": parse_numbers(sinr_min, "--sinr-min", lo=-50, hi=60),
            "alpha": parse_numbers(alphas, "--alphas", lo=0, lo_inclusive=True),
        }
        seed_list = list(range(seeds))
        results: dict[str, Any] = {}
        with progress_bar() as bar:
            task = bar.add_task(
                "access evaluate", total=sum(len(v) for v in grids.values()) * len(names)
            )
            for key, vals in grids.items():
                results[key] = sweep(
                    base, key, vals, names, seed_list, lambda n: bar.advance(task, n)
                )
        figs = {
            "weighted_sum_vs_devices.png": ("devices", "weighted_sum", "weighted delay + α·cost"),
            "cost_vs_5g_share.png": ("g5_share", "traffic_cost", "traffic cost ($)"),
            "weighted_sum_vs_sinr_min.png": (
                "sinr_min_db",
                "weighted_sum",
                "weighted delay + α·cost",
            ),
            "delay_vs_alpha.png": ("alpha", "mean_delay_s", "mean transmission delay (s)"),
            "cost_vs_alpha.png": ("alpha", "traffic_cost", "traffic cost ($)"),
        }
        from pcnalloc.access.simulate import run_access

        vq = {
            n: run_access(make_access_policy(n), base, seed=0)["metrics"]["virtual_queue_final"]
            for n in names
        }
        summary = Table(title=f"paired difference to {names[0]} (mean over seeds, 95 % CI)")
        for col in ("sweep", "value", "policy", "Δ weighted sum", "Δ traffic cost"):
            summary.add_column(col)
        pairs = []
        for key, res in results.items():
            for v in res["values"]:
                ref = next(c for c in res["cells"] if c["policy"] == names[0] and c["value"] == v)
                for c in res["cells"]:
                    if c["value"] != v or c["policy"] == names[0]:
                        continue
                    d_ws = paired_ci(c["weighted_sum"], ref["weighted_sum"])
                    d_c = paired_ci(c["traffic_cost"], ref["traffic_cost"])
                    pairs.append(
                        {
                            "sweep": key,
                            "value": v,
                            "policy": c["policy"],
                            "d_weighted_sum": d_ws,
                            "d_cost": d_c,
                        }
                    )
                    summary.add_row(
                        key,
                        f"{v:g}",
                        c["policy"],
                        f"{d_ws['mean']:+.3f} [{d_ws['lo']:+.3f}, {d_ws['hi']:+.3f}]",
                        f"{d_c['mean']:+.5f}",
                    )
        console.print(summary)
        with staged_dir(out, overwrite=overwrite) as work:  # checked again: none appeared
            for fname, (key, metric, ylabel) in figs.items():
                sweep_png(results[key], metric, ylabel, work / fname)
            backlog_cdf_png(vq, work / "virtual_queue_cdf.png", "final virtual queue O_i")
            write_json(
                work / "access_evaluate.json",
                {
                    "config": base.model_dump(mode="json"),
                    "seeds": seed_list,
                    "sweeps": results,
                    "paired_vs_first": pairs,
                    "virtual_queue_final": vq,
                    "figures": sorted([*figs, "virtual_queue_cdf.png"]),
                },
            )
        console.print(f"wrote {out}/access_evaluate.json and {len(figs) + 1} PNGs")


def _fmt_paired(p: dict[str, Any]) -> str:
    hw = p["half_width"]
    ci = f" ± {hw:.3g}" if hw is not None else ""
    return f"{p['mean_diff']:+.4g}{ci} {p['verdict']}"


def register_learned(access_app: typer.Typer) -> None:
    """``access train`` (teacher → library → student), ``access compile`` (signed ONNX) and
    ``access compare`` (paired CIs)."""

    @access_app.command("train")
    def train(
        out: Annotated[Path, typer.Option(help="folder for teacher, library and student")] = Path(
            "out/access_learned"
        ),
        episodes: Annotated[
            int, typer.Option(min=1, max=EPISODES_MAX, help="teacher training episodes")
        ] = 120,
        library_episodes: Annotated[
            int,
            typer.Option(min=3, max=EPISODES_MAX, help="teacher rollouts written to the library"),
        ] = 40,
        seed: Annotated[int, typer.Option(min=0, max=SEED_MAX, help="training seed")] = 0,
        encoder: Annotated[str, typer.Option(help=_teacher_help("encoder"))] = _teacher_default(
            "encoder"
        ),
        config: Annotated[Path | None, typer.Option(help="YAML overrides of the default")] = None,
        sets: SetOption = None,
        overwrite: Annotated[bool, typer.Option(help="replace an existing --out")] = False,
    ) -> None:
        """Learn the epoch-level mode decision: per-device DQN teacher on
        pcnalloc/Access-v0, its trajectory library, and a distilled edge student."""
        from pcnalloc.access.config import load_access_config
        from pcnalloc.access.model import AccessModel
        from pcnalloc.config import build
        from pcnalloc.fileio import check_output
        from pcnalloc.twolayer.teacher import AccessTeacherConfig
        from pcnalloc.twolayer.train import train_pipeline

        tcfg = build(
            AccessTeacherConfig,
            {"episodes": episodes, "seed": seed, "encoder": encoder},
            "access teacher config",
        )
        check_output(out, kind="dir", overwrite=overwrite)
        cfg = load_access_config(config, sets=sets or ())
        AccessModel(cfg, 0)  # fail fast on a bad grid or SINR_min, before the bar
        with progress_bar() as bar:
            task = bar.add_task("access train", total=episodes + library_episodes)
            report = train_pipeline(
                out,
                cfg,
                tcfg,
                library_episodes=library_episodes,
                overwrite=overwrite,
                on_teacher=lambda _row: bar.advance(task, 1),
                on_library=lambda n: bar.advance(task, n),
            )
        s = report["student"]["best"]
        console.print(
            f"teacher: last reward {report['teacher_log'][-1]['mean_reward']:.4f}; library "
            f"{report['library']['rows']} rows; student top-1 agreement "
            f"{s.get('val_top1_agreement', float('nan')):.3f} "
            f"({report['student']['param_bytes']} B); wrote {out}"
        )

    @access_app.command("compile")
    def compile_cmd(
        key: Annotated[Path, typer.Option(help="Ed25519 private key (pcnalloc keys new)")],
        out: Annotated[Path, typer.Option(help="artifact folder to publish")],
        learned: Annotated[
            Path, typer.Option(help="access train folder (its student/ and library/)")
        ] = Path("out/access_learned"),
        student: Annotated[Path | None, typer.Option(help="student.pt (default: LEARNED)")] = None,
        library: Annotated[
            Path | None, typer.Option(help="library for the parity rows (default: LEARNED)")
        ] = None,
        rows: Annotated[
            int, typer.Option(min=1, max=ROWS_MAX, help=_compile_help("rows"))
        ] = ACCESS_COMPILE_DEFAULTS.rows,
        parity_tol: Annotated[
            float, typer.Option(min=0.0, help=_compile_help("parity_tol"))
        ] = ACCESS_COMPILE_DEFAULTS.parity_tol,
        overwrite: Annotated[bool, typer.Option(help="replace an existing --out")] = False,
    ) -> None:
        """Export the access student to ONNX, check parity with torch on the library's rows,
        sign the manifest and publish a folder that edge@OUT::PUBLIC_KEY plays."""
        from pcnalloc.fileio import check_output
        from pcnalloc.twolayer.export import compile_access_student

        check_output(out, kind="dir", overwrite=overwrite)
        m = compile_access_student(
            student or learned,
            library or learned / "library",
            private_key=key,
            out_dir=out,
            rows=rows,
            parity_tol=parity_tol,
            overwrite=overwrite,
        )
        v = m["validation"]
        console.print(
            f"wrote {out}: model {m['models']['fp32']['bytes']} B "
            f"(sha256 {m['models']['fp32']['sha256'][:16]}…), parity max |Δlogit| "
            f"{v['parity_max_abs']:.2e} on {v['rows']} rows, argmax agreement "
            f"{v['argmax_agreement']:.4%}; signed by {m['signature']['key_id']}",
            soft_wrap=True,
        )

    @access_app.command("compare")
    def compare_cmd(
        policies: Annotated[
            str, typer.Option(help="comma-separated specs; learned ones: student@PATH, …")
        ] = "learned@out/access_learned,matching,raf,raom,all-5g",
        seeds: Annotated[
            int, typer.Option(min=2, max=SEEDS_MAX, help="evaluation seeds 0..N-1")
        ] = 8,
        config: Annotated[Path | None, typer.Option(help="YAML overrides of the default")] = None,
        sets: SetOption = None,
        json_out: Annotated[Path | None, typer.Option("--json", help="result JSON path")] = None,
        overwrite: OverwriteOpt = False,
    ) -> None:
        """Learned policies against the others on the same seeds: per-seed paired
        differences (learned − other) with 95 % CIs and verdicts."""
        from pcnalloc.access.config import load_access_config
        from pcnalloc.access.registry import make_access_policy
        from pcnalloc.twolayer.compare import compare

        _check_files(overwrite, json=json_out)
        cfg = load_access_config(config, sets=sets or ())
        specs = [p.strip() for p in policies.split(",") if p.strip()]
        for sp in specs:
            make_access_policy(sp)  # fail fast on a bad name or checkpoint
        with progress_bar() as bar:
            task = bar.add_task("access compare", total=len(specs) * seeds)
            res = compare(specs, cfg, list(range(seeds)), lambda n: bar.advance(task, n))
        table = Table(title=f"access policies, seeds 0..{seeds - 1} (mean ± 95 % half-width)")
        for col in ("policy", "weighted sum", "traffic cost ($)", "stable VQ", "mode µs p50"):
            table.add_column(col, justify="left" if col == "policy" else "right")
        for sp, r in res["policies"].items():
            m = r["mean"]["weighted_sum"]
            hw = f" ± {m['half_width']:.2f}" if m["half_width"] is not None else ""
            table.add_row(
                sp,
                f"{m['mean']:.2f}{hw}",
                f"{r['mean']['traffic_cost']['mean']:.5f}",
                f"{r['stable_share']:.2f}",
                "" if r["mode_us_p50"] is None else f"{r['mode_us_p50']:.0f}",
            )
        console.print(table)
        pt = Table(title="paired differences learned − other (lower is better)")
        for col in ("learned", "against", "Δ weighted sum", "Δ traffic cost", "Δ mean delay"):
            pt.add_column(col)
        for row in res["paired"]:
            pt.add_row(
                row["learned"],
                row["against"],
                _fmt_paired(row["weighted_sum"]),
                _fmt_paired(row["traffic_cost"]),
                _fmt_paired(row["mean_delay_s"]),
            )
        console.print(pt)
        _write_json(json_out, {"config": cfg.model_dump(mode="json"), **res}, overwrite)


def register_coupling(access_app: typer.Typer) -> None:
    """``access couple``: both layers for one seed."""

    @access_app.command("couple")
    def couple(
        policy: Annotated[str, typer.Option(help="access policy (or learned@FOLDER …)")] = (
            "matching"
        ),
        backbone_policy: Annotated[str, typer.Option(help="backbone policy spec")] = "ksp-ff",
        case: Annotated[str, typer.Option(help="backbone grid case")] = "case30",
        load: Annotated[float, typer.Option(min=0.01, help="backbone's own offered load ρ")] = 1.0,
        seed: Annotated[int, typer.Option(min=0, max=SEED_MAX, help="seed of both layers")] = 0,
        config: Annotated[Path | None, typer.Option(help="access YAML overrides")] = None,
        sets: SetOption = None,
        json_out: Annotated[Path | None, typer.Option("--json", help="result JSON path")] = None,
        overwrite: OverwriteOpt = False,
    ) -> None:
        """Access episode → delivered traffic per substation → backbone requests of the
        metering/AMI/DA classes at the substations' sites, played on the backbone."""
        from pcnalloc.access.config import load_access_config
        from pcnalloc.access.model import AccessModel
        from pcnalloc.access.registry import make_access_policy
        from pcnalloc.baselines import make_policy
        from pcnalloc.config import EnvConfig, build
        from pcnalloc.twolayer.coupling import run_coupled

        _check_files(overwrite, json=json_out)
        cfg = load_access_config(config, sets=sets or ())
        pol = make_access_policy(policy)
        bpol = make_policy(backbone_policy)
        AccessModel(cfg, seed)  # fail fast on a bad grid or SINR_min
        bcfg = build(
            EnvConfig, {"network": {"case": case}, "traffic": {"load": load}}, "environment config"
        )
        with console.status("access episode, then backbone episode"):
            res = run_coupled(pol, cfg, bpol, bcfg, seed=seed)
        d, b = res["delivered"], res["backbone"]
        t = Table(title=f"access {cfg.grid} → backbone {b['case']}, seed {seed}")
        for col in ("substation", "site", *d["classes"]):
            t.add_column(col, justify="right")
        for k, (sub, site) in enumerate(res["sites"].items()):
            t.add_row(
                str(sub), str(site), *(f"{x:.1f} Mbit" for x in d["mbit_per_substation_class"][k])
            )
        console.print(t)
        console.print(
            f"access weighted sum {res['access']['metrics']['weighted_sum']:.2f}; delivered "
            f"{d['mbit_total']:.1f} Mbit ({d['mbit_5g']:.1f} over 5G) = offered to the "
            f"backbone {b['access_offered_mbit']:.1f} Mbit in {res['requests']} requests; "
            f"{b['policy']} carried {b['access_carried_mbit']:.1f} Mbit "
            f"({100 * b['access_carried_share']:.1f} %)"
        )
        _write_json(json_out, res, overwrite)
