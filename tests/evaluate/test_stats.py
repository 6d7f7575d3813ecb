"""Paired statistics: CI half-width by hand, verdicts from the CI, best-heuristic selection."""

from __future__ import annotations

import numpy as np
import pytest

from pcnalloc.evaluate.stats import mean_ci, paired, paired_markdown, paired_table, verdict


def test_mean_ci_by_hand() -> None:
    ci = mean_ci([1.0, 2.0, 3.0])
    # t(0.975, 2) = 4.302653; sd = 1; half-width = 4.302653 / sqrt(3)
    assert ci["mean"] == 2.0 and ci["n"] == 3
    assert ci["half_width"] == pytest.approx(4.302653 / 3**0.5, rel=1e-6)
    assert mean_ci([5.0])["half_width"] is None


@pytest.mark.parametrize(
    ("diffs", "hib", "want"),
    [
        ([0.02, 0.03, 0.025, 0.02], True, "ahead"),
        ([-0.02, -0.03, -0.025, -0.02], True, "behind"),
        ([0.02, -0.03, 0.01, -0.01], True, "level"),
        ([-0.02, -0.03, -0.025, -0.02], False, "ahead"),  # lower blocking is better
        ([0.02, 0.03, 0.025, 0.02], False, "behind"),
    ],
)
def test_paired_verdicts(diffs, hib, want) -> None:
    base = {s: 0.5 for s in range(len(diffs))}
    learned = {s: 0.5 + d for s, d in enumerate(diffs)}
    assert paired(learned, base, hib)["verdict"] == want


def test_verdict_needs_a_ci() -> None:
    assert verdict(0.5, None, True) == "level"


def _run(policy, seed, value, crit_block=0.1, scenario=None):
    return {
        "policy": policy,
        "case": "case30",
        "load": 1.0,
        "seed": seed,
        "scenario": scenario,
        "metrics": {
            "weighted_value_ratio": value,
            "blocking_priority_le1": crit_block,
            "blocking_probability": 0.1,
            "offered_per_class": {"scada": 40, "pmu_wams": 20, "office": 500},
        },
    }


def test_paired_table_picks_the_best_heuristic_and_pairs_by_seed() -> None:
    runs = []
    for s in range(4):
        runs += [
            _run("ksp-ff", s, 0.80 + 0.01 * s),
            _run("cspf-pe", s, 0.90 + 0.01 * s),
            _run("teacher@x", s, 0.92 + 0.01 * s + 0.001 * (s % 2), crit_block=0.05),
        ]
    rows = paired_table(runs, critical=["scada", "pmu_wams"])
    assert len(rows) == 1
    r = rows[0]
    assert r["baseline"] == "cspf-pe" and r["baseline_rule"].startswith("best")
    assert r["weighted_value_ratio"]["verdict"] == "ahead"
    assert r["weighted_value_ratio"]["mean_diff"] == pytest.approx(0.0205)
    assert r["blocking_priority_le1"]["verdict"] == "ahead"
    assert r["critical_decisions_per_episode"] == 60
    # a preselected baseline is used as given
    pre = paired_table(runs, baselines={("case30", 1.0, "default"): "ksp-ff"})
    assert pre[0]["baseline"] == "ksp-ff" and pre[0]["baseline_rule"] == "preselected"
    assert "**ahead**" in paired_markdown(rows)


def test_seeds_needed_reaches_the_resolution_and_not_one_seed_less() -> None:
    from pcnalloc.evaluate.stats import _t975, seeds_needed

    rng = np.random.default_rng(0)
    d = rng.normal(0.0, 0.02, size=8)
    n = seeds_needed(d, 0.01)
    sd = float(np.std(d, ddof=1))
    assert _t975(n - 1) * sd / np.sqrt(n) <= 0.01 < _t975(n - 2) * sd / np.sqrt(n - 1)
    assert seeds_needed([0.1]) == 0 and seeds_needed([0.2, 0.2]) == 2
    assert seeds_needed([0.0, 10.0], 1e-6, cap=50) == 50
    assert paired({1: 0.5, 2: 0.6}, {1: 0.4, 2: 0.45})["seeds_for_resolution"] >= 2
