"""The stage bodies of ``pcnalloc run``; each takes its folder and returns its outputs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pcnalloc.core.policy import bind
from pcnalloc.fileio import write_atomic, write_json
from pcnalloc.pipeline.config import RunConfig

if TYPE_CHECKING:
    from pcnalloc.teacher.config import TeacherConfig


def network_stage(cfg: RunConfig, d: Path, bar: Any) -> dict[str, Any]:
    """Build the run's network; write its summary and map; return their paths and sizes."""
    from pcnalloc.network import cached_network
    from pcnalloc.network.plot import plot_network

    bar.start("network", None)
    net = cached_network(cfg.env.network.case, cfg.env.network)
    write_json(d / "network.json", net.summary())
    plot_network(net, d / "network_map.png")
    return {
        "summary": str(d / "network.json"),
        "map": str(d / "network_map.png"),
        "sites": net.n_sites,
        "links": net.n_links,
    }


def teacher_stage(tcfg: TeacherConfig, d: Path, bar: Any) -> dict[str, Any]:
    """Train the teacher in ``d``; return its folder, checkpoint and last evaluation."""
    from pcnalloc.teacher.train import train_teacher

    bar.start("teacher (Double DQN)", tcfg.steps)
    last = [0]

    def on_progress(step: int, row: dict[str, Any]) -> None:
        bar.advance(step - last[0])
        last[0] = step

    res = train_teacher(tcfg, d, on_progress=on_progress)
    return {
        "folder": str(d),
        "checkpoint": str(res.checkpoint),
        "steps": res.step,
        "last_eval": res.last_eval,
    }


def library_stage(cfg: RunConfig, teacher: dict, d: Path, bar: Any, ex: Any) -> dict[str, Any]:
    """Write the teacher's trajectory library in ``d``; return its folder and row count."""
    from pcnalloc.library.build import build_library

    lc = cfg.library
    bar.start("trajectory library", len(lc.cases) * len(lc.loads) * lc.episodes * lc.requests)
    res = build_library(
        teacher["checkpoint"],
        d,
        cases=lc.cases,
        loads=lc.loads,
        episodes=lc.episodes,
        requests=lc.requests,
        explore=lc.explore,
        executor=ex,
        progress=bar.advance,
    )
    return {"folder": str(d), "rows": res.rows, "rows_per_s": round(res.rows_per_s, 1)}


class _Reporter:
    """Adapts the distillation reporter protocol to the pipeline's progress sink."""

    def __init__(self, bar: Any) -> None:
        self.bar = bar

    def stage(self, label: str, total: int | None) -> None:
        self.bar.start(f"distill: {label}", total)

    def advance(self, n: int = 1, note: str | None = None) -> None:
        self.bar.advance(n)


def distill_stage(cfg: RunConfig, teacher: dict, library: dict, d: Path, bar: Any) -> dict:
    """Distill the student from the library in ``d``; return it and its held-out scores."""
    from pcnalloc.baselines.registry import make_policy
    from pcnalloc.distill.run import run_distillation

    dc = cfg.distill.distill_config(cfg.seed)
    report = run_distillation(
        library["folder"],
        kind=cfg.distill.student,
        cfg=dc,
        out_dir=d,
        teacher=make_policy(f"teacher@{teacher['checkpoint']}"),
        eval_seeds=cfg.distill.eval_seeds,
        requests=cfg.distill.eval_requests,
        ablation=cfg.distill.ablation,
        reporter=_Reporter(bar),
    )
    ho = report.get("held_out", {})
    return {
        "folder": str(d),
        "student": str(d / "student.pt"),
        "held_out": {k: v for k, v in ho.items() if isinstance(v, int | float)},
    }


def key_dir(cfg: RunConfig) -> Path:
    """Folder of the run's signing key: ``cfg.key_dir``, else ``$PCNALLOC_KEY_DIR``, else the
    user config folder (``~/.config/pcnalloc/keys`` on Linux)."""
    import os

    if cfg.key_dir:
        return Path(cfg.key_dir).expanduser()
    if os.environ.get("PCNALLOC_KEY_DIR"):
        return Path(os.environ["PCNALLOC_KEY_DIR"]).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("pcnalloc")) / "keys"


