"""Regional agents: link ownership, live views equal the centralised policy, and two regions
contending for one bottleneck link on stale views never over-commit it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pcnalloc.baselines import make_policy
from pcnalloc.config import env_config
from pcnalloc.distributed.regions import (
    RegionalCoordinator,
    RegionConfig,
    distributed_gap,
    link_owner,
)
from pcnalloc.envs import PowerCommEnv

CALM = {"faults_per_hour": 0.0, "fiber_cuts_per_hour": 0.0}


@pytest.fixture(scope="module")
def contention_graph(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two regions; every flow from the east to control center C crosses X–C and X–Y, which
    the west owns (lower-index end X or C), so the east sees them only through summaries."""
    sites = [("C", "west"), ("X", "west"), ("W1", "west"), ("Y", "east"), ("E1", "east")]
    sites.append(("E2", "east"))
    links = [("C", "X"), ("X", "W1"), ("X", "Y"), ("Y", "E1"), ("Y", "E2"), ("E1", "E2")]
    data = {
        "name": "contend",
        "sites": [{"id": s, "kv": 110.0, "region": r} for s, r in sites],
        "links": [{"a": a, "b": b, "length_km": 20.0, "capacity_mbps": 20.0} for a, b in links],
        "control_centers": ["C", "Y"],
    }
    p = tmp_path_factory.mktemp("graphs") / "contend.json"
    p.write_text(json.dumps(data))
    return p


def _coordinated(case: Path, staleness_s: float, requests: int, load: float = 1.5):
    cfg = env_config(
        network={"case": str(case)},
        traffic={"load": load, "events": CALM},
        episode_requests=requests,
    )
    env = PowerCommEnv(cfg, observation="compact")
    coord = RegionalCoordinator(env, RegionConfig(staleness_s=staleness_s))
    return env, coord, [make_policy("ksp-ff") for _ in range(coord.n_regions)]


def test_link_owner_is_region_of_lower_index_end(contention_graph: Path) -> None:
    env, coord, _ = _coordinated(contention_graph, 0.0, 10)
    net = env.net
    expected = [net.site_region[min(a, b)] for a, b in net.link_ends.tolist()]
    assert link_owner(net).tolist() == expected
    x_y = next(i for i, (a, b) in enumerate(net.link_ends.tolist()) if {a, b} == {1, 3})
    assert coord.owner_E[x_y] == net.site_region[1] != net.site_region[3]


def test_contending_regions_never_overcommit(contention_graph: Path) -> None:
    env, coord, policies = _coordinated(contention_graph, 60.0, 600)
    coord.reset(seed=0)
    cap = env.state.cap_ES1
    outcomes: dict[str, int] = {}
    for _ in range(600):
        *_, info = coord.decide(policies)
        outcomes[info["outcome"]] = outcomes.get(info["outcome"], 0) + 1
        env.state.check_invariants()  # pools equal the flow table, 0 ≤ used ≤ capacity
        assert (env.state.used_ES1 <= cap).all()
    s = coord.summary()
    west = env.net.site_region[0]
    assert s["conflicts"] > 0, "stale views should have collided on the bottleneck"
    assert s["conflict_capacity"] == s["conflicts_by_region"][west] > 0
    assert s["conflicts_by_region"][1 - west] == 0  # the east owns no contended link
    assert outcomes.get("refused", 0) == 0 and s["masked_proposals"] == 0
    assert s["attempts"] == s["decisions"] + s["conflicts"]
    assert outcomes.get("accepted", 0) > 100


def test_live_views_reproduce_the_centralised_policy(tiny_graph_file: Path) -> None:
    env, coord, policies = _coordinated(tiny_graph_file, 0.0, 300, load=1.2)
    coord.reset(seed=5)
    dist = [coord.decide(policies)[4]["outcome"] for _ in range(300)]
    central_env = PowerCommEnv(env.cfg, observation="compact")
    pol = make_policy("ksp-ff")
    obs, _ = central_env.reset(seed=5)
    central = []
    for _ in range(300):
        obs, _, _, _, info = central_env.step(pol.act(obs))
        central.append(info["outcome"])
    assert dist == central
    assert coord.summary()["conflicts"] == 0


def test_gap_table_is_zero_at_zero_staleness(tiny_graph_file: Path) -> None:
    cfg = env_config(network={"case": str(tiny_graph_file)}, traffic={"load": 1.5})
    rows = distributed_gap("ksp-ff", cfg, staleness_s=[0.0, 120.0], seeds=[0], requests=300)
    assert [r["staleness_s"] for r in rows] == [0.0, 120.0]
    assert rows[0]["value_gap"] == 0.0 and rows[0]["conflicts"] == 0.0
    assert rows[1]["value_ratio_central"] == rows[0]["value_ratio_central"]
    assert np.isfinite(rows[1]["value_gap"]) and rows[1]["conflicts_per_1k"] >= 0
