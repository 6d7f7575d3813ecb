"""Teacher encoder: GNN topology + BiLSTM service + MLP resource embeddings → 128-d state.

DESIGN §5. For a batch of B observations (any mix of topologies, see
:mod:`pcnalloc.nn.batching`):

- **topology**: node features (ΣN, 7) → linear (ΣN, g) → ``gnn_layers`` residual GATv2
  layers whose attention reads the link features (2·ΣE, 10) (Brody et al. 2022) → per-graph
  mean ‖ max pooling (B, 2g) → MLP → (B, h);
- **service**: the last W requests (B, W, H) → bidirectional LSTM; final forward and
  backward hidden states (B, 2·lstm_hidden) → linear → (B, h);
- **resource**: request features (B, R) ‖ per-graph mean ‖ min ‖ max of link features
  (B, 3·10) (residual capacity, queueing, failure per pool) → MLP → (B, h);
- **fusion**: (B, 3h) → MLP → LayerNorm → joint state (B, 128).

Every weight is shared over nodes, links and time steps, so one encoder runs on any case.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch_geometric.nn import GATv2Conv, global_max_pool, global_mean_pool
from torch_geometric.utils import scatter

from pcnalloc.config import EnvConfig
from pcnalloc.envs.features import CANDIDATE_FEATURES
from pcnalloc.envs.observation import LINK_FEATURES, NODE_FEATURES, history_dim, request_dim
from pcnalloc.nn.batching import ObsBatch
from pcnalloc.traffic.catalog import load_catalog


@dataclass(frozen=True)
class EncoderShape:
    """Input widths and layer sizes of the encoder and Q head (stored in checkpoints).

    Attributes:
        node_dim: node feature width F_node.
        link_dim: link feature width F_link.
        history_dim: history row width H (classes + 7).
        request_dim: request feature width R.
        candidate_dim: per-action candidate feature width F_cand.
        hidden: width h of each of the three embeddings.
        gnn_hidden: node embedding width g inside the GNN.
        state_dim: joint state width (128).
        gnn_layers: GATv2 layers.
        heads: attention heads per GATv2 layer (averaged).
        lstm_hidden: hidden width per LSTM direction.
        q_hidden: hidden width of the Q head.
    """

    node_dim: int = len(NODE_FEATURES)
    link_dim: int = len(LINK_FEATURES)
    history_dim: int = 16
    request_dim: int = 27
    candidate_dim: int = len(CANDIDATE_FEATURES)
    hidden: int = 64
    gnn_hidden: int = 32
    state_dim: int = 128
    gnn_layers: int = 2
    heads: int = 1
    lstm_hidden: int = 32
    q_hidden: int = 128

    @classmethod
    def for_env(cls, cfg: EnvConfig, **sizes: int) -> EncoderShape:
        """Input widths read from the env config's catalog; layer sizes from ``sizes``."""
        cat = load_catalog(cfg.traffic.catalog, max_levels=cfg.grant_levels)
        return cls(history_dim=history_dim(cat), request_dim=request_dim(cat), **sizes)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _mlp(*widths: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(widths) - 1):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class StateEncoder(nn.Module):
    """Observation batch → joint state (B, ``state_dim``). See the module docstring."""

    def __init__(self, shape: EncoderShape) -> None:
        super().__init__()
        self.shape = shape
        h = shape.hidden
        g = shape.gnn_hidden
        self.node_in = nn.Linear(shape.node_dim, g)
        self.convs = nn.ModuleList(
            GATv2Conv(g, g, heads=shape.heads, concat=False, edge_dim=shape.link_dim)
            for _ in range(shape.gnn_layers)
        )
        self.topo_out = _mlp(2 * g, h, h)
        self.lstm = nn.LSTM(
            shape.history_dim, shape.lstm_hidden, batch_first=True, bidirectional=True
        )
        self.service_out = nn.Linear(2 * shape.lstm_hidden, h)
        self.resource = _mlp(shape.request_dim + 3 * shape.link_dim, h, h)
        self.fuse = _mlp(3 * h, shape.state_dim, shape.state_dim)
        self.norm = nn.LayerNorm(shape.state_dim)

    def forward(self, batch: ObsBatch) -> torch.Tensor:
        """Return the joint state, (B, state_dim)."""
        B = batch.num_graphs
        nb = batch.node_batch_N
        x = torch.relu(self.node_in(batch.x_NF))
        for conv in self.convs:
            x = x + torch.relu(conv(x, batch.edge_index_2E, batch.edge_attr_EF))
        pooled = torch.cat([global_mean_pool(x, nb, B), global_max_pool(x, nb, B)], dim=1)
        topo_BH = torch.relu(self.topo_out(pooled))

        _, (h_n, _) = self.lstm(batch.history_BWH)  # h_n: (2, B, lstm_hidden)
        service_BH = torch.relu(self.service_out(torch.cat([h_n[0], h_n[1]], dim=1)))

        eb = nb[batch.edge_index_2E[0]]
        ea = batch.edge_attr_EF
        link_pool = torch.cat(
            [
                scatter(ea, eb, 0, dim_size=B, reduce="mean"),
                scatter(ea, eb, 0, dim_size=B, reduce="min"),
                scatter(ea, eb, 0, dim_size=B, reduce="max"),
            ],
            dim=1,
        )
        resource_BH = torch.relu(self.resource(torch.cat([batch.request_BR, link_pool], dim=1)))
        fused = self.fuse(torch.cat([topo_BH, service_BH, resource_BH], dim=1))
        return self.norm(fused)
