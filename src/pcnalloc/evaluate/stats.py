"""Paired statistics: every policy on the same seeds, learned policies against the best
tuned heuristic per cell, with a 95 % CI on the per-seed difference and a verdict.

A claim that a learned policy beats a heuristic is a paired test: both play the same seeds
(same arrivals, events and places), so the per-seed difference removes most of the episode
to episode variance. The verdict comes from the CI only: ``ahead`` when the whole 95 % CI of
the difference lies on the good side of 0, ``behind`` when it lies on the bad side, ``level``
otherwise (including n < 2, where there is no CI).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

LEARNED_PREFIXES = ("teacher", "student", "edge")
"""Policy names starting with these are learned; every other policy is a heuristic."""

PAIRED_METRICS: dict[str, bool] = {
    "weighted_value_ratio": True,
    "blocking_priority_le1": False,
    "blocking_probability": False,
}
"""Metrics compared per seed → whether higher is better."""


def _t975(dof: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.975, dof))


def mean_ci(values: Sequence[float]) -> dict[str, Any]:
    """Mean, 95 % Student-t half-width and n (half-width None when n < 2)."""
    v = np.asarray(values, dtype=float)
    n = int(v.size)
    mean = float(v.mean()) if n else float("nan")
    if n < 2:
        return {"mean": mean, "half_width": None, "n": n}
    half = _t975(n - 1) * float(v.std(ddof=1)) / np.sqrt(n)
    return {"mean": mean, "half_width": float(half), "n": n}


def verdict(mean_diff: float, half_width: float | None, higher_is_better: bool) -> str:
    """``ahead`` / ``level`` / ``behind`` from the CI of (learned − baseline) alone."""
    if half_width is None or not np.isfinite(mean_diff):
        return "level"
    lo, hi = mean_diff - half_width, mean_diff + half_width
    good_lo, good_hi = (lo, hi) if higher_is_better else (-hi, -lo)
    if good_lo > 0:
        return "ahead"
    if good_hi < 0:
        return "behind"
    return "level"


RESOLUTION = 0.01
"""Weighted-value difference the default protocol is sized to resolve (1 point)."""


def seeds_needed(values: Sequence[float], target: float = RESOLUTION, cap: int = 10_000) -> int:
    """Smallest n whose 95 % t half-width ``t(n−1)·s/√n`` would be ≤ ``target``, using the
    sample standard deviation s of ``values`` (per-seed paired differences); ``cap`` when
    even that many would not do, 0 with fewer than two values or s = 0 and n = 2 enough."""
    v = np.asarray(values, dtype=float)
    if v.size < 2:
        return 0
    sd = float(v.std(ddof=1))
    if sd == 0.0:
        return 2
    n = max(2, int(np.ceil((1.96 * sd / target) ** 2)))
    while n < cap and _t975(n - 1) * sd / np.sqrt(n) > target:
        n += 1
    return min(n, cap)


def paired(
    a_by_seed: dict[int, float], b_by_seed: dict[int, float], higher_is_better: bool = True
) -> dict[str, Any]:
    """Per-seed paired difference a − b over the seeds both have, its CI and the verdict."""
    seeds = sorted(set(a_by_seed) & set(b_by_seed))
    d = [a_by_seed[s] - b_by_seed[s] for s in seeds]
    ci = mean_ci(d)
    return {
        "mean_diff": ci["mean"],
        "half_width": ci["half_width"],
        "n": ci["n"],
        "verdict": verdict(ci["mean"], ci["half_width"], higher_is_better),
        "seeds_for_resolution": seeds_needed(d),
    }


def is_learned(policy: str) -> bool:
    """True for a learned policy's name (teacher, students), False for heuristics."""
    return policy.startswith(LEARNED_PREFIXES)


CellKey = tuple[str, float, str]


def _cell(r: dict[str, Any]) -> CellKey:
    return (str(r["case"]), float(r["load"]), str(r.get("scenario") or "default"))


