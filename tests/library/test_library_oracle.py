"""The hindsight-MILP oracle teacher: its rows are the optimum's actions at arrival."""

from __future__ import annotations

import numpy as np
import pytest

from pcnalloc.baselines.offline import record_window, solve_window, window_config
from pcnalloc.config import env_config
from pcnalloc.library import LibraryError, LibraryReader
from pcnalloc.library.build import build_library, resolve_teacher
from pcnalloc.library.oracle import parse_oracle_spec

ENV = env_config(network={"case": "case14"}, traffic={"warm_start": False, "load": 2.0})
N = 30


def _optimum(seed: int) -> list[int]:
    w = record_window(window_config(ENV, k_paths=4, episode_requests=N), seed, N)
    return solve_window(w, time_limit_s=20.0)["actions"]


def test_oracle_rows_are_the_optimum_actions(tmp_path):
    spec = "milp:4@time_limit=20"  # a cap only: these windows solve to optimality in < 1 s
    build_library(
        spec, tmp_path, cases=["case14"], loads=[2.0], episodes=1, requests=N, explore=0.0, env=ENV
    )
    rd = LibraryReader(tmp_path)
    rows = rd.read_all()
    assert rd.sources == [spec] and rows["action"].shape == (N,)
    assert rd.metadata["extra"]["teachers"][0]["kind"] == "oracle"
    seed = int(rows["seed"][0])
    opt = _optimum(seed)
    valid = rows["action_mask"][np.arange(N), opt] > 0
    assert valid.mean() > 0.5  # most of the optimum's choices are valid online
    assert rows["action"][valid].tolist() == np.asarray(opt)[valid].tolist()
    # planted fault: another episode's optimum is not these rows
    assert _optimum(seed + 1) != rows["action"].tolist()
    q = rows["q_values"]
    assert (q.argmax(1) == rows["action"]).all()  # one-hot targets at the played action


@pytest.mark.parametrize("bad", ["milp:x", "milp@foo=1", "milp@time_limit=-1", "milp:0"])
def test_bad_oracle_specs_are_library_errors(bad):
    with pytest.raises(LibraryError):
        resolve_teacher(bad)


def test_oracle_spec_and_env():
    assert parse_oracle_spec("milp-oracle:8@time_limit=3") == {"k": 8, "time_limit": 3.0}
    t = resolve_teacher("milp", ENV)
    assert t.kind == "oracle" and t.env.k_paths == 4
    ev = t.env.traffic.events
    assert ev.faults_per_hour == 0 and ev.fiber_cuts_per_hour == 0  # the bound's assumption


def test_oracle_takes_no_scenario(tmp_path):
    with pytest.raises(LibraryError, match="no scenario"):
        build_library(
            "milp",
            tmp_path / "x",
            cases=["case14"],
            loads=[2.0],
            episodes=1,
            requests=5,
            env=ENV,
            scenario="storm",
        )
    assert not (tmp_path / "x").exists()
