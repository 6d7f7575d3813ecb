"""RegionalParallelEnv: PettingZoo's parallel API test, and the owner/no-op convention."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test

from pcnalloc.distributed.parallel_env import RegionalParallelEnv


def test_defaults_pass_parallel_api_test() -> None:
    env = RegionalParallelEnv()
    assert env.env.net.name == "case30"
    assert env.possible_agents == [f"region_{r}" for r in range(env.env.net.n_regions)]
    parallel_api_test(env, num_cycles=60)


@pytest.fixture
def two_region_graph(tmp_path: Path) -> Path:
    """West owns the links to control center C; east traffic reaches C only across them."""
    sites = {"C": "west", "X": "west", "W1": "west", "Y": "east", "E1": "east", "E2": "east"}
    links = [("C", "X"), ("X", "W1"), ("X", "Y"), ("Y", "E1"), ("Y", "E2"), ("E1", "E2")]
    data = {
        "sites": [{"id": s, "kv": 110.0, "region": r} for s, r in sites.items()],
        "links": [{"a": a, "b": b, "length_km": 20.0, "capacity_mbps": 20.0} for a, b in links],
        "control_centers": ["C", "Y"],
    }
    p = tmp_path / "two_regions.json"
    p.write_text(json.dumps(data))
    return p


def test_owner_acts_others_noop_and_retries_on_conflict(two_region_graph: Path) -> None:
    env = RegionalParallelEnv(
        {
            "network": {"case": str(two_region_graph)},
            "traffic": {
                "load": 1.5,
                "events": {"faults_per_hour": 0.0, "fiber_cuts_per_hour": 0.0},
            },
            "episode_requests": 400,
        },
        staleness_s=60.0,
    )
    parallel_api_test(env, num_cycles=50)
    obs, infos = env.reset(seed=1)
    rng = np.random.default_rng(0)
    reject = env.env.reject_action
    retries = decided = 0
    while env.agents:
        owner = env.owner_agent
        assert sum(infos[a]["owner"] for a in env.agents) == 1 and infos[owner]["owner"]
        for a in env.agents:
            if a != owner:
                assert obs[a]["action_mask"].tolist() == [0] * reject + [1]
                assert not obs[a]["observation"].any()
        valid = np.flatnonzero(obs[owner]["action_mask"])
        actions = {a: int(rng.integers(reject + 1)) for a in env.agents}  # ignored
        actions[owner] = int(valid[0])  # first-fit on the owner's own view
        obs, rewards, _, truncs, infos = env.step(actions)
        env.env.state.check_invariants()
        if next(iter(infos.values()))["retry"]:
            retries += 1
            assert all(r == 0.0 for r in rewards.values())
        else:
            decided += 1
            assert len(set(rewards.values())) == 1  # shared team reward
    assert decided == 400 and all(truncs.values())
    assert retries == env.coord.summary()["conflicts"] > 0
