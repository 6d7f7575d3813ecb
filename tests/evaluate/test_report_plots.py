"""The load plots draw every policy of the grid, learned ones (specs with artifact paths) too."""

from __future__ import annotations

from pcnalloc.evaluate.report import load_series, plot_vs_load


def _result() -> dict:
    pols = ["ksp-ff", "teacher@/tmp/run/teacher/q.pt", "edge@/a/art::/k/key.pub+rules"]
    names = ["ksp-ff", "teacher", "edge+rules"]
    agg = [
        {"case": "case30", "load": x, "policy": n, "metrics": {"v": {"mean": x + i, "ci95": 0.1}}}
        for i, n in enumerate(names)
        for x in (1.5, 1.0)
    ]
    return {"grid": {"policies": pols, "cases": ["case30"]}, "aggregate": agg}


def test_learned_policies_are_in_the_load_series() -> None:
    series = load_series(_result(), "case30", "v")
    assert list(series) == ["ksp-ff", "teacher", "edge+rules"]
    assert [p[0] for p in series["teacher"]] == [1.0, 1.5]  # sorted by load
    # a policy without aggregates has no series (the old code matched full specs: none)
    broken = _result()
    broken["aggregate"] = [a for a in broken["aggregate"] if a["policy"] == "ksp-ff"]
    assert list(load_series(broken, "case30", "v")) == ["ksp-ff"]


def test_plot_is_a_png() -> None:
    assert plot_vs_load(_result(), "v", "value").startswith(b"\x89PNG")
