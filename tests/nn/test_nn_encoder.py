"""Encoder and Q head: shapes on mixed-size batches, PyG-compatible batching, masking."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch, Data

from pcnalloc.config import env_config
from pcnalloc.envs import PowerCommEnv
from pcnalloc.nn import MASK_VALUE, EncoderShape, QNetwork, collate, collate_fixed

SMALL = {"hidden": 16, "gnn_hidden": 8, "lstm_hidden": 8, "q_hidden": 16, "state_dim": 128}


@pytest.fixture(scope="module")
def mixed_obs(case_network):
    """Two observations each of case14 and case30 (different N and E)."""
    out = []
    for case in ("case14", "case30"):
        cfg = env_config(network={"case": case}, traffic={"warm_start": False})
        env = PowerCommEnv(cfg, network=case_network(case))
        o, _ = env.reset(seed=3)
        out.append(o)
        o, *_ = env.step(int(np.flatnonzero(o["action_mask"])[0]))
        out.append(o)
    return out


def test_state_is_128d_on_graphs_of_different_sizes(mixed_obs):
    sizes = {o["graph"]["node_feats"].shape[0] for o in mixed_obs}
    assert len(sizes) == 2
    net = QNetwork(EncoderShape.for_env(env_config(), **SMALL))
    state, q = net(collate(mixed_obs))
    assert state.shape == (4, 128)
    assert q.shape == (4, 13)
    assert torch.isfinite(state).all() and torch.isfinite(q).all()


def test_batching_matches_pyg_and_single_observations(mixed_obs):
    b = collate(mixed_obs)
    datas = []
    for o in mixed_obs:
        ei = torch.from_numpy(o["graph"]["edge_index"])
        datas.append(
            Data(
                x=torch.from_numpy(o["graph"]["node_feats"]),
                edge_index=torch.cat([ei, ei.flip(0)], dim=1),
            )
        )
    ref = Batch.from_data_list(datas)
    assert torch.equal(b.x_NF, ref.x)
    assert torch.equal(b.edge_index_2E.sort(dim=1).values, ref.edge_index.sort(dim=1).values)
    assert torch.equal(b.node_batch_N, ref.batch)
    net = QNetwork(EncoderShape.for_env(env_config(), **SMALL)).eval()
    with torch.no_grad():
        s_all, q_all = net(b)
        for i, o in enumerate(mixed_obs):
            s1, q1 = net(collate([o]))
            torch.testing.assert_close(s_all[i], s1[0], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(q_all[i], q1[0], atol=1e-5, rtol=1e-5)


def test_fixed_topology_collate_equals_general(mixed_obs):
    same = [mixed_obs[2], mixed_obs[3]]
    a = collate(same)
    b = collate_fixed(
        node_BNF=np.stack([o["graph"]["node_feats"] for o in same]),
        link_BEF=np.stack([o["graph"]["link_feats"] for o in same]),
        edge_index_2E=same[0]["graph"]["edge_index"],
        history_BWH=np.stack([o["history"] for o in same]),
        request_BR=np.stack([o["request"] for o in same]),
        candidates_BAF=np.stack([o["candidates"] for o in same]),
        mask_BA=np.stack([o["action_mask"] for o in same]),
    )
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)


def test_q_head_any_action_count_and_masking(mixed_obs):
    net = QNetwork(EncoderShape.for_env(env_config(), **SMALL))
    b = collate(mixed_obs[:2])
    q = net.masked_q(b)
    assert (q[~b.mask_BA] == MASK_VALUE).all()
    assert (q[b.mask_BA] > MASK_VALUE / 2).all()
    # The same weights score a different action count (K = 2 → A = 7).
    cfg2 = env_config(network={"case": "case14"}, k_paths=2, traffic={"warm_start": False})
    o2, _ = PowerCommEnv(cfg2).reset(seed=0)
    assert net(collate([o2]))[1].shape == (1, 7)
