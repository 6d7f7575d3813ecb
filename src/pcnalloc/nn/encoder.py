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

The GATv2 layers keep :class:`torch_geometric.nn.GATv2Conv`'s parameters, and its forward is
run by :func:`gatv2_attend` with the self-loops built once per batch for every layer
instead of on every layer's call, and without the generic message-passing dispatch: same
output bit for bit (``tests/nn/test_gatv2_fast.py``), a batch-64 Double DQN update on case30
1.14× faster and a short training run 1.23× (``benchmarks/bench_teacher_update.py``, load
2.2–3.7). The arithmetic on the (2·ΣE + ΣN) × g edge tensors, not the dispatch, is the rest.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import GATv2Conv, global_max_pool, global_mean_pool
from torch_geometric.utils import add_self_loops, remove_self_loops, scatter, softmax

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


def attention_edges(
    edge_index_2E: torch.Tensor, edge_attr_EF: torch.Tensor, num_nodes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The edges a GATv2 layer attends over: the graph's, then one self-loop per node.

    A self-loop's link features are the mean of the node's incoming edges' (GATv2Conv's
    ``fill_value="mean"``), as ``GATv2Conv`` builds them on each call; built once here, they
    serve every layer of a forward pass.
    """
    ei, ea = remove_self_loops(edge_index_2E, edge_attr_EF)
    ei, ea = add_self_loops(ei, ea, fill_value="mean", num_nodes=num_nodes)
    assert ea is not None
    return ei, ea


def fast_path_supported(conv: GATv2Conv) -> bool:
    """Whether :func:`gatv2_attend` computes ``conv``'s forward (else call the module)."""
    return bool(
        conv.add_self_loops
        and not conv.share_weights
        and conv.dropout == 0.0
        and conv.res is None
        and conv.lin_edge is not None
        and conv.fill_value == "mean"
        and not conv.concat
    )


def gatv2_attend(
    conv: GATv2Conv,
    x_NG: torch.Tensor,
    loops_edge_index_2E: torch.Tensor,
    loops_edge_attr_EF: torch.Tensor,
) -> torch.Tensor:
    """``conv(x, edge_index, edge_attr)`` on edges that already carry the self-loops.

    The arithmetic of ``GATv2Conv.forward`` (torch_geometric 2.8; heads averaged, no
    residual, no dropout, :func:`fast_path_supported`) on its own parameters, with the
    library's segment softmax, written as tensor calls: e_ij = W_l x_j + W_r x_i + W_e a_ij,
    α_ij = softmax_j(attᵀ LeakyReLU(e_ij)), out_i = mean_heads(Σ_j α_ij W_l x_j) + b.

    Args:
        conv: the layer whose weights are used.
        x_NG: node states, (N, in_channels).
        loops_edge_index_2E, loops_edge_attr_EF: :func:`attention_edges` of the batch.
    """
    H, C = conv.heads, conv.out_channels
    n = x_NG.shape[0]
    src, dst = loops_edge_index_2E[0], loops_edge_index_2E[1]
    x_l = conv.lin_l(x_NG).view(-1, H, C)
    x_r = conv.lin_r(x_NG).view(-1, H, C)
    x_j = x_l.index_select(0, src)
    e = x_j + x_r.index_select(0, dst) + conv.lin_edge(loops_edge_attr_EF).view(-1, H, C)
    alpha = (F.leaky_relu(e, conv.negative_slope) * conv.att).sum(dim=-1)
    alpha = softmax(alpha, dst, num_nodes=n)
    out = scatter(x_j * alpha.unsqueeze(-1), dst, 0, dim_size=n, reduce="sum")
    out = out.mean(dim=1)
    return out + conv.bias if conv.bias is not None else out


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
        loops: tuple[torch.Tensor, torch.Tensor] | None = None
        for conv in self.convs:
            if fast_path_supported(conv):
                if loops is None:
                    loops = attention_edges(batch.edge_index_2E, batch.edge_attr_EF, x.shape[0])
                h = gatv2_attend(conv, x, *loops)
            else:
                h = conv(x, batch.edge_index_2E, batch.edge_attr_EF)
            x = x + torch.relu(h)
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
