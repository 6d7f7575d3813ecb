"""Simulator decisions/s: the code of a reference commit and the working tree, side by side.

The reference commit's ``src/`` is exported with ``git archive`` into a temporary folder and
both variants run in fresh child processes, alternating (reference, current, reference, …)
so that a change of machine load hits both alike. Each child plays seeded episodes of one
policy on one case (``storm`` family, compact observation, as evaluation runs it) and
reports decisions/s over the measured steps, once for the env and policy alone (then also
the time of a reset, i.e. the stationary warm start, with routes cached) and once with the
:class:`~pcnalloc.evaluate.metrics.MetricsRecorder` (which runs the safety checker), plus a
digest of the actions, rewards and warm-start populations so the run also shows that both
variants played the same trajectory. The load average is recorded next to every figure;
on a shared machine the CPU-time rates (``cpu_*``, process time instead of wall time) are
steadier than the wall-clock ones.

With ``--isolate FILES`` a third variant runs: the working tree with those files as they
were at the reference commit, so one change's share of the gain is told apart from the
others' (the working tree holds everyone's changes since the reference).

Usage: python benchmarks/bench_sim_speed.py [--ref a2696d6] [--cases case30,case118]
       [--policies ksp-ff,cspf-pe] [--steps 4000] [--repeats 3] [--out FILE.json]
       [--isolate src/pcnalloc/envs/power_comm.py,...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import hashlib, json, os, sys, time
import numpy as np
from pcnalloc.baselines import make_policy
from pcnalloc.config import env_config
from pcnalloc.envs import PowerCommEnv
from pcnalloc.evaluate.metrics import MetricsRecorder

case, spec = sys.argv[1], sys.argv[2]
steps, seed, with_rec = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"
pol = make_policy(spec)
cfg = env_config(network={"case": case}, traffic={"scenario": "storm"},
                 episode_requests=10**9, **pol.env_overrides)
env = PowerCommEnv(cfg, observation=pol.observation)
pol.reset(seed)
t = time.perf_counter()
obs, _ = env.reset(seed=seed)
first_reset_s = time.perf_counter() - t
rec = MetricsRecorder(env)
h = hashlib.sha256()
warm = steps // 2  # fills the route cache as in a long evaluation
for _ in range(warm):
    a = pol.act(obs)
    obs, r, _, _, info = env.step(a)
    if with_rec:
        rec.record(info, r)
t, c0 = time.perf_counter(), time.process_time()
for _ in range(steps):
    a = pol.act(obs)
    obs, r, _, _, info = env.step(a)
    if with_rec:
        rec.record(info, r)
    h.update(np.int64(a).tobytes()); h.update(np.float64(r).tobytes())
dt, cpu = time.perf_counter() - t, time.process_time() - c0
out = {"decisions_per_s": steps / dt, "us_per_decision": dt / steps * 1e6,
       "cpu_decisions_per_s": steps / cpu,
       "digest": h.hexdigest()[:16], "flows": len(env.state.flows)}
if with_rec:
    out["metrics_digest"] = hashlib.sha256(
        json.dumps(rec.result(), sort_keys=True).encode()).hexdigest()[:16]
else:  # resets (stationary warm start) with routes cached by the run above
    resets, cpu_resets = [], []
    for s in (seed + 1, seed + 2, seed + 3):
        t, c0 = time.perf_counter(), time.process_time()
        env.reset(seed=s)
        resets.append(time.perf_counter() - t)
        cpu_resets.append(time.process_time() - c0)
        h.update(np.array(sorted(env.state.flows), dtype=np.int64).tobytes())
        h.update(env.state.used_ESP1.tobytes())
    out["first_reset_s"] = first_reset_s
    out["reset_s"] = sorted(resets)[1]
    out["cpu_reset_s"] = sorted(cpu_resets)[1]
    out["warm_flows"] = len(env.state.flows)
    out["digest"] = h.hexdigest()[:16]
print(json.dumps(out))
"""


def export(ref: str, dest: Path) -> Path:
    """``git archive`` of the reference commit's ``src/`` into ``dest``; returns its src."""
    arc = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, "src"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=arc, check=True)
    return dest / "src"


def overlay(ref: str, files: list[str], dest: Path) -> Path:
    """The working tree's ``src/`` with ``files`` (repository paths) as they were at ``ref``:
    the current code minus one change, to tell its share of the gain from the rest."""
    import shutil

    shutil.copytree(ROOT / "src", dest / "src", ignore=shutil.ignore_patterns("__pycache__"))
    for f in files:
        text = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{ref}:{f}"], check=True, capture_output=True
        ).stdout
        (dest / f).write_bytes(text)
    return dest / "src"