def compile_stage(cfg: RunConfig, library: dict, distill: dict, d: Path, bar: Any) -> dict:
    """Export the student to a signed int8/float ONNX artifact in ``d``; return its files."""
    from pcnalloc.edge.keys import ensure_keypair
    from pcnalloc.export.compile import (
        compile_with_fallback,
        gate_options,
        library_rows,
        load_student_module,
    )

    bar.start("compile + sign", None)
    # The signing key lives outside the output tree and is created once: a rerun (even
    # --force) keeps it, so public keys already shipped keep accepting new artifacts. The
    # public half is copied beside the artifact for convenience; verifiers pin their own copy.
    priv, key_pub = ensure_keypair(key_dir(cfg))
    (d / "keys").mkdir(parents=True, exist_ok=True)
    pub = d / "keys" / "pcnalloc.pub"
    write_atomic(pub, key_pub.read_bytes())
    module = load_student_module(distill["student"])
    rows, env = library_rows(
        library["folder"], getattr(module, "input_key", "compact"), max_rows=cfg.compile.rows
    )
    from pcnalloc.network.builder import cached_network

    net = cached_network(env.network.case, env.network)  # shipped: the edge needs no pandapower

    # The int8 gates (decision-relevant agreement on the library rows, judged with the
    # teacher's values and masks of the same rows, then closed-loop value on seeded episodes)
    # may refuse: then the fp32 model is shipped and the report says why.
    res, int8_note = compile_with_fallback(
        module,
        rows,
        int8=cfg.compile.int8,
        env_config=env,
        private_key=priv,
        out_dir=d / "artifact",
        source={"student": distill["student"], "library": library["folder"]},
        network=net,
        library=library["folder"],
        **gate_options(cfg.compile),
    )
    closed = getattr(res, "closed_loop", None)
    return {
        "artifact": str(res.path),
        "public_key": str(pub),
        "private_key": str(priv),
        "parity_max_abs": res.parity_max_abs,
        "int8_agreement": res.int8_agreement,
        "int8_decision_agreement": getattr(res, "int8_decision_agreement", None),
        "int8_closed_loop_ratio": closed.ratio if closed is not None else None,
        "model_bytes": res.model_bytes,
        "int8_rejected": int8_note,
    }


def policy_specs(cfg: RunConfig, teacher: dict, distill: dict, compiled: dict) -> list[str]:
    """The configured policies with this run's artifacts attached (``teacher@CKPT`` …)."""
    arg = {
        "teacher": teacher["checkpoint"],
        "student": distill["student"],
        "edge": f"{compiled['artifact']}::{compiled['public_key']}",
    }
    out = []
    for spec in cfg.evaluate.policies:
        rules = spec.endswith("+rules")
        base = spec.removesuffix("+rules")
        if base in arg:
            base = f"{base}@{arg[base]}"
        out.append(base + ("+rules" if rules else ""))
    return out


def evaluate_stage(
    cfg: RunConfig, teacher: dict, distill: dict, compiled: dict, d: Path, bar: Any, ex: Any
) -> dict[str, Any]:
    """Sweep every policy over the evaluation grid in ``d``; return the files written."""
    from pcnalloc.evaluate.report import PLOTS, markdown_report, plot_vs_load
    from pcnalloc.evaluate.sweep import bound_sweep, sweep

    ev = cfg.evaluate
    specs = policy_specs(cfg, teacher, distill, compiled)
    env_ov = cfg.env.model_dump()
    families = family_stage(cfg, teacher, distill, compiled, d, bar, ex)
    bar.start("evaluate", len(specs) * len(ev.cases) * len(ev.loads) * len(ev.seeds))
    result = sweep(
        specs,
        ev.cases,
        ev.loads,
        ev.seeds,
        ev.requests,
        ex,
        env_overrides=env_ov,
        progress=bar.advance,
    )
    write_json(d / "sweep.json", result)
    bound = None
    if ev.bound_requests > 0 and ev.bound_cases:
        heur = [s for s in specs if "@" not in s]
        bar.start(
            "offline MILP bound", len(ev.bound_cases) * len(ev.bound_loads) * len(ev.bound_seeds)
        )
        bound = bound_sweep(
            heur + [s for s in specs if "@" in s],
            ev.bound_cases,
            ev.bound_loads,
            ev.bound_seeds,
            ev.bound_requests,
            ex,
            env_overrides=env_ov,
            time_limit_s=ev.bound_time_limit_s,
            progress=bar.advance,
        )
        write_json(d / "bound.json", bound)
    plots = []
    for name, (metric, label) in PLOTS.items():
        write_atomic(d / name, plot_vs_load(result, metric, label))
        plots.append(name)
    write_atomic(d / "evaluation.md", markdown_report(result, bound, plots))
    return {
        "families": families,
        "sweep": str(d / "sweep.json"),
        "bound": str(d / "bound.json") if bound else None,
        "plots": [str(d / p) for p in plots],
        "report": str(d / "evaluation.md"),
    }


