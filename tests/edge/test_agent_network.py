"""An edge agent runs from its artifact alone: the network ships inside it, no torch or pandapower.

A fresh interpreter that refuses to import torch and pandapower loads the artifact, builds its
own live state on the artifact's network and decides; its actions and compact vectors equal
those of an agent given the original network in this process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from pcnalloc.config import EnvConfig
from pcnalloc.edge import keys
from pcnalloc.edge.agent import EdgeAgent, LocalState
from pcnalloc.envs import PowerCommEnv
from pcnalloc.envs.observation import History
from pcnalloc.envs.state import NetworkState
from pcnalloc.export.compile import compile_student
from pcnalloc.traffic.generator import Request

EDGE_ONLY = """
import hashlib, json, sys

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "pandapower"):
            raise ImportError(f"blocked import of {name}")
        return None

sys.meta_path.insert(0, Refuse())
from pcnalloc.config import EnvConfig
from pcnalloc.edge.agent import EdgeAgent
from tests_edge_requests import play

cfg = EnvConfig.model_validate_json(sys.argv[1])
agent = EdgeAgent(sys.argv[2], sys.argv[3], cfg)
out = list(play(agent, agent.network, cfg))
try:  # the blocker itself must bite (else the test proves nothing)
    import pandapower  # noqa: F401
    out.append("blocker-off")
except ImportError:
    out.append("blocker-on")
print(json.dumps(out))
"""

PLAY = '''
import hashlib
import numpy as np
from pcnalloc.edge.agent import LocalState
from pcnalloc.envs.observation import History
from pcnalloc.envs.state import NetworkState
from pcnalloc.traffic.generator import Request


def play(agent, net, cfg, n=60):
    """Decide n seeded requests on a fresh state of ``net``; (actions, digest of vectors)."""
    state = NetworkState(net)
    hist = History(cfg.history, agent.catalog)
    em = np.zeros(net.n_regions, dtype=np.int64)
    rng = np.random.default_rng(5)
    h = hashlib.sha256()
    actions = []
    for i in range(n):
        src, dst = (int(x) for x in rng.choice(net.n_sites, 2, replace=False))
        cls = int(rng.integers(agent.catalog.n_classes))
        req = Request(i, 30.0 * i, cls, src, dst, float(rng.exponential(300.0)))
        em[:] = i % 7 == 0
        d = agent.decide(LocalState(state, req, em, hist))
        actions.append(int(d.action))
        h.update(agent.compact.tobytes())
        hist.push(req, 1.0, d.action != cfg.n_actions - 1)
    return actions, h.hexdigest()
'''


@pytest.fixture(scope="module")
def cfg(make_config: Callable[..., EnvConfig], small_pool_graph_file: Path) -> EnvConfig:
    return make_config(small_pool_graph_file, events="stress", traffic={"load": 1.5})


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory, cfg: EnvConfig) -> tuple[Path, Path, object]:
    env = PowerCommEnv(cfg, observation="compact")
    obs, _ = env.reset(seed=0)
    rows = []
    for _ in range(64):
        rows.append(obs["compact"])
        obs, *_ = env.step(int(np.flatnonzero(obs["action_mask"])[0]))
    D = rows[0].shape[0]
    g = torch.Generator().manual_seed(1)
    m = torch.nn.Sequential(
        torch.nn.Linear(D, 24), torch.nn.ReLU(), torch.nn.Linear(24, cfg.n_actions)
    )
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    m.input_key = "compact"
    tmp = tmp_path_factory.mktemp("shipped")
    priv, pub = keys.save_keypair(tmp / "keys", "edge")
    out = tmp / "artifact"
    compile_student(
        m.eval(), np.stack(rows), env_config=cfg, private_key=priv, out_dir=out, network=env.net
    )
    (tmp / "tests_edge_requests.py").write_text(PLAY)
    return out, pub, env.net


def test_agent_runs_from_the_artifact_alone(cfg: EnvConfig, shipped: tuple) -> None:
    art, pub, net = shipped
    sys.path.insert(0, str(art.parent))
    try:
        from tests_edge_requests import play  # type: ignore[import-not-found]

        here = play(EdgeAgent(art, pub, cfg, network=net), net, cfg)
    finally:
        sys.path.remove(str(art.parent))
    res = subprocess.run(
        [sys.executable, "-c", EDGE_ONLY, cfg.model_dump_json(), str(art), str(pub)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=art.parent,
        env={**os.environ, "PYTHONPATH": str(art.parent), "PCNALLOC_CACHE_DIR": "off"},
    )
    assert res.returncode == 0, res.stderr[-2000:]
    actions, digest, blocker = json.loads(res.stdout.strip().splitlines()[-1])
    assert blocker == "blocker-on"
    assert actions == here[0] and digest == here[1]
    assert len(set(actions)) > 1  # the requests really exercised the agent


def test_agent_without_network_uses_the_artifacts(cfg: EnvConfig, shipped: tuple) -> None:
    art, pub, net = shipped
    agent = EdgeAgent(art, pub, cfg)
    assert agent.network is not None and agent.network.name == net.name
    np.testing.assert_array_equal(agent.network.pool_capacity_kbps, net.pool_capacity_kbps)
    state = NetworkState(agent.network)
    req = Request(0, 5.0, 0, 0, 1, 60.0)
    em = np.zeros(agent.network.n_regions, dtype=np.int64)
    d = agent.decide(LocalState(state, req, em, History(cfg.history, agent.catalog)))
    assert 0 <= d.action < cfg.n_actions