def child(src: Path, case: str, spec: str, steps: int, seed: int, with_rec: bool) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src))
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[k] = "1"
    load = os.getloadavg()[0]
    p = subprocess.run(
        [sys.executable, "-c", CHILD, case, spec, str(steps), str(seed), "1" if with_rec else "0"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if p.returncode != 0:
        raise SystemExit(f"child failed ({src}): {p.stderr.strip().splitlines()[-1:]}")
    out = json.loads(p.stdout.strip().splitlines()[-1])
    out["loadavg_1m"] = round(load, 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", default="a2696d6", help="reference commit (default: a2696d6)")
    ap.add_argument("--cases", default="case30,case118")
    ap.add_argument("--policies", default="ksp-ff,cspf-pe")
    ap.add_argument("--steps", type=int, default=4000, help="measured steps per child")
    ap.add_argument("--repeats", type=int, default=3, help="children per variant and row")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-recorder", action="store_true", help="skip the with-recorder rows")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    ap.add_argument(
        "--current-src",
        type=Path,
        default=ROOT / "src",
        help="the src folder of the current variant (default: the working tree's; another "
        "folder when the working tree holds unfinished changes to leave out)",
    )
    ap.add_argument(
        "--isolate",
        default="",
        help="comma-separated repository files: adds the variant 'current_with_ref_files', "
        "the working tree with these files taken from --ref",
    )
    args = ap.parse_args()
    t0 = time.time()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-sim-ref-") as tmp:
        variants = {"reference": export(args.ref, Path(tmp)), "current": args.current_src}
        isolate = [f for f in args.isolate.split(",") if f]
        if isolate:
            (Path(tmp) / "iso").mkdir()
            variants["current_with_ref_files"] = overlay(args.ref, isolate, Path(tmp) / "iso")
        for case in args.cases.split(","):
            for spec in args.policies.split(","):
                for with_rec in (False,) if args.no_recorder else (False, True):
                    runs: dict[str, list[dict]] = {v: [] for v in variants}
                    for _ in range(args.repeats):
                        for v, src in variants.items():
                            runs[v].append(child(src, case, spec, args.steps, args.seed, with_rec))
                    best = {v: max(r["decisions_per_s"] for r in rs) for v, rs in runs.items()}
                    cpu_best = {
                        v: max(r["cpu_decisions_per_s"] for r in rs) for v, rs in runs.items()
                    }
                    resets = (
                        {v: round(min(r["reset_s"] for r in rs), 4) for v, rs in runs.items()}
                        if not with_rec
                        else None
                    )
                    same = len({r["digest"] for rs in runs.values() for r in rs}) == 1
                    if with_rec:
                        same = (
                            same
                            and len({r["metrics_digest"] for rs in runs.values() for r in rs}) == 1
                        )
                    rows.append(
                        {
                            "case": case,
                            "policy": spec,
                            "with_metrics_recorder": with_rec,
                            "steps": args.steps,
                            "decisions_per_s_best": {v: round(b, 1) for v, b in best.items()},
                            "speedup_best": round(best["current"] / best["reference"], 3),
                            "cpu_decisions_per_s_best": {
                                v: round(b, 1) for v, b in cpu_best.items()
                            },
                            "cpu_speedup_best": round(
                                cpu_best["current"] / cpu_best["reference"], 3
                            ),
                            **(
                                {
                                    "speedup_of_isolated_files": round(
                                        best["current"] / best["current_with_ref_files"], 3
                                    ),
                                    "cpu_speedup_of_isolated_files": round(
                                        cpu_best["current"] / cpu_best["current_with_ref_files"],
                                        3,
                                    ),
                                }
                                if isolate
                                else {}
                            ),
                            "reset_s_best": resets,
                            "reset_speedup": (
                                round(resets["reference"] / resets["current"], 2)
                                if resets
                                else None
                            ),
                            **(
                                {
                                    "reset_speedup_of_isolated_files": round(
                                        resets["current_with_ref_files"] / resets["current"], 2
                                    )
                                }
                                if isolate and resets
                                else {}
                            ),
                            "same_trajectory": same,
                            "runs": {
                                v: [
                                    {
                                        "decisions_per_s": round(r["decisions_per_s"], 1),
                                        "us_per_decision": round(r["us_per_decision"], 2),
                                        "cpu_decisions_per_s": round(r["cpu_decisions_per_s"], 1),
                                        **(
                                            {"reset_s": round(r["reset_s"], 4)}
                                            if "reset_s" in r
                                            else {}
                                        ),
                                        "loadavg_1m": r["loadavg_1m"],
                                    }
                                    for r in rs
                                ]
                                for v, rs in runs.items()
                            },
                        }
                    )
                    print(json.dumps(rows[-1]), file=sys.stderr)
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    doc = {
        "benchmark": "bench_sim_speed",
        "reference": args.ref,
        "isolated_files": isolate,
        "current_src": str(args.current_src),
        "current_head": head,
        "cpu_count": os.cpu_count(),
        "loadavg_start_end": [None, [round(x, 2) for x in os.getloadavg()]],
        "wall_s": round(time.time() - t0, 1),
        "rows": rows,
        "note": "same_trajectory: every child of both variants played identical actions and "
        "rewards (and, with the recorder, identical metrics)",
    }
    doc["loadavg_start_end"][0] = rows[0]["runs"]["reference"][0]["loadavg_1m"] if rows else None
    text = json.dumps(doc, indent=1)
    print(text)
    if args.out is not None:
        tmp_out = args.out.with_suffix(args.out.suffix + ".tmp")
        tmp_out.write_text(text + "\n")
        tmp_out.replace(args.out)


if __name__ == "__main__":
    main()
