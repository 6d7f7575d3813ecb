"""Edge student latency and size, side by side in one run (prints JSON).

Usage::

    python benchmarks/bench_edge.py [--student CKPT] [--cases case30,case1354pegase]
                                    [--calls 5000] [--decisions 2000] [--out FILE]

1. Compiles the student (default: the distill package's default edge MLP, seeded, standardised
   on case30 rows — untrained, so its int8 gate is reported, not enforced) to a signed
   artifact with fp32 and int8 models.
2. **Model inference**, batch 1, one thread: ONNX Runtime fp32 and int8 on bound buffers
   (``BoundModel.run``), and torch fp32 under ``inference_mode`` with ``set_num_threads(1)``,
   on the same recorded case30 rows.
3. **Whole decision** per case: one env is built and reset once (case1354pegase resets take
   seconds to tens of seconds), then ``EdgeAgent.decide`` runs on every live state while the
   env executes its actions. Reported per stage (features, model) and in total
   (features + model + mask check), plus a second agent with the rule engine and an audit log
   (fsync every 1000 records). The same four calls are made, on the same states, by the
   pre-change decision path (``edge_reference.ReferenceEdgeAgent``: ``before``), the order of
   old and new alternating per state, so before and after come from one run; a third
   variant runs the model with the compiled MLP runtime (``runtime="compiled"``).
   ``round_start`` (and ``round_start_compiled_mlp``) is the audited decision as of commit
   ec78127 (``edge_reference.RoundStartEdgeAgent``), its decisions and audit bodies compared
   with ``after``'s the same way.
   ``previous`` (and ``previous_compiled_mlp``) is the audited decision just before the
   fixed-layout audit encoder (``edge_reference.PreviousEdgeAgent`` with a
   ``GenericAuditLog``); its decisions and its audit records' bodies are compared with
   ``after``'s.
4. **Edge process**: a fresh interpreter loads the artifact (network shipped inside it),
   decides on states it builds itself, and reports its peak RSS and whether torch or
   pandapower were imported.

Every figure is a per-call ``perf_counter_ns`` percentile on whatever this machine is doing
at the time; ``load_avg`` is recorded at start and end because other jobs may share the cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from pcnalloc.config import env_config
from pcnalloc.distill import make_student
from pcnalloc.edge import keys
from pcnalloc.edge.agent import BoundModel, EdgeAgent, LocalState
from pcnalloc.edge.artifact import load_artifact
from pcnalloc.edge.audit import AuditLog
from pcnalloc.envs import PowerCommEnv
from pcnalloc.export.compile import QuantizationRejected, compile_student, load_student_module
from pcnalloc.rules.engine import build_engine

sys.path.insert(0, str(Path(__file__).parent))
from edge_reference import (  # benchmarks/ is not a package
    GenericAuditLog,
    PreviousEdgeAgent,
    ReferenceEdgeAgent,
    RoundStartEdgeAgent,
)

TARGETS = {
    "model_fp32_bytes_max": 125_000,
    "inference_p50_us_max": 20,
    "decision_p99_us_max": 100,
    "whole_decision_p50_us_max": 30,
    "whole_decision_p99_us_max": 100,
}


def pct(us: np.ndarray) -> dict[str, float]:
    a = np.asarray(us, dtype=float)
    return {
        "p50_us": round(float(np.percentile(a, 50)), 2),
        "p99_us": round(float(np.percentile(a, 99)), 2),
        "mean_us": round(float(a.mean()), 2),
        "n": int(a.size),
    }


def record_rows(case: str, n: int, seed: int = 0) -> np.ndarray:
    """Compact vectors of ``n`` live case states (first valid action played)."""
    env = PowerCommEnv(env_config(network={"case": case}), observation="compact")
    obs, _ = env.reset(seed=seed)
    rows = []
    for _ in range(n):
        rows.append(obs["compact"])
        obs, *_ = env.step(int(np.flatnonzero(obs["action_mask"])[0]))
    return np.stack(rows)


def time_calls(fn: Any, prepare: Any, n: int, warmup: int = 300) -> np.ndarray:
    """Per-call µs of ``fn()`` after ``prepare(i)`` (untimed) for i in range(n)."""
    for i in range(warmup):
        prepare(i)
        fn()
    out = np.empty(n)
    for i in range(n):
        prepare(i)
        t = time.perf_counter_ns()
        fn()
        out[i] = (time.perf_counter_ns() - t) / 1e3
    return out


def inference(
    art_dir: Path,
    pub: Path,
    module: torch.nn.Module,
    rows: np.ndarray,
    n: int,
    precisions: tuple[str, ...] = ("fp32", "int8"),
) -> dict:
    art = load_artifact(art_dir, pub)
    res: dict[str, Any] = {}
    for precision in precisions:
        m = BoundModel(art, precision)
        x = m.x_1D

        def put(i: int, x: np.ndarray = x) -> None:
            x[0] = rows[i % len(rows)]

        res[f"onnxruntime_{precision}"] = pct(time_calls(m.run, put, n))
    torch.set_num_threads(1)
    xs = [torch.from_numpy(r[None].copy()) for r in rows]
    cur: list[torch.Tensor] = [xs[0]]

    def put_t(i: int) -> None:
        cur[0] = xs[i % len(xs)]

    with torch.inference_mode():
        res["torch_fp32"] = pct(time_calls(lambda: module(cur[0]), put_t, n))
    return res


def decisions(
    case: str, art_dir: Path, pub: Path, priv: Path, n: int, seed: int, tmp: Path
) -> dict[str, Any]:
    cfg = env_config(network={"case": case})
    t0 = time.perf_counter()
    env = PowerCommEnv(cfg, observation="compact")
    env.reset(seed=seed)
    setup_s = time.perf_counter() - t0
    engine = build_engine(None, env.catalog, trust_threshold=cfg.trust_threshold)
    logs = []

    def audit(name: str, kind: type[AuditLog] = AuditLog) -> AuditLog:
        logs.append(kind(tmp / f"audit-{case}-{name}.jsonl", private_key=priv, sync_every=1000))
        return logs[-1]

    agents = {
        "after": (
            EdgeAgent(art_dir, pub, cfg, network=env.net),
            EdgeAgent(art_dir, pub, cfg, network=env.net, rules=engine, audit=audit("after")),
        ),
        "after_compiled_mlp": (
            EdgeAgent(art_dir, pub, cfg, network=env.net, runtime="compiled"),
            EdgeAgent(
                art_dir,
                pub,
                cfg,
                network=env.net,
                rules=engine,
                audit=audit("after_compiled_mlp"),
                runtime="compiled",
            ),
        ),
        "previous": (
            PreviousEdgeAgent(art_dir, pub, cfg, network=env.net),
            PreviousEdgeAgent(
                art_dir,
                pub,
                cfg,
                network=env.net,
                rules=engine,
                audit=audit("previous", GenericAuditLog),
            ),
        ),
        "previous_compiled_mlp": (
            PreviousEdgeAgent(art_dir, pub, cfg, network=env.net, runtime="compiled"),
            PreviousEdgeAgent(
                art_dir,
                pub,
                cfg,
                network=env.net,
                rules=engine,
                audit=audit("previous_compiled_mlp", GenericAuditLog),
                runtime="compiled",
            ),
        ),
        "round_start": (
            RoundStartEdgeAgent(art_dir, pub, cfg, network=env.net),
            RoundStartEdgeAgent(
                art_dir, pub, cfg, network=env.net, rules=engine, audit=audit("round_start")
            ),
        ),
        "round_start_compiled_mlp": (
            RoundStartEdgeAgent(art_dir, pub, cfg, network=env.net, runtime="compiled"),
            RoundStartEdgeAgent(
                art_dir,
                pub,
                cfg,
                network=env.net,
                rules=engine,
                audit=audit("round_start_compiled_mlp"),
                runtime="compiled",
            ),
        ),
        "before": (
            ReferenceEdgeAgent(art_dir, pub, cfg, network=env.net),
            ReferenceEdgeAgent(
                art_dir, pub, cfg, network=env.net, rules=engine, audit=audit("before")
            ),
        ),
    }
    for _ in range(200):  # warm caches (paths, numba, rule plans); not recorded below
        local = LocalState.from_env(env)
        for plain, guarded in agents.values():
            plain.decide(local)
            guarded.decide(local)
        env.step(agents["after"][0].decide(local).action)
    for pair in agents.values():
        for a in pair:
            a.n_decisions = 0
    outcomes: dict[str, int] = {}
    whole = {k: (np.empty(n), np.empty(n)) for k in agents}
    clock = time.perf_counter_ns
    same = same_mlp = same_prev = same_round = 0
    intercepted = dict.fromkeys(agents, 0)
    for i in range(n):
        local = LocalState.from_env(env)
        got = {}
        for k in sorted(agents, reverse=bool(i % 2)):  # alternate which path runs first
            plain, guarded = agents[k]
            t = clock()
            d = plain.decide(local)
            t1 = clock()
            dg = guarded.decide(local)
            t2 = clock()
            whole[k][0][i], whole[k][1][i] = (t1 - t) / 1e3, (t2 - t1) / 1e3
            got[k] = (d, dg)
            intercepted[k] += dg.intercepted
        same += got["after"] == got["before"]
        same_prev += got["after"] == got["previous"] and (
            got["after_compiled_mlp"] == got["previous_compiled_mlp"]
        )
        same_mlp += got["after_compiled_mlp"] == got["after"]
        same_round += got["after"] == got["round_start"] and (
            got["after_compiled_mlp"] == got["round_start_compiled_mlp"]
        )
        _, _, _, _, info = env.step(got["after"][0].action)
        outcomes[info["outcome"]] = outcomes.get(info["outcome"], 0) + 1
    for log in logs:
        log.close()
    bodies = {
        k: [
            json.loads(ln)["body"]
            for ln in (tmp / f"audit-{case}-{k}.jsonl").read_bytes().splitlines()
            if b'"type":"decision"' in ln
        ]
        for k in (
            "previous",
            "after",
            "previous_compiled_mlp",
            "after_compiled_mlp",
            "round_start",
            "round_start_compiled_mlp",
        )
    }
    same_bodies = sum(
        a == b for a, b in zip(bodies["previous"], bodies["after"], strict=True)
    ) + sum(
        a == b
        for a, b in zip(bodies["previous_compiled_mlp"], bodies["after_compiled_mlp"], strict=True)
    )
    same_round_bodies = sum(
        a == b for a, b in zip(bodies["round_start"], bodies["after"], strict=True)
    ) + sum(
        a == b
        for a, b in zip(
            bodies["round_start_compiled_mlp"], bodies["after_compiled_mlp"], strict=True
        )
    )
    out: dict[str, Any] = {
        "sites": env.net.n_sites,
        "links": env.net.n_links,
        "env_build_and_reset_s": round(setup_s, 2),
        "outcomes": outcomes,
        "same_decisions_before_after": f"{same}/{n}",
        "same_decisions_compiled_mlp_vs_onnxruntime": f"{same_mlp}/{n}",
        "same_decisions_previous_after": f"{same_prev}/{n}",
        "same_audit_bodies_previous_after": f"{same_bodies}/{2 * len(bodies['after'])}",
        "same_decisions_round_start_after": f"{same_round}/{n}",
        "same_audit_bodies_round_start_after": (f"{same_round_bodies}/{2 * len(bodies['after'])}"),
    }
    for k, (plain, guarded) in agents.items():
        p, g = plain.latency_us(), guarded.latency_us()
        out[k] = {
            "intercepted_by_rules": f"{intercepted[k]}/{n}",
            "whole_decision": {
                **pct(whole[k][1]),
                "what": "decide(), features + model + rules + guard + audit append "
                "(fsync every 1000 records), timed around the call",
                "load_avg": [round(x, 2) for x in os.getloadavg()],
            },
            "whole_decision_no_rules_no_audit": pct(whole[k][0]),
            "features": pct(p["features"]),
            "model": pct(p["model"]),
            "features_plus_model": pct(p["features"] + p["model"]),
            "decision_total": pct(p["total"]),
            "with_rules_and_audit": {
                "features": pct(g["features"]),
                "model": pct(g["model"]),
                "rules": pct(g["rules"]),
                "audit": pct(g["audit"]),
                "total": pct(g["total"]),
            },
        }
    return out


EDGE_PROCESS = """
import json, sys, time
import numpy as np
from pcnalloc.config import EnvConfig
from pcnalloc.edge.agent import EdgeAgent, LocalState
from pcnalloc.envs.observation import History
from pcnalloc.envs.state import NetworkState
from pcnalloc.traffic.generator import Request
cfg = EnvConfig.model_validate_json(sys.argv[1])
t0 = time.perf_counter()
if sys.argv[4] == "artifact":
    agent = EdgeAgent(sys.argv[2], sys.argv[3], cfg)
