"""Learned mode policies against the heuristics on the same seeds, with paired statistics.

Every policy plays the same evaluation seeds (same placement, arrivals, fading and EMI), so
the per-seed difference removes the episode-to-episode spread; each (learned, heuristic)
pair gets :func:`pcnalloc.evaluate.stats.paired` on the weighted delay + α·cost (lower is
better), the traffic cost and the mean delay, with the 95 % t interval and the verdict
(``ahead`` / ``level`` / ``behind`` from the interval alone).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from pcnalloc.access.config import AccessConfig
from pcnalloc.access.registry import make_access_policy
from pcnalloc.access.simulate import run_access
from pcnalloc.twolayer.learned import LearnedModePolicy

COMPARED: dict[str, Callable[[dict[str, Any]], float]] = {
    "weighted_sum": lambda m: m["weighted_sum"],
    "traffic_cost": lambda m: m["traffic_cost"],
    "mean_delay_s": lambda m: m["mean_delay_s"],
    "vq_max_over_T": lambda m: m["virtual_queue"]["max_final_over_T"],
}
"""Metric → how to read it from ``run_access``'s metrics (all: lower is better)."""


def is_learned_spec(spec: str) -> bool:
    """True for an access policy spec that names a learned policy."""
    return spec.partition("@")[0] in ("teacher", "student", "learned", "edge")


def compare(
    specs: Sequence[str],
    cfg: AccessConfig,
    seeds: Sequence[int],
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Run every spec on every seed; per-policy summaries and paired rows (learned − other).

    Returns:
        ``{"seeds", "policies": {spec: {"name", "per_seed", "mean", "stable_share",
        "slot_us_p50", "mode_us_p50", "guard_overrides"}}, "paired": [...]}``.
    """
    from pcnalloc.evaluate.stats import mean_ci, paired

    out: dict[str, Any] = {"seeds": list(seeds), "policies": {}, "paired": []}
    for spec in specs:
        per: dict[str, dict[int, float]] = {k: {} for k in COMPARED}
        stable, slot_us, mode_us, overrides, decisions = [], [], [], 0, 0
        name = spec
        for s in seeds:
            pol = make_access_policy(spec)
            r = run_access(pol, cfg, seed=int(s))
            name = r["policy"]
            for k, f in COMPARED.items():
                per[k][int(s)] = float(f(r["metrics"]))
            stable.append(bool(r["metrics"]["virtual_queue"]["mean_rate_stable"]))
            slot_us.append(r["timing"]["slot_decision_us_p50"])
            if isinstance(pol, LearnedModePolicy) and pol.mode_us:
                mode_us.append(float(np.percentile(pol.mode_us, 50)))
                overrides += int(pol.guard_overrides)
                decisions += int(pol.decisions)
            if progress is not None:
                progress(1)
        out["policies"][spec] = {
            "name": name,
            "per_seed": per,
            "mean": {k: mean_ci(list(v.values())) for k, v in per.items()},
            "stable_share": float(np.mean(stable)),
            "slot_us_p50": float(np.median(slot_us)),
            "mode_us_p50": float(np.median(mode_us)) if mode_us else None,
            "guard_overrides": overrides if decisions else None,
            "guard_decisions": decisions if decisions else None,
        }
    learned = [s for s in specs if is_learned_spec(s)]
    for a in learned:
        for b in specs:
            if b == a:
                continue
            row: dict[str, Any] = {"learned": a, "against": b}
            for k in COMPARED:
                row[k] = paired(
                    out["policies"][a]["per_seed"][k],
                    out["policies"][b]["per_seed"][k],
                    higher_is_better=False,
                )
            out["paired"].append(row)
    return out


__all__ = ["COMPARED", "compare", "is_learned_spec"]
