"""Sweeps: executor-independent results, CI arithmetic, input validation, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pcnalloc.cli import main
from pcnalloc.distributed import LocalExecutor, SerialExecutor
from pcnalloc.errors import ConfigError, UnknownCaseError, UnknownPolicyError
from pcnalloc.evaluate.sweep import (
    SWEEP_METRICS,
    grid_items,
    mean_ci,
    parse_seeds,
    policy_imports,
    sweep,
)

EVENTS = {"traffic": {"events": {"faults_per_hour": 30.0, "fiber_cuts_per_hour": 30.0}}}


def test_process_pool_and_serial_sweeps_are_identical(small_pool_graph_file: Path) -> None:
    args = (["ksp-ff", "random", "cspf-pe"], [str(small_pool_graph_file)], [1.0, 2.0], [0, 1], 60)
    serial = sweep(*args, SerialExecutor(), env_overrides=EVENTS)
    with LocalExecutor(2) as ex:
        pooled = sweep(*args, ex, env_overrides=EVENTS)
    assert len(serial["runs"]) == 3 * 2 * 2
    key = lambda r: (r["policy"], r["load"], r["seed"], r["metrics"])  # noqa: E731
    assert [key(r) for r in pooled["runs"]] == [key(r) for r in serial["runs"]]
    assert [a["metrics"] for a in pooled["aggregate"]] == [
        a["metrics"] for a in serial["aggregate"]
    ]
    assert pooled["executor"] == {"name": "process", "workers": 2}
    # Different seeds give different episodes (the CI is not trivially zero everywhere).
    assert any(a["metrics"]["blocking_probability"]["std"] for a in serial["aggregate"])
    json.dumps(serial)  # JSON-serialisable as returned
    agg = serial["aggregate"][0]
    assert set(agg["metrics"]) == set(SWEEP_METRICS) and agg["seeds"] == [0, 1]


def test_mean_ci_matches_the_t_interval() -> None:
    s = mean_ci([1.0, 2.0, 3.0, 4.0])
    # t_{0.975, 3} = 3.182446, s = 1.290994, n = 4.
    assert s["mean"] == 2.5 and s["n"] == 4
    assert s["std"] == pytest.approx(1.290994, abs=1e-6)
    assert s["ci95"] == pytest.approx(3.182446 * 1.290994 / 2, abs=1e-5)
    assert mean_ci([0.7]) == {"mean": 0.7, "ci95": None, "std": None, "n": 1}
    assert mean_ci([0.3, 0.3, 0.3])["ci95"] == 0.0


def test_parse_seeds() -> None:
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("1,3,7") == [1, 3, 7]
    assert parse_seeds("0-2, 9") == [0, 1, 2, 9]
    for bad in ("", "a", "4-1", "1,1", "-3"):
        with pytest.raises(ConfigError):
            parse_seeds(bad)


def test_bad_names_fail_before_any_run(small_pool_graph_file: Path) -> None:
    class Boom(SerialExecutor):
        def map_ordered(self, fn, items, *, progress=None):
            raise AssertionError("work started before validation")

    with pytest.raises(UnknownPolicyError, match=r"'nope'; accepted: .*ksp-ff"):
        sweep(["ksp-ff", "nope"], [str(small_pool_graph_file)], [1.0], [0], 10, Boom())
    with pytest.raises(UnknownCaseError, match="case99"):
        sweep(["ksp-ff"], ["case99"], [1.0], [0], 10, Boom())
    with pytest.raises(ConfigError, match="load"):
        sweep(["ksp-ff"], [str(small_pool_graph_file)], [-1.0], [0], 10, Boom())


def test_items_carry_policy_modules() -> None:
    items = grid_items(["ksp-ff", "llp"], ["case14"], [1.0], [0, 1], 5)
    assert len(items) == 4 and [i.seed for i in items] == [0, 0, 1, 1]
    assert "pcnalloc.baselines.heuristics" in policy_imports(["ksp-ff"])
    assert items[0].imports == policy_imports(["ksp-ff", "llp"])


def test_cli_writes_report_json_and_plots(small_pool_graph_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "ev"
    argv = [
        "evaluate",
        "--policies", "ksp-ff,sp-ff",
        "--cases", str(small_pool_graph_file),
        "--loads", "1.0,2.0",
        "--seeds", "0-1",
        "--requests", "40",
        "--executor", "serial",
        "--out", str(out),
        "--offline-bound",
        "--bound-requests", "30",
        "--bound-time-limit", "2",  # the LP gives the certified bound; the MILP may not close
    ]  # fmt: skip
    assert main(argv) == 0
    data = json.loads((out / "sweep.json").read_text())
    assert len(data["runs"]) == 2 * 2 * 2 and len(data["aggregate"]) == 4
    rows = data["offline_bound"]["aggregate"]
    assert {r["policy"] for r in rows} == {"ksp-ff", "sp-ff"}
    assert all(r["certified"] and r["gap"]["mean"] >= -1e-9 for r in rows)
    report = (out / "report.md").read_text()
    assert "| case | load | policy | value ratio" in report and "Offline hindsight bound" in report
    for png in ("value_vs_load.png", "critical_blocking_vs_load.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*.tmp")), "temporary files left behind"


def test_cli_rejects_bad_input_without_writing(tmp_path: Path, capsys) -> None:
    out = tmp_path / "never"
    assert main(["evaluate", "--policies", "ksp-ff,nope", "--out", str(out)]) == 2
    assert "unknown policy 'nope'" in capsys.readouterr().err
    assert main(["evaluate", "--loads", "1,zero", "--out", str(out)]) == 2
    assert main(["evaluate", "--executor", "dask", "--cases", "case14", "--out", str(out)]) == 2
    assert main(["evaluate", "--scenario", "hurricane", "--out", str(out)]) == 2
    assert "unknown scenario 'hurricane'" in capsys.readouterr().err
    assert not out.exists()


def test_cli_scenario_reaches_the_env(tmp_path: Path) -> None:
    out = tmp_path / "storm"
    argv = ["evaluate", "--policies", "ksp-ff", "--cases", "case14", "--loads", "1.0",
            "--seeds", "0", "--requests", "300", "--executor", "serial", "--out", str(out),
            "--scenario", "storm"]  # fmt: skip
    assert main(argv) == 0
    data = json.loads((out / "sweep.json").read_text())
    assert data["grid"]["env_overrides"]["traffic"]["scenario"] == "storm"
    assert data["runs"][0]["metrics"]["faults"] >= 1  # the storm's faults happened