else:  # the network rebuilt from its grid case, as before it came with the artifact
    from pcnalloc.network.builder import cached_network
    built = cached_network(cfg.network.case, cfg.network)
    agent = EdgeAgent(sys.argv[2], sys.argv[3], cfg, network=built)
net = agent.network
state = NetworkState(net)
hist = History(cfg.history, agent.catalog)
em = np.zeros(net.n_regions, dtype=np.int64)
rng = np.random.default_rng(0)
ready_s = time.perf_counter() - t0
for i in range(2000):
    src, dst = (int(x) for x in rng.choice(net.n_sites, 2, replace=False))
    req = Request(i, 10.0 * i, int(rng.integers(agent.catalog.n_classes)), src, dst, 60.0)
    d = agent.decide(LocalState(state, req, em, hist))
    hist.push(req, 1.0, d.action != cfg.n_actions - 1)
mods = sorted(m for m in ("torch", "pandapower") if m in sys.modules)
# VmHWM, not ru_maxrss: the latter keeps the forking parent's peak across exec
st = dict(ln.split(":", 1) for ln in open("/proc/self/status").read().splitlines() if ":" in ln)
mb = {k: round(int(st[k].split()[0]) / 1024, 1) for k in ("VmHWM", "VmRSS")}
print(json.dumps({"peak_rss_mb": mb["VmHWM"], "rss_mb": mb["VmRSS"], "imported": mods,
                  "ready_s": round(ready_s, 2), "decisions": 2000}))