def family_stage(
    cfg: RunConfig, teacher: dict, distill: dict, compiled: dict, d: Path, bar: Any, ex: Any
) -> str | None:
    """Every scenario family with paired statistics: the learned policies against the best
    heuristic of each cell on the same seeds. Writes ``families.json`` (runs, aggregate and
    the paired table) and returns its path (None when no family is configured)."""
    from pcnalloc.evaluate.stats import paired_table
    from pcnalloc.evaluate.sweep import sweep
    from pcnalloc.traffic.catalog import load_catalog

    ev = cfg.evaluate
    if not ev.scenarios:
        return None
    keyed = cfg.model_copy(
        update={"evaluate": ev.model_copy(update={"policies": ev.scenario_policies})}
    )
    learned = policy_specs(keyed, teacher, distill, compiled)
    cat = load_catalog(cfg.env.traffic.catalog, max_levels=cfg.env.grant_levels)
    critical = [n for n, p in zip(cat.names, cat.priority_C, strict=True) if p <= 1]
    from pcnalloc.baselines.registry import display_name
    from pcnalloc.config import EnvConfig, build
    from pcnalloc.evaluate.tune import grid_size, tune

    cells = len(ev.scenario_cases) * len(ev.scenario_loads)
    n_specs = len(learned) + len(ev.tuned_heuristics)
    n_tune = grid_size(ev.tuned_heuristics) * len(ev.tune_seeds) * cells
    n_runs = n_specs * cells * len(ev.scenario_seeds)
    bar.start("tune heuristics + evaluate scenario families", (n_tune + n_runs) * len(ev.scenarios))
    runs: list[dict[str, Any]] = []
    per_family: dict[str, Any] = {}
    baselines: dict[tuple[str, float, str], str] = {}
    tuned: dict[str, Any] = {}
    for fam in ev.scenarios:
        env_ov = cfg.env.model_dump()
        env_ov["traffic"]["scenario"] = fam
        # tuned on training seeds of this family; the best by its TUNING score is the
        # baseline each learned policy is paired with (no selection on evaluation seeds)
        heur_specs: list[str] = []
        for case in ev.scenario_cases:
            for load in ev.scenario_loads:
                ov = {
                    **env_ov,
                    "network": {**env_ov["network"], "case": case},
                    "traffic": {**env_ov["traffic"], "load": load},
                }
                res_t = tune(
                    ev.tuned_heuristics,
                    build(EnvConfig, ov, "tuning env config"),
                    ev.tune_seeds,
                    ev.tune_requests,
                    progress=bar.advance,
                    executor=ex,
                )
                tuned[f"{fam}/{case}/{load:g}"] = res_t.to_json()
                scores = res_t.best_scores
                rank = {
                    n: (scores[n]["value"], -scores[n]["critical_blocking"])
                    for n in res_t.best_specs
                }
                best = max(rank, key=rank.__getitem__)
                baselines[(case, float(load), fam)] = display_name(res_t.best_specs[best])
                heur_specs += [s for s in res_t.best_specs.values() if s not in heur_specs]
        specs = learned + heur_specs
        res = sweep(
            specs,
            ev.scenario_cases,
            ev.scenario_loads,
            ev.scenario_seeds,
            ev.requests,
            ex,
            env_overrides=env_ov,
            progress=bar.advance,
        )
        runs += res["runs"]
        per_family[fam] = {"aggregate": res["aggregate"], "wall_s": res["wall_s"]}
    table = paired_table(runs, critical=critical, baselines=baselines)
    out = {
        "scenarios": list(ev.scenarios),
        "tuned": tuned,
        "baselines": {"/".join(map(str, k)): v for k, v in baselines.items()},
        "policies": learned,
        "seeds": list(ev.scenario_seeds),
        "critical_classes": critical,
        "families": per_family,
        "paired": table,
        "runs": runs,
    }
    write_json(d / "families.json", out)
    return str(d / "families.json")


