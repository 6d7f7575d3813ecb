"""PettingZoo conventions of the regional env: module-level ``env()`` / ``parallel_env()``
factories, ``state_space``, and PettingZoo's own API, state and seed tests on them."""

from __future__ import annotations

import numpy as np
import pytest
from pettingzoo import AECEnv, ParallelEnv
from pettingzoo.test import api_test, parallel_seed_test, seed_test
from pettingzoo.test.state_test import state_test

from pcnalloc.distributed import parallel_env as regional


@pytest.fixture(scope="module")
def cfg(small_pool_graph_file, make_config):
    return make_config(small_pool_graph_file, events="stress", episode_requests=120)


@pytest.mark.filterwarnings("ignore:Observation:UserWarning")
def test_factories_build_both_forms(cfg) -> None:
    par = regional.parallel_env(config=cfg, staleness_s=30.0)
    assert isinstance(par, ParallelEnv) and isinstance(par, regional.RegionalParallelEnv)
    assert par.coord.cfg.staleness_s == 30.0
    aec = regional.env(config=cfg)
    assert isinstance(aec, AECEnv)
    assert aec.unwrapped.possible_agents == par.possible_agents
    api_test(aec, num_cycles=20)


def test_state_space_holds_every_state(cfg) -> None:
    par = regional.parallel_env(config=cfg)
    E, S = par.env.net.n_links, len(par.env.net.slices)
    assert par.state_space.shape == (E * S,) and par.state_space.dtype == np.float32
    state_test(regional.env(config=cfg), regional.parallel_env(config=cfg), num_cycles=20)
    obs, _ = par.reset(seed=0)
    while par.agents:
        s = par.state()
        assert par.state_space.contains(s), s.max()
        obs, *_ = par.step({a: int(np.flatnonzero(o["action_mask"])[0]) for a, o in obs.items()})
    assert s.max() > 0  # pools did fill, so the bound was exercised
    # planted fault: an over-full pool is outside the space
    assert not par.state_space.contains(np.full(E * S, 1.5, dtype=np.float32))


def test_seeded_runs_repeat(cfg) -> None:
    seed_test(lambda: regional.env(config=cfg), num_cycles=20)
    parallel_seed_test(lambda: regional.parallel_env(config=cfg), num_cycles=20)
