"""The run report: headline table, verdict against the targets, stage timings, pictures."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pcnalloc.core.plotting import png_bytes, subplots
from pcnalloc.fileio import write_atomic, write_json
from pcnalloc.pipeline.config import RunConfig

HEURISTICS = ("ksp-ff", "cspf-pe", "llp", "sp-ff", "random")


def _record(out: Path, stage: str) -> dict[str, Any]:
    return json.loads((out / stage / "stage.json").read_text())["outputs"]


def headline(sweep: dict[str, Any], min_load: float = 1.0) -> list[dict[str, Any]]:
    """Per (load ≥ min_load, policy): value ratio, critical blocking, violations, interceptions."""
    rows = []
    for a in sorted(sweep["aggregate"], key=lambda a: (a["case"], a["load"], a["policy"])):
        if a["load"] < min_load:
            continue
        m = a["metrics"]
        rows.append(
            {
                "case": a["case"],
                "load": a["load"],
                "policy": a["policy"],
                "value": m["weighted_value_ratio"]["mean"],
                "value_ci": m["weighted_value_ratio"].get("ci95"),
                "critical_blocking": m["blocking_priority_le1"]["mean"],
                "violations": m["executed_hard_violations"]["mean"] * m["intercepted"]["n"],
                "intercepted": m["intercepted"]["mean"] * m["intercepted"]["n"],
            }
        )
    return rows


def verdict(rows: list[dict[str, Any]], runs: Sequence[dict[str, Any]]) -> list[str]:
    """Per (case, load): student+rules against the teacher and the best heuristic, as per-seed
    paired differences of weighted value with their 95 % CI and verdict (ahead / level /
    behind from the CI only, :func:`pcnalloc.evaluate.stats.paired`).

    The best heuristic is the one with the highest mean on these seeds (the headline's
    heuristics are untuned defaults; the family section compares with heuristics tuned on
    training seeds) — a choice that favours the baseline.
    """
    from pcnalloc.evaluate.stats import paired

    by: dict[tuple[str, float, str], dict[int, float]] = {}
    for r in runs:
        run_key = (str(r["case"]), float(r["load"]), str(r["policy"]))
        by.setdefault(run_key, {})[int(r["seed"])] = float(r["metrics"]["weighted_value_ratio"])

    def pm(p: dict[str, Any]) -> str:
        hw = "n<2" if p["half_width"] is None else f"± {p['half_width']:.4f}"
        return f"{p['mean_diff']:+.4f} {hw}, {p['verdict']}"

    out = []
    for key in sorted({(r["case"], r["load"]) for r in rows}):
        cell = {r["policy"]: r for r in rows if (r["case"], r["load"]) == key}
        sr, t = cell.get("student+rules"), cell.get("teacher")
        heur = [r for p, r in cell.items() if p.partition(":")[0] in HEURISTICS]
        if sr is None or t is None or not heur:
            continue
        best = max(heur, key=lambda r: r["value"])
        seeds = by.get((key[0], float(key[1]), "student+rules"), {})
        vs_t = paired(seeds, by.get((key[0], float(key[1]), "teacher"), {}))
        vs_h = paired(seeds, by.get((key[0], float(key[1]), best["policy"]), {}))
        within = sr["value"] >= 0.97 * t["value"]
        out.append(
            f"{key[0]} at load {key[1]:g} ({vs_h['n']} paired seeds): student+rules "
            f"{sr['value']:.4f}, teacher {t['value']:.4f} (Δ {pm(vs_t)}; "
            f"{'within' if within else 'NOT within'} 3 %), best heuristic {best['policy']} "
            f"{best['value']:.4f} (Δ {pm(vs_h)}), executed violations {sr['violations']:.0f}."
        )
    return out


def _cdf_plot(trace: dict[str, Any]) -> bytes:
    fig, ax = subplots(figsize=(7, 4.5))
    for name, vals in sorted(trace["latency_over_bound"].items()):
        v = np.sort(np.asarray(vals))
        ax.step(v, np.arange(1, v.size + 1) / v.size, where="post", label=f"{name} ({v.size})")
    ax.axvline(1.0, color="k", ls="--", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("path latency / class bound")
    ax.set_ylabel("CDF of admitted flows")
    ax.set_title(f"latency / bound per class — {trace['policy']}")
    ax.legend(fontsize=7)
    return png_bytes(fig)


def _latency_hist(trace: dict[str, Any]) -> bytes:
    us = np.asarray(trace["act_us"])
    fig, ax = subplots(figsize=(7, 4))
    top = float(np.percentile(us, 99.5))
    ax.hist(np.clip(us, 0, top), bins=60)
    p50, p99 = np.percentile(us, [50, 99])
    ax.axvline(p50, color="g", label=f"p50 {p50:.1f} µs")
    ax.axvline(p99, color="r", label=f"p99 {p99:.1f} µs")
    ax.set_xlabel(
        "whole audited decision (µs): features + model + rules + guard + audit append (fsync)"
        if trace.get("whole_decision")
        else "decision latency (µs): policy act() only"
    )
    ax.set_ylabel("decisions")
    ax.set_title(f"edge decision latency — {trace['policy']}")
    ax.legend()
    return png_bytes(fig)


def _ablation_plot(rows: list[dict[str, Any]]) -> bytes:
    names = [r.get("variant", "?") for r in rows]
    agree = [r.get("held_out", {}).get("top1_agreement", np.nan) for r in rows]
    hard = [r.get("held_out", {}).get("hard_proposal_rate", np.nan) for r in rows]
    fig, axes = subplots(1, 2, figsize=(9, 3.8))
    axes[0].bar(names, agree, color="tab:blue")
    axes[0].set_title("top-1 agreement with the teacher")
    axes[0].set_ylim(min(0.9, np.nanmin(agree) - 0.02) if agree else 0, 1.0)
    axes[1].bar(names, hard, color="tab:red")
    axes[1].set_title("raw hard-violation proposal rate")
    for ax in axes:
        ax.tick_params(axis="x", rotation=15)
    return png_bytes(fig)


def write_report(cfg: RunConfig, out: Path, timings: dict[str, Any], d: Path) -> dict:
    """Write ``report.md``/``report.json`` and the pictures into ``d`` (and ``out/report.md``)."""
    from pcnalloc.network import cached_network
    from pcnalloc.network.plot import plot_network
    from pcnalloc.pipeline.steps import episode_trace, policy_specs

    teacher, distill, compiled = (_record(out, s) for s in ("teacher", "distill", "compile"))
    evaluation = _record(out, "evaluate")
    sweep = json.loads(Path(evaluation["sweep"]).read_text())
    rows = headline(sweep)
    pics: list[tuple[str, str]] = []
    for p in evaluation["plots"]:
        shutil.copyfile(p, d / Path(p).name)
        pics.append((Path(p).name, Path(p).stem.replace("_", " ")))
    curves = sorted(Path(teacher["folder"]).glob("*.png"))
    for p in curves:
        shutil.copyfile(p, d / f"teacher_{p.name}")
        pics.insert(0, (f"teacher_{p.name}", "teacher learning curve"))
    for p in sorted(Path(distill["folder"]).glob("*.png")):
        shutil.copyfile(p, d / f"distill_{p.name}")
        pics.append((f"distill_{p.name}", "distillation losses and agreement"))
    abl_file = Path(distill["folder"]) / "ablation.json"
    ablation = json.loads(abl_file.read_text()) if abl_file.is_file() else []
    if ablation:
        write_atomic(d / "ablation.png", _ablation_plot(ablation))
        pics.append(("ablation.png", "distillation ablation"))
    specs = {
        s.partition("@")[0] + ("+rules" if s.endswith("+rules") else ""): s
        for s in policy_specs(cfg, teacher, distill, compiled)
    }
    pick = specs.get("edge+rules") or specs.get("student+rules") or next(iter(specs.values()))
    load = 1.0 if 1.0 in cfg.evaluate.loads else cfg.evaluate.loads[-1]
    trace = episode_trace(pick, cfg, cfg.evaluate.seeds[0], load)
    write_atomic(d / "latency_cdf.png", _cdf_plot(trace))
    write_atomic(d / "decision_latency.png", _latency_hist(trace))
    net = cached_network(cfg.env.network.case, cfg.env.network)
    plot_network(
        net,
        d / "utilisation_map.png",
        link_values=np.asarray(trace["util_E"]),
        value_label="link utilisation (busiest slice)",
        title=f"{net.name}: utilisation after one episode of {trace['policy']} at load {load:g}",
    )
    pics += [
        ("utilisation_map.png", "utilisation map"),
        ("latency_cdf.png", "latency / bound CDF per class"),
        ("decision_latency.png", "edge decision latency"),
    ]
    us = np.asarray(trace["act_us"])
    fam_file = evaluation.get("families")
    families = json.loads(Path(fam_file).read_text()) if fam_file else None
    summary = {
        "paired": families["paired"] if families else [],
        "headline": rows,
        "verdict": verdict(rows, sweep["runs"]),
        "timings": timings,
        "decision_latency_us": {
            "policy": trace["policy"],
            "whole_decision": bool(trace.get("whole_decision")),
            "p50": float(np.percentile(us, 50)),
            "p99": float(np.percentile(us, 99)),
            "stages_p50": {
                k: float(np.percentile(v, 50)) for k, v in trace.get("stage_us", {}).items() if v
            },
        },
        "compile": {
            k: compiled.get(k)
            for k in ("parity_max_abs", "int8_agreement", "model_bytes", "int8_rejected")
        },
        "teacher_steps": teacher.get("steps"),
    }
    write_json(d / "report.json", summary)
    md = _markdown(cfg, summary, rows, pics, evaluation["report"], families)
    write_atomic(d / "report.md", md)
    write_atomic(out / "report.md", md.replace("](", f"]({d.name}/"))
    return {"report": str(d / "report.md"), "verdict": summary["verdict"], "headline": rows}


def _short(policy: str) -> str:
    """A policy's name without its artifact path (``student@/x/ckpt+rules`` → ``student+rules``)."""
    if "@" not in policy:
        return policy
    return policy.partition("@")[0] + ("+rules" if policy.endswith("+rules") else "")


