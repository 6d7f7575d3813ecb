"""Multi-policy distillation: generalist vs specialists vs the best tuned heuristic.

One classical teacher per scenario family (tuned on training seeds at K = 4 on the training
grid, or given with ``--teachers``), a specialist student per family and one generalist from
the union of their rows; every cell (training and held-out grids × training families and the
held-out ``mixed`` family) plays them and the cell's best tuned heuristic on the same
evaluation seeds. Per-seed paired differences with 95 % CIs (``pcnalloc.evaluate.stats``) and
verdicts ahead / level / behind. See :mod:`pcnalloc.distill.generalise`.

Usage: OMP_NUM_THREADS=1 python benchmarks/bench_generalise.py [--families normal,storm,fiber-cut]
       [--train-cases case30] [--test-cases case57] [--episodes 24] [--requests 300]
       [--epochs 20] [--eval-seeds 300-307] [--eval-requests 500] [--teachers "normal=cspf-pe:4;…"]
       [--heuristics cspf-pe,llp,lcr,trunk,ksp-ff] [--out out/bench/generalise.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from pcnalloc.commands.distill import parse_seeds
from pcnalloc.distill import DistillConfig
from pcnalloc.distill.generalise import parse_teachers, run_generalise


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--families", default="normal,storm,fiber-cut")
    ap.add_argument("--teachers", default="")
    ap.add_argument("--train-cases", default="case30")
    ap.add_argument("--test-cases", default="case57")
    ap.add_argument("--test-families", default=None)
    ap.add_argument("--load", type=float, default=1.0)
    ap.add_argument("--episodes", type=int, default=24)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--eval-seeds", default="300-307")
    ap.add_argument("--eval-requests", type=int, default=500)
    ap.add_argument("--heuristics", default="cspf-pe,llp,lcr,trunk,ksp-ff")
    ap.add_argument("--tune-seeds", default="5000,5001")
    ap.add_argument("--tune-requests", type=int, default=300)
    ap.add_argument("--out", type=Path, default=Path("out/bench/generalise.json"))
    a = ap.parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        rep = run_generalise(
            Path(tmp) / "gen",
            families=_names(a.families),
            teachers=parse_teachers(a.teachers),
            train_cases=_names(a.train_cases),
            test_cases=_names(a.test_cases),
            test_families=None if a.test_families is None else _names(a.test_families),
            load=a.load,
            episodes=a.episodes,
            requests=a.requests,
            cfg=DistillConfig(epochs=a.epochs),
            eval_seeds=parse_seeds(a.eval_seeds),
            eval_requests=a.eval_requests,
            heuristics=_names(a.heuristics),
            tune_seeds=parse_seeds(a.tune_seeds),
            tune_requests=a.tune_requests,
        )
        table = (Path(tmp) / "gen" / "generalise.md").read_text()
    rep["table_markdown"] = table
    rep["bench_wall_s"] = round(time.perf_counter() - t0, 1)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(rep, indent=2) + "\n")
    print(table)
    print(
        json.dumps(
            {
                k: rep[k]
                for k in (
                    "summary",
                    "teachers",
                    "fidelity",
                    "wall_s",
                    "loadavg_before",
                    "loadavg_after",
                )
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
