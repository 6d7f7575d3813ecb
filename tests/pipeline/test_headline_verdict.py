"""The run's headline verdict is a paired per-seed comparison, not a comparison of means."""

from __future__ import annotations

from pcnalloc.pipeline.report import headline, verdict


def _sweep(values: dict[str, list[float]]) -> dict:
    runs, agg = [], []
    for pol, vs in values.items():
        for seed, v in enumerate(vs):
            m = {"weighted_value_ratio": v}
            runs.append({"policy": pol, "case": "case30", "load": 1.0, "seed": seed, "metrics": m})
        n = len(vs)
        summ = {"mean": sum(vs) / n, "ci95": None, "n": n}
        metrics = {
            "weighted_value_ratio": summ,
            "blocking_priority_le1": {"mean": 0.0, "n": n},
            "executed_hard_violations": {"mean": 0.0, "n": n},
            "intercepted": {"mean": 0.0, "n": n},
        }
        agg.append({"policy": pol, "case": "case30", "load": 1.0, "metrics": metrics})
    return {"runs": runs, "aggregate": agg}


def test_consistently_better_is_ahead_and_noisy_better_mean_is_level() -> None:
    base = [0.90, 0.80, 0.95, 0.85, 0.70, 0.92]
    s = _sweep(
        {
            "student+rules": [b + 0.01 for b in base],
            "teacher": base,
            "cspf-pe": base,
        }
    )
    (line,) = verdict(headline(s), s["runs"])
    assert "6 paired seeds" in line and line.count("ahead") == 2
    # a higher mean that comes from one lucky seed: the point comparison says "better",
    # the paired CI says level (planted: swap in a single large win)
    noisy = [b - 0.01 for b in base]
    noisy[0] += 0.2
    s = _sweep({"student+rules": noisy, "teacher": base, "cspf-pe": base})
    (line,) = verdict(headline(s), s["runs"])
    assert "best heuristic cspf-pe" in line and line.endswith("executed violations 0.")
    assert "level" in line.split("best heuristic")[1] and "ahead" not in line
