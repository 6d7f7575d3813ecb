"""Collate observations of graphs of any size into one batch (PyG disjoint-union batching).

B observations with N_b sites and E_b links each become one disjoint graph with ΣN_b nodes
and 2·ΣE_b directed edges (each fiber link is added in both directions with the same link
features), a ``node_batch`` vector mapping each node to its observation — the layout of
:class:`torch_geometric.data.Batch` — plus dense per-observation tensors for history,
request, candidates and mask.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch


class ObsBatch(NamedTuple):
    """A batch of full observations as tensors.

    Attributes:
        x_NF: node features, (ΣN, F_node).
        edge_index_2E: directed edges, (2, 2·ΣE), node ids offset per observation.
        edge_attr_EF: link features of each directed edge, (2·ΣE, F_link).
        node_batch_N: observation index of each node, (ΣN,).
        history_BWH: last W requests, (B, W, H).
        request_BR: current request features, (B, R).
        candidates_BAF: per-action candidate features, (B, A, F_cand).
        mask_BA: valid actions, bool (B, A).
    """

    x_NF: torch.Tensor
    edge_index_2E: torch.Tensor
    edge_attr_EF: torch.Tensor
    node_batch_N: torch.Tensor
    history_BWH: torch.Tensor
    request_BR: torch.Tensor
    candidates_BAF: torch.Tensor
    mask_BA: torch.Tensor

    @property
    def num_graphs(self) -> int:
        return int(self.request_BR.shape[0])


def _t(x: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x)).to(dtype)


def collate(observations: Sequence[Mapping[str, Any]]) -> ObsBatch:
    """Batch full observations (``PowerCommEnv(observation="full")``) of any graph sizes."""
    nodes = [o["graph"]["node_feats"] for o in observations]
    links = [o["graph"]["link_feats"] for o in observations]
    n_nodes = np.array([n.shape[0] for n in nodes])
    offsets = np.concatenate([[0], np.cumsum(n_nodes)[:-1]])
    ei = np.concatenate(
        [o["graph"]["edge_index"] + off for o, off in zip(observations, offsets, strict=True)],
        axis=1,
    )
    ea = np.concatenate(links, axis=0)
    return ObsBatch(
        x_NF=_t(np.concatenate(nodes, axis=0)),
        edge_index_2E=_t(np.concatenate([ei, ei[::-1]], axis=1), torch.int64),
        edge_attr_EF=_t(np.concatenate([ea, ea], axis=0)),
        node_batch_N=_t(np.repeat(np.arange(len(nodes)), n_nodes), torch.int64),
        history_BWH=_t(np.stack([o["history"] for o in observations])),
        request_BR=_t(np.stack([o["request"] for o in observations])),
        candidates_BAF=_t(np.stack([o["candidates"] for o in observations])),
        mask_BA=_t(np.stack([o["action_mask"] for o in observations]), torch.bool),
    )


def collate_fixed(
    *,
    node_BNF: np.ndarray,
    link_BEF: np.ndarray,
    edge_index_2E: np.ndarray,
    history_BWH: np.ndarray,
    request_BR: np.ndarray,
    candidates_BAF: np.ndarray,
    mask_BA: np.ndarray,
) -> ObsBatch:
    """Vectorised :func:`collate` for B observations of one topology (replay batches)."""
    B, N, _ = node_BNF.shape
    E = link_BEF.shape[1]
    off = (np.arange(B) * N)[:, None, None]
    ei = (edge_index_2E[None, :, :] + off).transpose(1, 0, 2).reshape(2, B * E)
    ea = link_BEF.reshape(B * E, -1)
    return ObsBatch(
        x_NF=_t(node_BNF.reshape(B * N, -1)),
        edge_index_2E=_t(np.concatenate([ei, ei[::-1]], axis=1), torch.int64),
        edge_attr_EF=_t(np.concatenate([ea, ea], axis=0)),
        node_batch_N=_t(np.repeat(np.arange(B), N), torch.int64),
        history_BWH=_t(history_BWH),
        request_BR=_t(request_BR),
        candidates_BAF=_t(candidates_BAF),
        mask_BA=_t(mask_BA, torch.bool),
    )


def cat_batches(a: ObsBatch, b: ObsBatch) -> ObsBatch:
    """Concatenate two batches (one forward pass over both)."""
    n = a.x_NF.shape[0]
    return ObsBatch(
        x_NF=torch.cat([a.x_NF, b.x_NF]),
        edge_index_2E=torch.cat([a.edge_index_2E, b.edge_index_2E + n], dim=1),
        edge_attr_EF=torch.cat([a.edge_attr_EF, b.edge_attr_EF]),
        node_batch_N=torch.cat([a.node_batch_N, b.node_batch_N + a.num_graphs]),
        history_BWH=torch.cat([a.history_BWH, b.history_BWH]),
        request_BR=torch.cat([a.request_BR, b.request_BR]),
        candidates_BAF=torch.cat([a.candidates_BAF, b.candidates_BAF]),
        mask_BA=torch.cat([a.mask_BA, b.mask_BA]),
    )
