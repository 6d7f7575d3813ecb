"""Multi-policy distillation and its train-on-A / test-on-B report (``pcnalloc generalise``).

After the practical policy distillation method for RAN (several scenario-specific teachers
consolidated into one generalist student whose generalisation is then checked):

1. **Teachers**: one per scenario family of the training list (``normal``, ``storm``,
   ``fiber-cut`` …), either given (``family=spec``) or tuned: the classical heuristic with
   the highest mean weighted value on that family and the training case(s), on training
   seeds, among the grid points at the library's K (one row layout for every teacher).
2. **Libraries**: each teacher plays its own family on the training cases — one library per
   family (the specialist's) and one multi-teacher library of all of them (the generalist's;
   rows tagged ``<family>/<teacher>``, same seeds, so the generalist sees exactly the union
   of the specialists' rows).
3. **Students**: one specialist per family and one generalist, same config and seed.
4. **Report**: every cell (test case × test family; training cases and families included,
   plus held-out ones) plays the generalist, every specialist and the best tuned heuristic
   of that cell (tuned on training seeds of that very cell, over the full default grids:
   the strongest classical reference the cell allows) on the same evaluation seeds. Each
   comparison is a per-seed paired difference with a 95 % Student-t CI
   (:func:`pcnalloc.evaluate.stats.paired`) and a verdict ahead / level / behind, for the
   weighted value ratio (higher is better) and priority ≤ 1 blocking (lower is better).

Students are played masked (argmax over valid actions: what the deployed agent executes
after the rule engine's interception), so a comparison measures the decision quality, not
the count of refused proposals.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pcnalloc.config import EnvConfig, env_config
from pcnalloc.distill.config import DistillConfig
from pcnalloc.distill.run import Reporter, _Silent, run_distillation
from pcnalloc.errors import ConfigError
from pcnalloc.evaluate.stats import mean_ci, paired
from pcnalloc.fileio import staged_dir, write_atomic

log = logging.getLogger(__name__)

REPORT_FILE = "generalise.json"
TABLE_FILE = "generalise.md"
GENERALIST = "student-generalist"
HEURISTICS: tuple[str, ...] = ("cspf-pe", "llp", "lcr", "trunk", "ksp-ff")
"""Heuristics tuned per cell for the baseline and per family for the teachers."""
METRICS: dict[str, bool] = {"weighted_value_ratio": True, "blocking_priority_le1": False}
"""Compared metrics → higher is better."""


def specialist_name(family: str) -> str:
    """The policy name of the student distilled for one scenario family."""
    return f"student-{family}"


def parse_teachers(text: str) -> dict[str, str]:
    """``"normal=cspf-pe:4;storm=llp:4"`` → {family: spec} (``;`` between pairs, since a
    spec's ``@k=v,k=v`` arguments hold commas).

    Raises:
        ConfigError: a pair without ``=`` or a repeated family.
    """
    out: dict[str, str] = {}
    for part in (p.strip() for p in text.split(";") if p.strip()):
        fam, eq, spec = part.partition("=")
        if not eq or not fam.strip() or not spec.strip():
            raise ConfigError(
                f"bad --teachers entry {part!r}; accepted: family=spec pairs separated by ';' "
                "(e.g. normal=cspf-pe:4;storm=llp:4)"
            )
        if fam.strip() in out:
            raise ConfigError(f"--teachers names family {fam.strip()!r} twice")
        out[fam.strip()] = spec.strip()
    return out


def cell_config(case: str, family: str, load: float, base: EnvConfig | None = None) -> EnvConfig:
    """Env config of one evaluation cell (case, scenario family, load)."""
    d = (base or env_config()).model_dump()
    d["network"]["case"] = case
    d["traffic"]["scenario"] = family
    d["traffic"]["load"] = float(load)
    return EnvConfig.model_validate(d)


def _k_of(spec: str) -> int | None:
    head = spec.partition("@")[0]
    _, colon, k = head.partition(":")
    return int(k) if colon and k.isdigit() else None


def tune_family_teacher(
    family: str,
    cases: Sequence[str],
    load: float,
    *,
    k: int,
    heuristics: Sequence[str],
    seeds: Sequence[int],
    requests: int,
    base: EnvConfig | None = None,
) -> tuple[str, dict[str, float]]:
    """The best heuristic spec at K = ``k`` on ``family`` (mean value over ``cases`` and the
    training ``seeds``; ties: lower priority ≤ 1 blocking)."""
    from pcnalloc.evaluate.tune import DEFAULT_GRIDS, tune

    grids = {h: {**DEFAULT_GRIDS[h], "k": [k]} for h in heuristics if h in DEFAULT_GRIDS}
    scores: dict[str, list[tuple[float, float]]] = {}
    for case in cases:
        res = tune(list(grids), cell_config(case, family, load, base), seeds, requests, grids)
        for row in res.table:
            if _k_of(row["spec"]) == k:  # the tuner also plays each default (other K)
                scores.setdefault(row["spec"], []).append((row["value"], row["critical_blocking"]))
    if not scores:
        raise ConfigError(f"no heuristic of {list(heuristics)} has a K = {k} grid point")
    best = max(
        scores,
        key=lambda s: (np.mean([v for v, _ in scores[s]]), -np.mean([c for _, c in scores[s]])),
    )
    return best, {
        "value": float(np.mean([v for v, _ in scores[best]])),
        "critical_blocking": float(np.mean([c for _, c in scores[best]])),
    }


def _per_seed(results: Sequence[dict[str, Any]], metric: str) -> dict[int, float]:
    return {int(r["seed"]): float(r["metrics"][metric]) for r in results}


def compare(
    a: Sequence[dict[str, Any]], b: Sequence[dict[str, Any]], metrics: dict[str, bool] = METRICS
) -> dict[str, Any]:
    """Paired a − b per metric over the seeds both played: mean, CI half-width, verdict, and
    the relative difference of the means (None where the base mean is 0)."""
    out: dict[str, Any] = {}
    for m, hib in metrics.items():
        pa, pb = _per_seed(a, m), _per_seed(b, m)
        p = paired(pa, pb, hib)
        mb = float(np.mean(list(pb.values()))) if pb else None
        p["a_mean"] = mean_ci(list(pa.values()))["mean"] if pa else None
        p["b_mean"] = mb
        p["relative"] = p["mean_diff"] / mb if mb else None  # None: no base to divide by
        out[m] = p
    return out


def tb_run(out_dir: str | Path) -> str:
    """The TensorBoard run folder (under ``cfg.tensorboard``) of a generalise into
    ``out_dir``: one sub-run per student; named after ``out_dir``, not its staged temp."""
    return f"student/{Path(out_dir).name}"


def run_generalise(
    out_dir: str | Path,
    *,
    families: Sequence[str] = ("normal", "storm", "fiber-cut"),
    teachers: dict[str, str] | None = None,
    train_cases: Sequence[str] = ("case30",),
    test_cases: Sequence[str] = ("case57",),
    test_families: Sequence[str] | None = None,
    load: float = 1.0,
    k: int = 4,
    episodes: int = 16,
    requests: int = 300,
    explore: float = 0.05,
    cfg: DistillConfig | None = None,
    student: str = "edge",
    arch: str | None = None,
    eval_seeds: Sequence[int] = tuple(range(300, 308)),
    eval_requests: int = 500,
    heuristics: Sequence[str] = HEURISTICS,
    tune_seeds: Sequence[int] = (5000, 5001),
    tune_requests: int = 300,
    reporter: Reporter | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Distil one student per family and a generalist; compare them on every test cell.

    Everything is written into a staged temp folder beside ``out_dir`` that becomes
    ``out_dir`` only when the report is complete (:func:`pcnalloc.fileio.staged_dir`: a
    failed run leaves no partial output and keeps an existing one).

    Args:
        out_dir: output folder: ``libraries/``, ``students/<name>/``, ``generalise.json`` and
            ``generalise.md`` (the table).
        families: training scenario families (one teacher and one specialist each).
        teachers: family → classical teacher spec at K = ``k`` (missing families are tuned).
        train_cases: grids the libraries are rolled out on.
        test_cases: held-out grids (the report also covers the training grids).
        test_families: families of the report (default: ``families`` + ``mixed``).
        load: offered load ρ of libraries and cells.
        k: candidate paths K of the teachers' (and students') action layout.
        episodes, requests, explore: library episodes per (family, case), decisions per
            episode, share of random valid actions.
        cfg: distillation config (default: 20 epochs, otherwise :class:`DistillConfig`).
        student, arch: student kind and architecture (see ``pcnalloc distill``).
        eval_seeds: evaluation env seeds (< 1000; identical for every policy and cell).
        eval_requests: decisions per evaluation episode.
        heuristics: heuristics tuned for the teachers and for each cell's baseline.
        tune_seeds: training seeds (≥ 1000) of all tuning.
        tune_requests: decisions per tuning episode.
        reporter: progress sink.
        overwrite: replace an existing ``out_dir`` (otherwise refused).

    Raises:
        OutputPathError: an existing ``out_dir`` without ``overwrite`` (or a bad path).
        ConfigError: an unknown family, a
            teacher for a family not trained on, a teacher at another K, evaluation seeds
            that are training seeds, or empty lists.
    """
    from pcnalloc.baselines.registry import make_policy
    from pcnalloc.config import load_scenario
    from pcnalloc.distill.fidelity import play
    from pcnalloc.distill.policy import StudentPolicy
    from pcnalloc.evaluate.tune import TRAINING_SEED_MIN, tune
    from pcnalloc.library.build import build_library

    rep = reporter or _Silent()
    families = list(dict.fromkeys(families))
    test_families = list(
        dict.fromkeys(test_families if test_families is not None else [*families, "mixed"])
    )
    train_cases, test_cases = list(train_cases), list(test_cases)
    if len(families) < 2 or not train_cases or not test_families:
        raise ConfigError(
            "generalise needs ≥ 2 training families, ≥ 1 training case and ≥ 1 test family; "
            f"got families={families}, train cases={train_cases}, test families={test_families}"
        )
    for f in dict.fromkeys([*families, *test_families]):
        load_scenario(f)  # unknown families fail here, before any work
    teachers = dict(teachers or {})
    extra = sorted(set(teachers) - set(families))
    if extra:
        raise ConfigError(f"teachers given for families not trained on: {extra}")
    for f, spec in teachers.items():
        if _k_of(spec) != k:
            raise ConfigError(
                f"teacher {spec!r} of family {f!r} must act at K = {k} (write it as name:{k}) "
                "so that every teacher shares one row layout"
            )
    seeds = [int(s) for s in eval_seeds]
    if not seeds or any(s >= TRAINING_SEED_MIN for s in seeds):
        raise ConfigError(
            f"evaluation seeds {seeds} must be non-empty and < {TRAINING_SEED_MIN} "
            "(higher seeds train and tune)"
        )
    from pcnalloc.evaluate.tune import DEFAULT_GRIDS

    unknown = sorted(set(heuristics) - set(DEFAULT_GRIDS))
    if not heuristics or unknown:
        raise ConfigError(
            f"unknown heuristics {unknown or list(heuristics)}; accepted: "
            + ", ".join(sorted(DEFAULT_GRIDS))
        )
    if not tune_seeds or any(s < TRAINING_SEED_MIN for s in tune_seeds):
        raise ConfigError(f"tuning seeds {list(tune_seeds)} must be ≥ {TRAINING_SEED_MIN}")
    cfg = cfg or DistillConfig(epochs=20)
    with staged_dir(out_dir, overwrite=overwrite) as out:
        t0 = time.perf_counter()
        load0 = _loadavg()

        # 1. teachers
        tuned: dict[str, Any] = {}
        for f in families:
            if f not in teachers:
                rep.stage(f"tune {f} teacher (K={k})", 1)
                teachers[f], tuned[f] = tune_family_teacher(
                    f,
                    train_cases,
                    load,
                    k=k,
                    heuristics=heuristics,
                    seeds=tune_seeds,
                    requests=tune_requests,
                )
                rep.advance(1)
        log.info("teachers: %s", teachers)

        # 2. libraries (specialists' and the generalist's, same seeds)
        libs = out / "libraries"
        common = dict(
            cases=train_cases, loads=[load], episodes=episodes, requests=requests, explore=explore
        )
        rep.stage("libraries", len(families) + 1)
        lib_rows: dict[str, int] = {}
        for f in families:
            r = build_library(teachers[f], libs / f, scenario=f, **common)  # type: ignore[arg-type]
            lib_rows[f] = r.rows
            rep.advance(1)
        r = build_library(
            [teachers[f] for f in families],
            libs / "generalist",
            scenario=families,
            **common,  # type: ignore[arg-type]
        )
        lib_rows["generalist"] = r.rows
        rep.advance(1)

        # 3. students
        students_dir = out / "students"
        fidelity: dict[str, Any] = {}
        names = {f: specialist_name(f) for f in families}
        for name, lib in [
            *((names[f], libs / f) for f in families),
            (GENERALIST, libs / "generalist"),
        ]:
            rep_f = run_distillation(
                lib,
                kind=student,
                cfg=cfg,
                out_dir=students_dir / name,
                arch=arch,
                reporter=rep,
                tb_run=f"{tb_run(out_dir)}/{name}",
            )
            fidelity[name] = {
                "library_rows": rep_f["library_rows"],
                "train_rows": rep_f["train_rows"],
                "best_epoch": rep_f["best_epoch"],
                "test_top1_agreement": rep_f["held_out"]["top1_agreement"],
                "test_hard_proposal_rate": rep_f["held_out"]["hard_proposal_rate"],
            }
        policies = {
            name: StudentPolicy.load(students_dir / name, masked=True, name=name)
            for name in [*names.values(), GENERALIST]
        }

        # 4. cells
        cells = [(c, f) for c in dict.fromkeys([*train_cases, *test_cases]) for f in test_families]
        rows: list[dict[str, Any]] = []
        cell_runs: dict[str, Any] = {}
        for case, fam in cells:
            ccfg = cell_config(case, fam, load)
            rep.stage(f"{case}/{fam}: tune baseline", 1)
            tres = tune(list(heuristics), ccfg, tune_seeds, tune_requests)
            best_h = max(
                tres.best_specs,
                key=lambda h: (
                    tres.best_scores[h]["value"],
                    -tres.best_scores[h]["critical_blocking"],
                ),
            )
            base_spec = tres.best_specs[best_h]
            rep.advance(1)
            rep.stage(f"{case}/{fam}: play", (len(policies) + 1) * len(seeds) * eval_requests)
            runs = {
                name: play(pol, [ccfg], seeds, eval_requests, progress=rep.advance)
                for name, pol in policies.items()
            }
            runs[base_spec] = play(
                make_policy(base_spec), [ccfg], seeds, eval_requests, rep.advance
            )
            cell_runs[f"{case}/{fam}"] = {
                n: {
                    "value": [r["metrics"]["weighted_value_ratio"] for r in rs],
                    "blocking_priority_le1": [r["metrics"]["blocking_priority_le1"] for r in rs],
                }
                for n, rs in runs.items()
            }
            tags = {
                "case": case,
                "family": fam,
                "grid": "trained" if case in train_cases else "held-out",
                "family_kind": "trained" if fam in families else "held-out",
                "baseline": base_spec,
            }
            pairs = [(GENERALIST, base_spec)]
            pairs += [(GENERALIST, names[f]) for f in families]
            pairs += [(names[f], base_spec) for f in families]
            for a, b in pairs:
                rows.append(
                    {**tags, "policy": a, "vs": b, "own_family": b == names.get(fam)}
                    | compare(runs[a], runs[b])
                )
        report = {
            "families": families,
            "test_families": test_families,
            "train_cases": train_cases,
            "test_cases": test_cases,
            "load": load,
            "k": k,
            "teachers": teachers,
            "tuned_teachers": tuned,
            "library": {**common, "rows": lib_rows},
            "distill": cfg.model_dump(),
            "student": student,
            "arch": arch,
            "fidelity": fidelity,
            "eval_seeds": seeds,
            "eval_requests": eval_requests,
            "tune_seeds": list(tune_seeds),
            "tune_requests": tune_requests,
            "heuristics": list(heuristics),
            "rows": rows,
            "per_seed": cell_runs,
            "summary": summarise(rows, families),
            "wall_s": round(time.perf_counter() - t0, 1),
            "loadavg_before": load0,
            "loadavg_after": _loadavg(),
        }
        write_atomic(out / REPORT_FILE, json.dumps(report, indent=2) + "\n")
        write_atomic(out / TABLE_FILE, generalise_markdown(report))
    return report


def summarise(rows: Sequence[dict[str, Any]], families: Sequence[str]) -> dict[str, Any]:
    """The issue's two targets, read off the rows.

    ``within_1pct_of_own_specialist``: on the training grids, for each family, the
    generalist's mean value is within 1 % (relative) of that family's specialist.
    ``ahead_of_every_specialist_on_held_out_grids``: on every held-out-grid cell the
    generalist's value verdict against every specialist is ``ahead``.
    """
    own = {
        (r["case"], r["family"]): r["weighted_value_ratio"]["relative"]
        for r in rows
        if r["policy"] == GENERALIST and r["own_family"] and r["grid"] == "trained"
    }
    held = [
        r["weighted_value_ratio"]["verdict"]
        for r in rows
        if r["policy"] == GENERALIST and r["grid"] == "held-out" and r["vs"].startswith("student-")
    ]
    return {
        "own_family_relative_value": {f"{c}/{f}": v for (c, f), v in own.items()},
        "within_1pct_of_own_specialist": bool(own)
        and all(v is not None and v >= -0.01 for v in own.values()),
        "held_out_grid_verdicts_vs_specialists": {
            v: held.count(v) for v in ("ahead", "level", "behind")
        },
        "ahead_of_every_specialist_on_held_out_grids": bool(held)
        and all(v == "ahead" for v in held),
    }


def _pm(p: dict[str, Any], digits: int = 4) -> str:
    if p.get("half_width") is None:
        return f"{p['mean_diff']:+.{digits}f} (n<2)"
    return f"{p['mean_diff']:+.{digits}f} ± {p['half_width']:.{digits}f}"


def generalise_markdown(report: dict[str, Any]) -> str:
    """The report's rows as one Markdown table (Δ = policy − vs, per-seed paired, 95 % CI)."""
    head = (
        "| case (grid) | family | policy | vs | value policy · vs | Δ value (95 % CI) | "
        "verdict | Δ crit. blocking (95 % CI) | verdict |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in report["rows"]:
        v, c = r["weighted_value_ratio"], r["blocking_priority_le1"]
        fam = r["family"] + (" (held-out)" if r["family_kind"] == "held-out" else "")
        vs = r["vs"] + (" (own)" if r["own_family"] else "")
        lines.append(
            f"| {r['case']} ({r['grid']}) | {fam} | {r['policy']} | {vs} | "
            f"{v['a_mean']:.4f} · {v['b_mean']:.4f} | {_pm(v)} | **{v['verdict']}** | "
            f"{_pm(c)} | **{c['verdict']}** |"
        )
    n = len(report["eval_seeds"])
    teachers = ", ".join(f"{f}: `{s}`" for f, s in report["teachers"].items())
    return (
        f"Teachers: {teachers}. {n} seeds × {report['eval_requests']} decisions per cell, "
        f"ρ = {report['load']:g}.\n\n" + head + "\n".join(lines) + "\n"
    )


def _loadavg() -> list[str]:
    try:
        return Path("/proc/loadavg").read_text().split()[:3]
    except OSError:  # pragma: no cover - not Linux
        return []


__all__ = [
    "GENERALIST",
    "HEURISTICS",
    "REPORT_FILE",
    "TABLE_FILE",
    "cell_config",
    "compare",
    "generalise_markdown",
    "parse_teachers",
    "run_generalise",
    "specialist_name",
    "summarise",
    "tune_family_teacher",
]
