"""Multi-policy distillation report (``pcnalloc generalise``): paired comparisons, the target
read-outs, bad input, and a tiny end-to-end run."""

from __future__ import annotations

import json

import pytest

from pcnalloc.cli import main
from pcnalloc.distill import DistillConfig
from pcnalloc.distill.generalise import (
    GENERALIST,
    compare,
    parse_teachers,
    run_generalise,
    summarise,
)
from pcnalloc.errors import ConfigError, OutputPathError


def _runs(values, blocking):
    return [
        {"seed": s, "metrics": {"weighted_value_ratio": v, "blocking_priority_le1": b}}
        for s, (v, b) in enumerate(zip(values, blocking, strict=True))
    ]


def test_compare_is_paired_per_seed_with_verdicts():
    # seed effects dominate, the per-seed difference is a steady +0.02: paired → ahead
    a = _runs([0.52, 0.72, 0.92], [0.30, 0.20, 0.10])
    b = _runs([0.50, 0.70, 0.90], [0.20, 0.10, 0.00])
    c = compare(a, b)
    v, k = c["weighted_value_ratio"], c["blocking_priority_le1"]
    assert v["mean_diff"] == pytest.approx(0.02) and v["verdict"] == "ahead"
    assert v["relative"] == pytest.approx(0.02 / 0.70)
    assert k["mean_diff"] == pytest.approx(0.10) and k["verdict"] == "behind"  # lower is better
    # planted fault: shuffling one side's seeds breaks the pairing and the verdict goes level
    shuffled = _runs([0.92, 0.52, 0.72], [0.1, 0.3, 0.2])
    assert compare(shuffled, b)["weighted_value_ratio"]["verdict"] == "level"


def _row(policy, vs, case, fam, grid, rel, verdict="level", own=False):
    return {
        "policy": policy,
        "vs": vs,
        "case": case,
        "family": fam,
        "grid": grid,
        "own_family": own,
        "weighted_value_ratio": {"relative": rel, "verdict": verdict},
    }


@pytest.mark.parametrize(("rel", "ok"), [(-0.005, True), (0.03, True), (-0.02, False)])
def test_summary_reads_the_own_specialist_target(rel, ok):
    rows = [
        _row(GENERALIST, "student-normal", "case30", "normal", "trained", -0.001, own=True),
        _row(GENERALIST, "student-storm", "case30", "storm", "trained", rel, own=True),
        _row(GENERALIST, "student-storm", "case57", "storm", "held-out", 0.05, "ahead"),
    ]
    s = summarise(rows, ["normal", "storm"])
    assert s["within_1pct_of_own_specialist"] is ok
    assert s["ahead_of_every_specialist_on_held_out_grids"] is True
    rows.append(_row(GENERALIST, "student-normal", "case57", "storm", "held-out", 0.0))
    assert (
        summarise(rows, ["normal", "storm"])["ahead_of_every_specialist_on_held_out_grids"] is False
    )


def test_parse_teachers():
    assert parse_teachers("normal=cspf-pe:4; storm=trunk:4@reserve=0.1,protect_from=2") == {
        "normal": "cspf-pe:4",
        "storm": "trunk:4@reserve=0.1,protect_from=2",
    }
    assert parse_teachers("") == {}
    for bad in ("cspf-pe:4", "normal=a:4;normal=b:4", "=x:4"):
        with pytest.raises(ConfigError):
            parse_teachers(bad)


@pytest.mark.parametrize(
    "extra",
    [
        ["--families", "normal,hurricane"],
        ["--teachers", "normal=cspf-pe:16"],
        ["--teachers", "mixed=cspf-pe:4"],
        ["--eval-seeds", "300,5000"],
        ["--tune-seeds", "7"],
        ["--heuristics", "cspf-pe,oracle"],
        ["--families", "normal"],
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_output(tmp_path, capsys, extra):
    out = tmp_path / "gen"
    assert main(["generalise", "--out", str(out), *extra]) == 2
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(err) == 1 and "Traceback" not in err[0]
    assert not out.exists() and not list(tmp_path.iterdir())


def test_existing_output_is_refused(tmp_path):
    (tmp_path / "gen").mkdir()
    assert main(["generalise", "--out", str(tmp_path / "gen")]) == 2


@pytest.mark.slow
def test_generalise_end_to_end_tiny(tmp_path):
    out = tmp_path / "gen"
    rep = run_generalise(
        out,
        families=["normal", "storm"],
        teachers={"normal": "cspf-pe:4", "storm": "lcr:4"},
        train_cases=["case14"],
        test_cases=["case30"],
        test_families=["normal", "mixed"],
        episodes=3,
        requests=60,
        cfg=DistillConfig(epochs=2),
        eval_seeds=[300, 301],
        eval_requests=60,
        heuristics=("cspf-pe",),
        tune_seeds=(5000,),
        tune_requests=40,
    )
    assert {p.name for p in out.iterdir()} >= {"generalise.json", "generalise.md", "students"}
    assert [p.name for p in tmp_path.iterdir()] == ["gen"]  # no staged temp left behind
    assert json.loads((out / "generalise.json").read_text())["rows"] == rep["rows"]
    rd = rep["library"]["rows"]
    assert rd["generalist"] == rd["normal"] + rd["storm"] == 2 * 3 * 60
    # 2 cases × 2 families, each: generalist vs baseline, vs 2 specialists, 2 specialists vs
    # baseline
    assert len(rep["rows"]) == 4 * 5
    kinds = {(r["grid"], r["family_kind"]) for r in rep["rows"]}
    assert kinds == {
        ("trained", "trained"),
        ("trained", "held-out"),
        ("held-out", "trained"),
        ("held-out", "held-out"),
    }
    assert all(
        r["weighted_value_ratio"]["verdict"] in ("ahead", "level", "behind") for r in rep["rows"]
    )
    own = [r for r in rep["rows"] if r["own_family"]]
    assert {(r["case"], r["vs"]) for r in own} == {
        ("case14", "student-normal"),
        ("case30", "student-normal"),
    }
    assert "| case14 (trained) | normal |" in (out / "generalise.md").read_text()
    with pytest.raises(OutputPathError, match="exists"):
        run_generalise(out, teachers={}, eval_seeds=[300])
