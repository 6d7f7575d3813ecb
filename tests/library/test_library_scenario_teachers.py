"""Scenario-specific teachers in one library (multi-policy distillation): teacher i plays
scenario i, rows tagged ``<scenario>/<teacher>``."""

from __future__ import annotations

import numpy as np
import pytest

from pcnalloc.config import env_config
from pcnalloc.errors import ConfigError
from pcnalloc.library import LibraryError, LibraryReader
from pcnalloc.library.build import build_library

ENV = env_config(network={"case": "case14"}, traffic={"warm_start": False, "load": 2.0})


def _build(tmp_path, teachers, scenarios, **kw):
    return build_library(
        teachers,
        tmp_path,
        cases=["case14"],
        loads=[2.0],
        episodes=2,
        requests=40,
        explore=0.0,
        env=ENV,
        scenario=scenarios,
        **kw,
    )


def test_per_teacher_scenarios_tag_rows_and_change_them(tmp_path):
    _build(tmp_path, ["cspf-pe:4", "cspf-pe:4"], ["normal", "fiber-cut"])
    rd = LibraryReader(tmp_path)
    rows = rd.read_all()
    assert rd.sources == ["fiber-cut/cspf-pe:4", "normal/cspf-pe:4"]
    meta = rd.metadata["extra"]
    assert [t["scenario"] for t in meta["teachers"]] == ["normal", "fiber-cut"]
    assert meta["scenario"] == ["normal", "fiber-cut"]
    src = np.array(rows["source"])
    a = rows["reward"][src == "normal/cspf-pe:4"]
    b = rows["reward"][src == "fiber-cut/cspf-pe:4"]
    assert a.size == b.size == 80
    # same teacher, same seeds: only the scenario differs, and the rows show it (a builder
    # that ignored the per-teacher scenario would write identical rows)
    assert not np.array_equal(a, b)
    assert set(rows["episode_id"][src == "normal/cspf-pe:4"]).isdisjoint(
        rows["episode_id"][src == "fiber-cut/cspf-pe:4"]
    )


def test_one_scenario_for_all_keeps_plain_sources(tmp_path):
    _build(tmp_path, ["cspf-pe:4", "lcr:4"], "storm")
    assert LibraryReader(tmp_path).sources == ["cspf-pe:4", "lcr:4"]


@pytest.mark.parametrize(
    ("teachers", "scenarios", "err"),
    [
        (["cspf-pe:4", "lcr:4"], ["normal"], LibraryError),
        (["cspf-pe:4", "cspf-pe:4"], ["storm", "storm"], LibraryError),
        (["cspf-pe:4"], ["no-such-family"], ConfigError),
    ],
)
def test_bad_scenario_lists_are_refused_before_work(tmp_path, teachers, scenarios, err):
    with pytest.raises(err):
        _build(tmp_path / "lib", teachers, scenarios)
    assert not (tmp_path / "lib").exists()


def test_cli_scenario_list_pairs_with_teachers(tmp_path, capsys):
    from pcnalloc.cli import main

    out = str(tmp_path / "lib")
    args = ["library", "build", "--teacher", "cspf-pe:4,lcr:4", "--out", out]
    args += ["--executor", "serial", "--cases", "case14", "--loads", "2", "--episodes", "1"]
    assert main([*args, "--requests", "10", "--scenario", "normal,storm,mixed"]) == 2
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(err) == 1 and "3 scenarios for 2 teachers" in err[0]
    assert not (tmp_path / "lib").exists()
    assert main([*args, "--requests", "10", "--scenario", "normal,storm"]) == 0
    assert LibraryReader(out).sources == ["normal/cspf-pe:4", "storm/lcr:4"]
