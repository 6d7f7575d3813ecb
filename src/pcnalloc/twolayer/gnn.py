"""GATv2 Q network over the device–subchannel graph: per-device Q(PLC), Q(5G) (torch + PyG).

For a batch of epoch graphs (:class:`~pcnalloc.twolayer.graph.GraphBatch`, N device and M
subchannel nodes, E edges):

- device rows (N, F) → linear → ReLU → h_d (N, h); subchannel rows (M, S) → linear → ReLU
  → h_s (M, h);
- ``rounds`` rounds of bipartite message passing, each a pair of GATv2 layers
  (Brody et al. 2022) whose attention reads the edge features (E, D): device → subchannel
  (h_s ← h_s + ReLU(GATv2((h_d, h_s)))) — a subchannel learns who competes for it and how
  loaded they are — then subchannel → device over the reversed edges
  (h_d ← h_d + ReLU(GATv2((h_s, h_d)))) — a device learns how contested its usable
  subchannels are in each mode;
- head: [device row ‖ h_d] → MLP → (N, 2).

The layers are the backbone encoder's (:mod:`pcnalloc.nn.encoder`: ``GATv2Conv`` with edge
features, residual ReLU updates); no self-loops, since the graph is bipartite. Every weight is
shared over devices, subchannels and edges, so one network runs at any I, J and edge count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch_geometric.nn import GATv2Conv

from pcnalloc.access.features import N_FEATURES
from pcnalloc.twolayer.graph import EDGE_FEATURES, SUBCHANNEL_FEATURES, GraphBatch


@dataclass(frozen=True)
class TorchGraphBatch:
    """A :class:`GraphBatch` as tensors (the network's input)."""

    dev_x_NF: torch.Tensor
    sub_x_MS: torch.Tensor
    edge_index_2E: torch.Tensor
    edge_attr_ED: torch.Tensor

    @classmethod
    def of(cls, g: GraphBatch) -> TorchGraphBatch:
        return cls(
            torch.from_numpy(np.ascontiguousarray(g.dev_x_NF, np.float32)),
            torch.from_numpy(np.ascontiguousarray(g.sub_x_MS, np.float32)),
            torch.from_numpy(np.ascontiguousarray(g.edge_index_2E, np.int64)),
            torch.from_numpy(np.ascontiguousarray(g.edge_attr_ED, np.float32)),
        )


class GraphQNetwork(nn.Module):
    """Per-device mode Q-values from the device–subchannel graph (see the module docstring).

    Args:
        hidden: node embedding width h.
        rounds: device → subchannel → device rounds.
        q_hidden: hidden widths of the head.
        top_k: the graph's edges per device and mode (0 = all pairs); kept with the weights
            so that a loaded teacher builds the graph it was trained on.
    """

    reads_graph = True
    """Marks a network whose input is a graph batch rather than the device rows."""

    def __init__(
        self, *, hidden: int = 32, rounds: int = 1, q_hidden: tuple[int, ...] = (64,), top_k: int
    ) -> None:
        super().__init__()
        h, d = int(hidden), len(EDGE_FEATURES)
        self.top_k = int(top_k)
        self.dev_in = nn.Linear(N_FEATURES, h)
        self.sub_in = nn.Linear(len(SUBCHANNEL_FEATURES), h)
        self.to_sub = nn.ModuleList(
            GATv2Conv((h, h), h, edge_dim=d, add_self_loops=False) for _ in range(rounds)
        )
        self.to_dev = nn.ModuleList(
            GATv2Conv((h, h), h, edge_dim=d, add_self_loops=False) for _ in range(rounds)
        )
        layers: list[nn.Module] = []
        width = N_FEATURES + h
        for w in q_hidden:
            layers += [nn.Linear(width, int(w)), nn.ReLU()]
            width = int(w)
        layers.append(nn.Linear(width, 2))
        self.head = nn.Sequential(*layers)

    def forward(self, g: TorchGraphBatch | GraphBatch) -> torch.Tensor:
        """Q-values (N, 2), one row per device node of the batch, in node order."""
        if isinstance(g, GraphBatch):
            g = TorchGraphBatch.of(g)
        x = g.dev_x_NF
        h_d = torch.relu(self.dev_in(x))
        h_s = torch.relu(self.sub_in(g.sub_x_MS))
        ei, ea = g.edge_index_2E, g.edge_attr_ED
        rev = ei.flip(0)
        for to_sub, to_dev in zip(self.to_sub, self.to_dev, strict=True):
            h_s = h_s + torch.relu(to_sub((h_d, h_s), ei, ea))
            h_d = h_d + torch.relu(to_dev((h_s, h_d), rev, ea))
        return self.head(torch.cat([x, h_d], dim=1))


def graph_q_network(
    *, hidden: int, rounds: int, q_hidden: tuple[int, ...], top_k: int, seed: int
) -> GraphQNetwork:
    """A :class:`GraphQNetwork` whose initial weights depend on ``seed`` only.

    PyG's layers draw their initialisation from torch's global generator, so it is forked
    and seeded around the construction (the global state is left as it was).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return GraphQNetwork(hidden=hidden, rounds=rounds, q_hidden=q_hidden, top_k=top_k)


__all__ = ["GraphQNetwork", "TorchGraphBatch", "graph_q_network"]
