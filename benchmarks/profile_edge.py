"""Where an audited edge decision spends its time (prints JSON).

Usage::

    python benchmarks/profile_edge.py [--case case30] [--decisions 2000] [--out FILE]

Builds the bench's untrained edge MLP artifact, one env of ``--case`` and an
:class:`~pcnalloc.edge.agent.EdgeAgent` with the packaged rules and an audit log (fsync every
1000 records, a signed head every 1000), then on the env's live states:

1. **stages** — the agent's own per-stage timings (features, model, rules, audit) and the
   whole ``decide()`` timed around the call;
2. **audit parts** — the steps of one decision append timed one by one in a tight loop on the
   last decision (request record, timestamp, fixed-layout encoding, SHA-256 and line, the
   Merkle leaf and frontier that ``AuditLog`` defers to the next head, the ``write`` system
   call) and the generic encoding (body dict, ``canonical``) next to them;
3. **cProfile** — ``decide()`` under :mod:`cProfile`, the functions with the most own time
   (the profiler's overhead inflates every call, so read it for shares, not absolute µs).

Every figure is a ``perf_counter_ns`` percentile next to the load average at the time.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pcnalloc.config import env_config
from pcnalloc.distill import make_student
from pcnalloc.edge import keys, merkle
from pcnalloc.edge.agent import EdgeAgent, LocalState
from pcnalloc.edge.audit import AuditLog, canonical, encode_decision
from pcnalloc.envs import PowerCommEnv
from pcnalloc.export.compile import compile_student
from pcnalloc.rules.engine import build_engine

sys.path.insert(0, str(Path(__file__).parent))
from bench_edge import pct, record_rows  # benchmarks/ is not a package


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def build_artifact(tmp: Path, seed: int) -> tuple[Path, Path, Path]:
    cfg = env_config(network={"case": "case30"})
    rows = record_rows("case30", 1000, seed)
    module = make_student(
        "edge",
        input_dim=rows.shape[1],
        n_actions=cfg.n_actions,
        generator=torch.Generator().manual_seed(seed),
    )
    x = torch.from_numpy(rows)
    module.set_standardisation(x.mean(0), x.std(0))
    priv, pub = keys.save_keypair(tmp / "keys", "bench")
    net30 = PowerCommEnv(cfg, observation="compact").net
    compile_student(
        module, rows, env_config=cfg, private_key=priv, out_dir=tmp / "artifact", network=net30
    )
    return tmp / "artifact", priv, pub


def audit_parts(agent: EdgeAgent, local: LocalState, d: Any, n: int) -> dict[str, Any]:
    """Time the steps of a decision append one by one (the log itself is not written):
    the fixed-layout path ``append_decision`` takes, and the generic encoding next to it."""
    req, ctx = local.request, agent._ctx
    names = (
        "request_record",
        "timestamp_round",
        "encode_fixed_layout",
        "record_sha256_and_line",
        "leaf_and_frontier_deferred_to_head",
        "generic_body_dict",
        "generic_canonical_json",
    )
    parts: dict[str, list[float]] = {k: [] for k in names}
    tree = merkle.Frontier()
    clock = time.perf_counter_ns
    rs = agent.engine.sha256 if agent.engine is not None else ""
    ms = agent.model_sha256
    prev = "0" * 64
    for _ in range(n):
        t0 = clock()
        rq = agent._request_record(req, ctx)
        t1 = clock()
        ts = round(time.time(), 6)
        t2 = clock()
        content = encode_decision(5, prev, ts, rq, d, rs, ms)
        t3 = clock()
        h = hashlib.sha256(content).hexdigest()
        data = b"".join((content[:-1], b',"hash":"', h.encode(), b'"}\n'))
        t4 = clock()
        tree.append(merkle.leaf_hash(data[:-1]))
        t5 = clock()
        body = {"request": rq, **d.to_record(), "ruleset": rs, "model": ms}
        rec = {"seq": 5, "type": "decision", "prev": prev, "ts": ts, "body": body}
        t6 = clock()
        canonical(rec)
        t7 = clock()
        ts_ = (t0, t1, t2, t3, t4, t5, t6, t7)
        for k, a, b in zip(names, ts_[:-1], ts_[1:], strict=True):
            parts[k].append((b - a) / 1e3)
    fd = os.open(agent.audit.path.with_suffix(".scratch"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    w = []
    for _ in range(n):
        t0 = clock()
        os.write(fd, data)
        w.append((clock() - t0) / 1e3)
    os.close(fd)
    out = {k: pct(np.array(v)) for k, v in parts.items()}
    out["os_write"] = pct(np.array(w))
    out["line_bytes"] = len(data)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", default="case30")
    ap.add_argument("--decisions", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runtime", default="onnxruntime", choices=("onnxruntime", "compiled"))
    ap.add_argument("--top", type=int, default=25, help="cProfile rows kept")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    res: dict[str, Any] = {"benchmark": "profile_edge", "case": args.case, "load_start": load()}
    with tempfile.TemporaryDirectory(prefix="profile-edge-") as td:
        tmp = Path(td)
        art, priv, pub = build_artifact(tmp, args.seed)
        cfg = env_config(network={"case": args.case})
        env = PowerCommEnv(cfg, observation="compact")
        env.reset(seed=args.seed)
        engine = build_engine(None, env.catalog, trust_threshold=cfg.trust_threshold)
        log = AuditLog(tmp / "audit.jsonl", private_key=priv, sync_every=1000)
        agent = EdgeAgent(
            art, pub, cfg, network=env.net, rules=engine, audit=log, runtime=args.runtime
        )
        # The env executes an unguarded agent's action, as bench_edge does, so both see the
        # same states (and the guarded agent's interceptions come at the bench's rate).
        driver = EdgeAgent(art, pub, cfg, network=env.net, runtime=args.runtime)

        def step(d: Any) -> None:
            env.step(driver.decide(LocalState.from_env(env)).action)

        for _ in range(300):
            d = agent.decide(LocalState.from_env(env))
            step(d)
        agent.n_decisions = 0
        whole = np.empty(args.decisions)
        hit = np.zeros(args.decisions, dtype=bool)
        clock = time.perf_counter_ns
        for i in range(args.decisions):
            local = LocalState.from_env(env)
            t = clock()
            d = agent.decide(local)
            whole[i] = (clock() - t) / 1e3
            hit[i] = d.intercepted
            last = (local, d)
            step(d)
        lat = agent.latency_us()
        res["stages"] = {
            "whole_decision": {**pct(whole), "load_avg": load()},
            "whole_decision_allowed": pct(whole[~hit]),
            "whole_decision_intercepted": pct(whole[hit]) if hit.any() else None,
            **{k: pct(v) for k, v in lat.items()},
            "rules_allowed": pct(lat["rules"][~hit]),
            "rules_intercepted": pct(lat["rules"][hit]) if hit.any() else None,
        }
        res["audit_parts"] = {
            **audit_parts(agent, *last, args.decisions),
            "load_avg": load(),
        }
        prof = cProfile.Profile()
        n_prof = max(args.decisions // 2, 1)
        for _ in range(n_prof):
            local = LocalState.from_env(env)
            prof.enable()
            d = agent.decide(local)
            prof.disable()
            step(d)
        st = pstats.Stats(prof)
        rows = []
        for (file, line, fn), (_cc, nc, tt, ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
            rows.append(
                {
                    "function": f"{Path(file).name}:{line}:{fn}",
                    "calls_per_decision": round(nc / n_prof, 2),
                    "own_us_per_decision": round(tt / n_prof * 1e6, 2),
                    "cum_us_per_decision": round(ct / n_prof * 1e6, 2),
                }
            )
        rows.sort(key=lambda r: -r["own_us_per_decision"])
        res["cprofile_decide"] = {"top": rows[: args.top], "load_avg": load()}
        log.close()
    res["load_end"] = load()
    text = json.dumps(res, indent=1)
    if args.out is not None:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
