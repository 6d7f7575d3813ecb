"""The encoder's GATv2 fast path computes GATv2Conv's forward and gradients on the same weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.nn import GATv2Conv

from pcnalloc.nn import encoder as enc
from pcnalloc.nn.encoder import attention_edges, fast_path_supported, gatv2_attend


def _graph(seed: int, graphs: int, nodes: int, links: int, link_dim: int):
    """A batch of random multi-graphs (both directions of each link, as collate builds)."""
    rng = np.random.default_rng(seed)
    ei = []
    for b in range(graphs):
        s = rng.integers(0, nodes, links)
        d = (s + rng.integers(1, nodes, links)) % nodes
        one = np.stack([s, d]) + b * nodes
        ei.append(np.concatenate([one, one[::-1]], axis=1))
    edge_index = torch.from_numpy(np.concatenate(ei, axis=1)).long()
    edge_attr = torch.from_numpy(rng.normal(size=(edge_index.shape[1], link_dim))).float()
    x = torch.from_numpy(rng.normal(size=(graphs * nodes, 16))).float()
    return x, edge_index, edge_attr


@pytest.mark.parametrize("heads", [1, 3])
@pytest.mark.parametrize("seed", [0, 1])
def test_fast_path_equals_gatv2conv(heads: int, seed: int) -> None:
    torch.manual_seed(seed)
    conv = GATv2Conv(16, 16, heads=heads, concat=False, edge_dim=5)
    assert fast_path_supported(conv)
    x, ei, ea = _graph(seed, graphs=7, nodes=11, links=15, link_dim=5)
    x_ref = x.clone().requires_grad_(True)
    ref = conv(x_ref, ei, ea)
    ref.square().sum().backward()
    g_ref = {n: p.grad.clone() for n, p in conv.named_parameters()}
    conv.zero_grad()
    x_fast = x.clone().requires_grad_(True)
    fast = gatv2_attend(conv, x_fast, *attention_edges(ei, ea, x.shape[0]))
    fast.square().sum().backward()
    torch.testing.assert_close(fast, ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(x_fast.grad, x_ref.grad, rtol=1e-5, atol=1e-6)
    for n, p in conv.named_parameters():
        torch.testing.assert_close(p.grad, g_ref[n], rtol=1e-5, atol=1e-5)


def test_a_path_without_the_self_loops_is_caught() -> None:
    """Planted fault: attending over the bare edges (no self-loops) is not GATv2Conv."""
    torch.manual_seed(0)
    conv = GATv2Conv(16, 16, heads=1, concat=False, edge_dim=5)
    x, ei, ea = _graph(0, graphs=3, nodes=9, links=12, link_dim=5)
    with torch.no_grad():
        ref = conv(x, ei, ea)
        wrong = gatv2_attend(conv, x, ei, ea)
    assert not torch.allclose(wrong, ref, atol=1e-4)


def test_unsupported_layers_fall_back_to_the_module() -> None:
    assert not fast_path_supported(GATv2Conv(8, 8, heads=2, concat=True, edge_dim=3))
    assert not fast_path_supported(GATv2Conv(8, 8, edge_dim=3, dropout=0.1, concat=False))
    assert not fast_path_supported(GATv2Conv(8, 8, edge_dim=3, share_weights=True, concat=False))
    assert not fast_path_supported(GATv2Conv(8, 8, concat=False))  # no link features


def test_state_encoder_same_with_and_without_the_fast_path(monkeypatch) -> None:
    shape = enc.EncoderShape(node_dim=16, link_dim=5, gnn_layers=2, heads=2)
    torch.manual_seed(0)
    model = enc.StateEncoder(shape)
    x, ei, ea = _graph(3, graphs=4, nodes=10, links=14, link_dim=5)
    B = 4
    from pcnalloc.nn.batching import ObsBatch

    batch = ObsBatch(
        x_NF=x,
        edge_index_2E=ei,
        edge_attr_EF=ea,
        node_batch_N=torch.arange(B).repeat_interleave(10),
        history_BWH=torch.randn(B, 5, shape.history_dim),
        request_BR=torch.randn(B, shape.request_dim),
        candidates_BAF=torch.randn(B, 3, shape.candidate_dim),
        mask_BA=torch.ones(B, 3, dtype=torch.bool),
    )
    with torch.no_grad():
        fast = model(batch)
        monkeypatch.setattr(enc, "fast_path_supported", lambda conv: False)
        slow = model(batch)
    torch.testing.assert_close(fast, slow, rtol=1e-6, atol=1e-6)