"""


def edge_process(cfg: Any, art_dir: Path, pub: Path, network: str) -> dict[str, Any]:
    """Peak RSS of a fresh process that only runs the edge agent; ``network``: ``artifact``
    (shipped in it) or ``build`` (rebuilt from the grid case, network cache off)."""
    env = {**os.environ, **({"PCNALLOC_CACHE_DIR": "off"} if network == "build" else {})}
    res = subprocess.run(
        [
            sys.executable,
            "-c",
            EDGE_PROCESS,
            cfg.model_dump_json(),
            str(art_dir),
            str(pub),
            network,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    if res.returncode != 0:
        return {"error": res.stderr.strip().splitlines()[-1:]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--student", type=Path, default=None, help="student checkpoint (distill)")
    ap.add_argument("--cases", default="case30,case1354pegase")
    ap.add_argument("--calls", type=int, default=5000, help="timed inference calls per model")
    ap.add_argument("--decisions", type=int, default=2000, help="timed decisions per case")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--int8-min-agreement",
        type=float,
        default=None,
        help="int8 gate threshold (default: 0.995 for --student, 0 for the untrained MLP)",
    )
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args()
    load_start = os.getloadavg()
    t_start = time.perf_counter()
    cfg = env_config(network={"case": "case30"})
    rows = record_rows("case30", 1000, args.seed)
    net30 = PowerCommEnv(cfg, observation="compact").net
    D, A = rows.shape[1], cfg.n_actions
    if args.student is not None:
        module, trained, min_agree = load_student_module(args.student), True, 0.995
    else:
        module = make_student(
            "edge", input_dim=D, n_actions=A, generator=torch.Generator().manual_seed(args.seed)
        )
        x = torch.from_numpy(rows)
        module.set_standardisation(x.mean(0), x.std(0))
        trained, min_agree = False, 0.0
    if args.int8_min_agreement is not None:
        min_agree = args.int8_min_agreement
    with tempfile.TemporaryDirectory(prefix="bench-edge-") as td:
        tmp = Path(td)
        priv, pub = keys.save_keypair(tmp / "keys", "bench")
        art_dir = tmp / "artifact"
        int8_refused: QuantizationRejected | None = None
        try:
            res = compile_student(
                module,
                rows,
                env_config=cfg,
                private_key=priv,
                out_dir=art_dir,
                int8=True,
                min_agreement=min_agree,
                network=net30,
            )
        except QuantizationRejected as exc:  # the gate refused int8: fp32 ships alone
            int8_refused = exc
            print(f"int8: refused (agreement {exc.agreement:.2%}); continuing with fp32")
            res = compile_student(
                module,
                rows,
                env_config=cfg,
                private_key=priv,
                out_dir=art_dir,
                overwrite=True,
                network=net30,
            )
        precisions = ("fp32",) if int8_refused is not None else ("fp32", "int8")
        inf = inference(art_dir, pub, module.eval(), rows, args.calls, precisions)
        per_case = {
            c: decisions(c, art_dir, pub, priv, args.decisions, args.seed, tmp)
            for c in args.cases.split(",")
            if c
        }
        process = {
            "before (network rebuilt from the case)": edge_process(cfg, art_dir, pub, "build"),
            "after (network from the artifact)": edge_process(cfg, art_dir, pub, "artifact"),
        }
    for c, r in per_case.items():
        for k in (
            "before",
            "previous",
            "round_start",
            "after",
            "previous_compiled_mlp",
            "round_start_compiled_mlp",
            "after_compiled_mlp",
        ):
            g, w = r[k]["with_rules_and_audit"], r[k]["whole_decision"]
            stages = "  ".join(
                f"{s} {g[s]['p50_us']}" for s in ("features", "model", "rules", "audit")
            )
            print(
                f"{c} {k:24s}: whole_decision p50 {w['p50_us']} µs p99 {w['p99_us']} µs | "
                f"stages p50 µs: {stages} | load {' '.join(map(str, w['load_avg']))}",
                flush=True,
            )
    print(f"edge process: {process}", flush=True)
    fp32_bytes = res.model_bytes["fp32"]
    out = {
        "benchmark": "edge",
        "student": {
            "source": str(args.student) if args.student else "default edge MLP (untrained)",
            "trained": trained,
            "hidden": list(getattr(module, "hidden", ())),
            "param_count": int(getattr(module, "param_count", 0)),
            "param_bytes": int(getattr(module, "param_bytes", 0)),
        },
        "model_bytes": {"fp32": fp32_bytes, "int8": res.model_bytes.get("int8")},
        "parity_max_abs": res.parity_max_abs,
        "int8_argmax_agreement": (
            int8_refused.agreement if int8_refused is not None else res.int8_agreement
        ),
        "int8": (
            f"refused (agreement {int8_refused.agreement:.2%} < {int8_refused.threshold:.2%})"
            if int8_refused is not None
            else "shipped"
        ),
        "inference_batch1_one_thread": inf,
        "decision": per_case,
        "targets": TARGETS,
        "meets": {
            "model_fp32_bytes": fp32_bytes <= TARGETS["model_fp32_bytes_max"],
            "inference_p50": inf["onnxruntime_fp32"]["p50_us"] <= TARGETS["inference_p50_us_max"],
            **{
                f"decision_p99_{c}": r["after"]["features_plus_model"]["p99_us"]
                <= TARGETS["decision_p99_us_max"]
                for c, r in per_case.items()
            },
            **{
                f"whole_decision_{c}_{k}": (
                    r[k]["whole_decision"]["p50_us"] <= TARGETS["whole_decision_p50_us_max"]
                    and r[k]["whole_decision"]["p99_us"] <= TARGETS["whole_decision_p99_us_max"]
                )
                for c, r in per_case.items()
                for k in ("after", "after_compiled_mlp")
            },
        },
        "edge_process": process,
        "machine": {
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "onnxruntime": ort.__version__,
            "torch": torch.__version__,
            "load_avg_start": [round(x, 2) for x in load_start],
            "load_avg_end": [round(x, 2) for x in os.getloadavg()],
            "wall_s": round(time.perf_counter() - t_start, 1),
        },
    }
    text = json.dumps(out, indent=2)
    if args.out is not None:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
