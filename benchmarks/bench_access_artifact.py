"""Access student as a signed ONNX artifact: size, parity, and decision time against torch.

Usage::

    python benchmarks/bench_access_artifact.py --learned out/access_learned \\
        [--seeds 4] [--repeat 300] [--out bench_access_artifact.json]

Takes an ``pcnalloc access train`` folder, compiles its student (``access compile``, a fresh
key pair in a temporary folder) and reports, side by side in one run: artifact and model
bytes, the parity figures of the gate (every library row), the epoch mode decision for the
default I = 100 devices (features + scores + guard, one thread) and the bare score call for
the torch student (``learned@``) and the artifact (``edge@``), and whether both take the
same decisions on evaluation seeds 0..N-1 (``compare``'s per-seed weighted sums). The load
average is recorded next to every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from pcnalloc.access import AccessModel, access_config, make_access_policy
from pcnalloc.access.features import device_features
from pcnalloc.edge.keys import save_keypair
from pcnalloc.twolayer.compare import compare
from pcnalloc.twolayer.export import compile_access_student


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _pcts(ns: list[int]) -> dict[str, float]:
    a = np.asarray(ns) / 1e3
    return {"p50_us": float(np.percentile(a, 50)), "p99_us": float(np.percentile(a, 99))}


def timing(specs: dict[str, str], repeat: int) -> dict[str, Any]:
    """Mode decision and bare score call per spec, interleaved so load hits both alike."""
    model = AccessModel(access_config(), 0)
    x = device_features(model)
    pols = {k: make_access_policy(s) for k, s in specs.items()}
    modes: dict[str, list[int]] = {k: [] for k in pols}
    scores: dict[str, list[int]] = {k: [] for k in pols}
    for _ in range(repeat):
        for k, p in pols.items():
            t = time.perf_counter_ns()
            p.modes(model)  # type: ignore[attr-defined]
            modes[k].append(time.perf_counter_ns() - t)
            t = time.perf_counter_ns()
            p.scores(x)  # type: ignore[attr-defined]
            scores[k].append(time.perf_counter_ns() - t)
    return {
        k: {"mode_decision": _pcts(modes[k]), "score_call": _pcts(scores[k]), "devices": len(x)}
        for k in pols
    } | {"loadavg": loadavg()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--learned", type=Path, required=True, help="access train folder")
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=300)
    ap.add_argument("--out", type=Path, default=Path("bench_access_artifact.json"))
    a = ap.parse_args()
    res: dict[str, Any] = {
        "platform": platform.platform(),
        "threads": 1,
        "loadavg_start": loadavg(),
    }
    with tempfile.TemporaryDirectory(prefix="pcnalloc-bench-") as tmp:
        key, pub = save_keypair(Path(tmp) / "keys")
        art = Path(tmp) / "artifact"
        t0 = time.perf_counter()
        m = compile_access_student(a.learned, a.learned / "library", private_key=key, out_dir=art)
        res["compile"] = {
            "seconds": time.perf_counter() - t0,
            "loadavg": loadavg(),
            "validation": m["validation"],
            "model_bytes": m["models"]["fp32"]["bytes"],
            "artifact_bytes": sum(p.stat().st_size for p in art.iterdir()),
            "student": m["student"],
        }
        specs = {"torch": f"learned@{a.learned}", "onnx": f"edge@{art}::{pub}"}
        res["timing"] = timing(specs, a.repeat)
        cmp = compare(list(specs.values()), access_config(), list(range(a.seeds)))
        per = {k: cmp["policies"][s]["per_seed"]["weighted_sum"] for k, s in specs.items()}
        res["decisions"] = {
            "seeds": a.seeds,
            "weighted_sum_per_seed": per,
            "same_on_every_seed": per["torch"] == per["onnx"],
            "loadavg": loadavg(),
        }
    a.out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