def critical_decisions(r: dict[str, Any], critical: Iterable[str]) -> int:
    """Priority ≤ 1 decisions of one run (its sample size for critical blocking)."""
    per = r["metrics"].get("offered_per_class", {})
    return int(sum(v for k, v in per.items() if k in set(critical)))


def paired_table(
    runs: Sequence[dict[str, Any]],
    *,
    critical: Iterable[str] = (),
    baselines: dict[CellKey, str] | None = None,
    metrics: dict[str, bool] | None = None,
    learned: Callable[[str], bool] = is_learned,
) -> list[dict[str, Any]]:
    """One row per (cell, learned policy): paired differences to the best heuristic.

    Args:
        runs: ``run_policy`` results (with ``policy``, ``case``, ``load``, ``seed``, optional
            ``scenario``, ``metrics``).
        critical: names of the priority ≤ 1 classes (for the sample size of critical blocking).
        baselines: cell → the heuristic to compare with, chosen beforehand (e.g. by its
            tuning-seed score). Without it, the heuristic with the highest mean weighted value
            on these runs is used — a selection on the evaluation seeds, which favours the
            baseline; each row says which rule picked it (``baseline_rule``).
        metrics: metric → higher is better (default :data:`PAIRED_METRICS`).
        learned: which policy names are learned.
    """
    metrics = metrics or PAIRED_METRICS
    crit = list(critical)
    cells: dict[CellKey, dict[str, dict[int, dict[str, Any]]]] = {}
    for r in runs:
        cells.setdefault(_cell(r), {}).setdefault(r["policy"], {})[int(r["seed"])] = r
    rows = []
    for cell, pols in sorted(cells.items()):
        heur = {p: v for p, v in pols.items() if not learned(p)}
        if not heur:
            continue
        rule = "preselected"
        base = (baselines or {}).get(cell)
        if base not in heur:
            rule = "best mean value on these seeds"
            base = max(
                heur,
                key=lambda p: np.mean(
                    [x["metrics"]["weighted_value_ratio"] for x in heur[p].values()]
                ),
            )
        for pol, by_seed in sorted(pols.items()):
            if not learned(pol):
                continue
            row: dict[str, Any] = {
                "case": cell[0],
                "load": cell[1],
                "scenario": cell[2],
                "policy": pol,
                "baseline": base,
                "baseline_rule": rule,
                "critical_decisions_per_episode": mean_ci(
                    [critical_decisions(x, crit) for x in by_seed.values()]
                )["mean"]
                if crit
                else None,
            }
            for m, hib in metrics.items():
                a = {s: float(x["metrics"][m]) for s, x in by_seed.items()}
                b = {s: float(x["metrics"][m]) for s, x in heur[base].items()}
                row[m] = {
                    "learned": mean_ci(list(a.values())),
                    "baseline": mean_ci(list(b.values())),
                    **paired(a, b, hib),
                }
            rows.append(row)
    return rows


def _pm(x: dict[str, Any], fmt: str = "{:+.4f}") -> str:
    if x.get("half_width") is None:
        return fmt.format(x["mean_diff"]) + " (n<2)"
    return f"{fmt.format(x['mean_diff'])} ± {x['half_width']:.4f}"


def paired_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The paired table as Markdown: one line per cell and learned policy."""
    if not rows:
        return "_no learned policy to compare_\n"
    head = (
        "| scenario | case | ρ | policy | vs | Δ value (95 % CI) | verdict | "
        "Δ crit. blocking (95 % CI) | verdict | n | seeds for ±0.01 value | "
        "crit. decisions/ep. |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in rows:
        v, c = r["weighted_value_ratio"], r["blocking_priority_le1"]
        cd = r["critical_decisions_per_episode"]
        lines.append(
            f"| {r['scenario']} | {r['case']} | {r['load']:g} | {r['policy']} | "
            f"{r['baseline']} | {_pm(v)} | **{v['verdict']}** | {_pm(c)} | "
            f"**{c['verdict']}** | {v['n']} | {v.get('seeds_for_resolution', '')} | "
            f"{'' if cd is None else f'{cd:.0f}'} |"
        )
    return head + "\n".join(lines) + "\n"
