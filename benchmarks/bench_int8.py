"""fp32 against int8 students side by side: size, batch-1 latency, agreement, closed-loop value.

Every quantisation variant of one student (dynamic per-tensor / per-channel; static QDQ and
QOperator, per-tensor / per-channel, with the first and/or last layer kept in float32,
calibrated on library rows) is judged by the compile gate's own functions
(:mod:`pcnalloc.export.gate`: raw and decision-relevant agreement row by row on the sampled
library rows, then the closed-loop value ratio against fp32 on seeded episodes) and timed at
batch 1 the way the edge runs it (inputs and outputs bound once, a different library row per
call, one thread), all variants in one run, interleaved in rounds so that a change of machine
load falls on all of them alike. Each figure carries the load average taken when it was
measured.

``--margins W:M,…`` also trains one student per margin setting (``DistillConfig.margin_weight``
W, ``margin`` M) on the library with the main job's distillation settings (20 epochs) and
reports its fidelity and int8 agreement: the measurement behind the margin default.

Usage::

    python benchmarks/bench_int8.py --library out/run/library --student out/run/distill
    python benchmarks/bench_int8.py --library out/run/library --margins 0:1,0.1:1,1:1 \
        --train-seeds 0,1 --out int8.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")

from pcnalloc.edge.agent import make_session
from pcnalloc.edge.artifact import OUTPUT_NAME
from pcnalloc.export.compile import (
    export_onnx,
    library_decisions,
    library_rows,
    load_student_module,
    onnx_logits,
)
from pcnalloc.export.gate import (
    ClosedLoopSpec,
    closed_loop_check,
    decision_agreement,
    rowwise_logits,
)
from pcnalloc.export.quant import QuantSettings, quantize_int8

VARIANTS: dict[str, QuantSettings | None] = {
    "fp32": None,
    "dynamic": QuantSettings(),
    "dynamic-per-channel": QuantSettings(per_channel=True),
    "static-qdq": QuantSettings(mode="static", format="qdq"),
    "static-qdq-per-channel": QuantSettings(mode="static", format="qdq", per_channel=True),
    "static-qoperator": QuantSettings(mode="static"),
    "static-qoperator-per-channel": QuantSettings(mode="static", per_channel=True),
    "static-qoperator-keep-last": QuantSettings(mode="static", keep_fp32=("last",)),
    "static-qoperator-keep-first": QuantSettings(mode="static", keep_fp32=("first",)),
    "static-qoperator-keep-first-last": QuantSettings(mode="static", keep_fp32=("first", "last")),
}


def int_list(text: str) -> list[int]:
    """``"500,501"`` → [500, 501] (empty: none)."""
    return [int(v) for v in text.split(",") if v]


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


class Bound:
    """One session with its input and output bound once (as ``edge.agent.BoundModel``)."""

    def __init__(self, model: bytes, input_name: str, D: int, A: int) -> None:
        import onnxruntime as ort

        self.sess = make_session(model)
        self.x = np.zeros((1, D), np.float32)
        self.y = np.zeros((1, A), np.float32)
        self.bind = self.sess.io_binding()
        self.bind.bind_ortvalue_input(input_name, ort.OrtValue.ortvalue_from_numpy(self.x))
        self.bind.bind_ortvalue_output(OUTPUT_NAME, ort.OrtValue.ortvalue_from_numpy(self.y))

    def time(self, rows: np.ndarray, n: int) -> np.ndarray:
        out = np.empty(n, np.int64)
        run, x, R = self.sess.run_with_iobinding, self.x[0], len(rows)
        for i in range(n):
            x[:] = rows[i % R]
            t = time.perf_counter_ns()
            run(self.bind)
            out[i] = time.perf_counter_ns() - t
        return out


def pct(ns: np.ndarray) -> dict[str, float]:
    us = ns / 1e3
    return {
        "p50_us": round(float(np.percentile(us, 50)), 2),
        "p99_us": round(float(np.percentile(us, 99)), 2),
    }


def judge(
    fp32: bytes,
    models: dict[str, bytes],
    rows: np.ndarray,
    decisions: tuple[np.ndarray, np.ndarray],
    env: Any,
    spec: ClosedLoopSpec | None,
) -> dict[str, dict[str, Any]]:
    """Size, agreement and (with ``spec``) closed-loop value of every model."""
    z32 = onnx_logits(fp32, "compact", rows)
    out: dict[str, dict[str, Any]] = {}
    for name, model in models.items():
        ag = decision_agreement(
            z32,
            rowwise_logits(model, "compact", rows),
            q_values_NA=decisions[0],
            action_mask_NA=decisions[1],
        )
        row: dict[str, Any] = {
            "bytes": len(model),
            "raw_agreement": round(ag.raw, 5),
            "decision_agreement": round(ag.decision, 5),
            "masked_picks": ag.masked_picks,
            "fp32_masked_picks": ag.fp32_masked_picks,
            "load_avg": load(),
        }
        if spec is not None and name != "fp32":
            cl = closed_loop_check(fp32, model, env, spec)
            row["closed_loop"] = {
                "fp32_value": round(cl.fp32_value, 5),
                "int8_value": round(cl.int8_value, 5),
                "ratio": round(cl.ratio, 5),
                "load_avg": load(),
            }
        out[name] = row
    return out


def variants(
    fp32: bytes, rows: np.ndarray, names: list[str]
) -> tuple[dict[str, bytes], dict[str, str]]:
    models, failed = {}, {}
    for name in names:
        s = VARIANTS[name]
        try:
            models[name] = fp32 if s is None else quantize_int8(fp32, s, calibration_ND=rows)
        except Exception as err:  # a variant onnxruntime cannot build is reported, not fatal
            failed[name] = " ".join(str(err).split())[:300]
    return models, failed


def latency(
    models: dict[str, bytes], rows: np.ndarray, calls: int, rounds: int
) -> dict[str, dict[str, Any]]:
    D, A = rows.shape[1], None
    bound = {}
    for name, m in models.items():
        A = make_session(m).get_outputs()[0].shape[-1]
        bound[name] = Bound(m, "compact", D, int(A))
    for b in bound.values():
        b.time(rows, 300)  # warm-up
    samples: dict[str, list[np.ndarray]] = {n: [] for n in bound}
    loads: dict[str, list[list[float]]] = {n: [] for n in bound}
    for _ in range(rounds):
        for n, b in bound.items():
            samples[n].append(b.time(rows, calls // rounds))
            loads[n].append(load())
    return {n: {**pct(np.concatenate(s)), "load_avg": loads[n][-1]} for n, s in samples.items()}


def margins(args: argparse.Namespace, rows: np.ndarray, dec: Any, env: Any) -> list[dict]:
    from pcnalloc.distill.config import distill_config
    from pcnalloc.distill.trainer import train_student

    out = []
    spec = ClosedLoopSpec(seeds=tuple(args.seeds), requests=args.requests, min_ratio=0.995)
    for item in args.margins.split(","):
        w, m = (float(v) for v in item.split(":"))
        for seed in args.train_seeds:
            cfg = distill_config(epochs=20, seed=seed, margin_weight=w, margin=m)
            t = time.perf_counter()
            res = train_student(args.library, kind="edge", cfg=cfg)
            fp32 = export_onnx(res.model, "compact", rows.shape[1])
            models = {"int8": quantize_int8(fp32)}
            j = judge(fp32, models, rows, dec, env, spec if args.seeds else None)["int8"]
            out.append(
                {
                    "margin_weight": w,
                    "margin": m,
                    "seed": seed,
                    "train_s": round(time.perf_counter() - t, 1),
                    "val_top1_agreement": round(res.best["val_top1_agreement"], 4),
                    "val_top1_agreement_clear": round(res.best["val_top1_agreement_clear"], 4),
                    "val_mean_q_regret": res.best["val_mean_q_regret"],
                    **{f"int8_{k}": v for k, v in j.items()},
                }
            )
            print(json.dumps(out[-1]), file=sys.stderr, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--library", type=Path, default=Path("out/run/library"))
    ap.add_argument("--student", type=Path, default=Path("out/run/distill"))
    ap.add_argument("--rows", type=int, default=4096, help="library rows for the gate")
    ap.add_argument("--calls", type=int, default=20_000, help="timed calls per variant")
    ap.add_argument("--rounds", type=int, default=10, help="interleaved timing rounds")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--seeds", type=int_list, default=[500, 501])
    ap.add_argument("--requests", type=int, default=1000, help="decisions per closed-loop episode")
    ap.add_argument("--margins", default="", help="W:M,… students to train (margin default)")
    ap.add_argument("--train-seeds", type=int_list, default=[0])
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    names = [n for n in args.variants.split(",") if n]
    bad = [n for n in names if n not in VARIANTS]
    if bad:
        raise SystemExit(f"unknown variants {bad}; accepted: {', '.join(VARIANTS)}")
    t0 = time.perf_counter()
    start = load()
    rows, env = library_rows(args.library, "compact", max_rows=args.rows)
    dec = library_decisions(args.library, rows)
    report: dict[str, Any] = {
        "library": str(args.library),
        "rows": len(rows),
        "load_avg_start": start,
        "cpu_count": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    if args.student and (args.student.exists()):
        module = load_student_module(args.student)
        fp32 = export_onnx(module, "compact", rows.shape[1])
        models, failed = variants(fp32, rows, names)
        spec = (
            ClosedLoopSpec(seeds=tuple(args.seeds), requests=args.requests, min_ratio=0.995)
            if args.seeds
            else None
        )
        judged = judge(fp32, models, rows, dec, env, spec)
        lat = latency(models, rows, args.calls, args.rounds)
        report["student"] = str(args.student)
        report["closed_loop"] = {"seeds": args.seeds, "requests": args.requests}
        report["variants"] = {n: {**judged[n], "latency": lat[n]} for n in models}
        report["failed"] = failed
    if args.margins:
        report["margins"] = margins(args, rows, dec, env)
    report["wall_s"] = round(time.perf_counter() - t0, 1)
    report["load_avg_end"] = load()
    text = json.dumps(report, indent=1)
    if args.out is not None:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