def _family_sections(families: dict[str, Any] | None) -> list[str]:
    """One section per scenario family: the paired table and every policy's mean ± CI."""
    from pcnalloc.evaluate.stats import mean_ci, paired_markdown

    if not families:
        return []
    crit = set(families["critical_classes"])
    lines = [
        "## Learned policies against the best heuristic, per scenario family (paired)",
        "",
        f"Seeds {families['seeds']} (the same for every policy). Every heuristic was tuned "
        "per family on training seeds (`pcnalloc tune`: grid search, defaults included); "
        "Δ = learned − the heuristic with the best *tuning* score of the cell (never picked "
        "on the evaluation seeds). The verdict comes from the 95 % CI of the per-seed "
        "difference only. Critical blocking is the blocking of priority ≤ 1 classes; its "
        "sample size is the number of such decisions per episode (last column).",
        "",
        paired_markdown(families["paired"]),
        "Tuned heuristics (training seeds) per family/case/load:",
        "",
    ]
    for cell, t in families.get("tuned", {}).items():
        specs = ", ".join(
            f"`{s}` ({t['best_scores'][n]['value']:.4f})" for n, s in t["best_specs"].items()
        )
        lines.append(f"- {cell}: {specs}")
    lines.append("")
    for fam in families["scenarios"]:
        runs = [r for r in families["runs"] if (r.get("scenario") or "default") == fam]
        lines += [f"### Scenario family `{fam}`", ""]
        lines += [
            "| case | ρ | policy | value (95 % CI) | critical blocking (95 % CI) | "
            "crit. decisions/ep. | faults/ep. | cuts/ep. | executed violations |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        cells: dict[tuple[str, float, str], list[dict[str, Any]]] = {}
        for r in runs:
            cells.setdefault((r["case"], float(r["load"]), r["policy"]), []).append(r)
        for (case, load, pol), rs in sorted(cells.items()):
            v = mean_ci([r["metrics"]["weighted_value_ratio"] for r in rs])
            c = mean_ci([r["metrics"]["blocking_priority_le1"] for r in rs])
            n_c = mean_ci(
                [
                    sum(x for k, x in r["metrics"]["offered_per_class"].items() if k in crit)
                    for r in rs
                ]
            )
            fl = mean_ci([r["metrics"]["faults"] for r in rs])
            cu = mean_ci([r["metrics"]["fiber_cuts"] for r in rs])
            viol = sum(r["metrics"]["executed_hard_violations"] for r in rs)

            def pm(x: dict[str, Any]) -> str:
                hw = x["half_width"]
                return f"{x['mean']:.4f}" + (f" ± {hw:.4f}" if hw is not None else "")

            lines.append(
                f"| {case} | {load:g} | {_short(pol)} | {pm(v)} | {pm(c)} | "
                f"{n_c['mean']:.0f} | {fl['mean']:.1f} | {cu['mean']:.1f} | {viol} |"
            )
        lines.append("")
    return lines


def _markdown(
    cfg: RunConfig,
    s: dict[str, Any],
    rows: list[dict],
    pics: list,
    ev_md: str,
    families: dict[str, Any] | None = None,
) -> str:
    fam = cfg.env.traffic.scenario
    trained = f"scenario {fam}" if fam else "the base traffic"
    lines = [
        "# pcnalloc run report",
        "",
        f"Case {cfg.env.network.case}, trained on {trained}, teacher {s['teacher_steps']} "
        "steps, student "
        f"{cfg.distill.student}, evaluation seeds {list(cfg.evaluate.seeds)} "
        f"({cfg.evaluate.requests} requests each).",
        "",
        *_family_sections(families),
        "## Headline (offered load ≥ 1.0; value = weighted value ratio, mean ± 95 % CI)",
        "",
        "| case | load | policy | value | critical blocking | executed violations | intercepted |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ci = f" ± {r['value_ci']:.4f}" if r["value_ci"] is not None else ""
        lines.append(
            f"| {r['case']} | {r['load']:g} | {r['policy']} | {r['value']:.4f}{ci} | "
            f"{r['critical_blocking']:.3f} | {r['violations']:.0f} | "
            f"{r['intercepted']:.0f} |"
        )
    lines += ["", "## Against the targets", ""]
    lines += [f"- {v}" for v in s["verdict"]] or ["- (no student+rules/teacher rows to compare)"]
    comp = s["compile"]
    lines += [
        "",
        f"Compiled student: {comp.get('model_bytes')} bytes; ONNX/torch max |Δlogit| "
        f"{comp.get('parity_max_abs')}; int8 agreement {comp.get('int8_agreement')}.",
    ]
    if comp.get("int8_rejected"):
        lines += [f"int8 model not shipped — {comp['int8_rejected']}"]
    lat = s["decision_latency_us"]
    lines += [
        "",
        f"Edge decision latency ({lat['policy']}, one episode"
        + (", whole audited decision via EdgeAgent.decide" if lat.get("whole_decision") else "")
        + f"): p50 {lat['p50']:.1f} µs, p99 {lat['p99']:.1f} µs"
        + (
            " (stage p50: "
            + ", ".join(f"{k} {v:.1f}" for k, v in lat.get("stages_p50", {}).items())
            + ")"
            if lat.get("stages_p50")
            else ""
        )
        + ".",
        "",
        "## Stage timings",
        "",
        "| stage | seconds | reused |",
        "|---|---|---|",
    ]
    for k, v in s["timings"].items():
        sec = v.get("seconds")
        lines.append(
            f"| {k} | {sec if sec is not None else '-'} | {'yes' if v.get('skipped') else 'no'} |"
        )
    lines += ["", "## Pictures", ""]
    lines += [f"### {title}\n\n![{title}]({name})\n" for name, title in pics]
    lines += ["", "## Full evaluation", "", Path(ev_md).read_text()]
    return "\n".join(lines) + "\n"