def report_stage(cfg: RunConfig, out: Path, timings: dict, d: Path, bar: Any) -> dict:
    """Write the run's report (markdown, figures) in ``d``; return its files."""
    from pcnalloc.pipeline.report import write_report

    bar.start("report", None)
    return write_report(cfg, out, timings, d)


def episode_trace(spec: str, cfg: RunConfig, seed: int, load: float) -> dict[str, Any]:
    """Play one episode recording per-decision latency, per-class latency/bound and the
    link utilisation at the end (for the report's pictures)."""
    from pcnalloc.baselines.registry import make_policy
    from pcnalloc.envs import PowerCommEnv
    from pcnalloc.evaluate.runner import env_config_for

    pol = make_policy(spec)
    base = cfg.env.model_copy(update={"traffic": cfg.env.traffic.model_copy(update={"load": load})})
    ecfg = env_config_for(pol, base, cfg.evaluate.requests)
    env = PowerCommEnv(ecfg, observation=pol.observation)
    bind(pol, env)
    pol.reset(seed)
    obs, _ = env.reset(seed=seed)
    act_ns = np.zeros(ecfg.episode_requests, dtype=np.int64)
    ratios: dict[str, list[float]] = {}
    edge = _edge_agent(spec, ecfg, env) if spec.startswith("edge@") else None
    from pcnalloc.edge.agent import LocalState

    for i in range(ecfg.episode_requests):
        t = time.perf_counter_ns()
        if edge is None:
            a = pol.act(obs)
        else:  # the whole audited decision: features + model + rules + guard + audit append
            a = edge[0].decide(LocalState.from_env(env)).action
        act_ns[i] = time.perf_counter_ns() - t
        obs, _, _, _, info = env.step(a)
        if info["outcome"] == "accepted":
            ratios.setdefault(env.catalog.names[info["cls"]], []).append(
                info["latency_ms"] / info["bound_ms"]
            )
    util_E = env.state.utilisation_ES().max(axis=1)
    stages: dict[str, list[float]] = {}
    if edge is not None:
        agent, log, tmp = edge
        log.close()
        stages = {k: v.tolist() for k, v in agent.latency_us().items()}
        tmp.cleanup()
    return {
        "act_us": (act_ns / 1e3).tolist(),
        "whole_decision": edge is not None,
        "stage_us": stages,
        "latency_over_bound": ratios,
        "util_E": util_E.tolist(),
        "policy": pol.name,
    }


def _edge_agent(spec: str, ecfg: Any, env: Any) -> tuple[Any, Any, Any]:
    """An audited :class:`~pcnalloc.edge.agent.EdgeAgent` for an ``edge@ART::PUB[+rules]``
    spec, logging to a throw-away audit log (its own key, fsync per record as deployed)."""
    import tempfile

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from pcnalloc.edge.agent import EdgeAgent
    from pcnalloc.edge.audit import AuditLog
    from pcnalloc.rules.engine import build_engine

    art, _, pub = spec.removeprefix("edge@").removesuffix("+rules").partition("::")
    rules = (
        build_engine(ecfg.rules, env.catalog, trust_threshold=ecfg.trust_threshold)
        if spec.endswith("+rules")
        else None
    )
    tmp = tempfile.TemporaryDirectory(prefix="pcnalloc-trace-")
    log = AuditLog(Path(tmp.name) / "audit.jsonl", private_key=Ed25519PrivateKey.generate())
    agent = EdgeAgent(art, pub or None, ecfg, network=env.net, rules=rules, audit=log)
    return agent, log, tmp


def dump(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` atomically."""
    write_atomic(path, json.dumps(obj))
