"""The device–subchannel graph of one access epoch, and batches of such graphs (numpy only).

A bipartite graph after the paper's system model: I device nodes, J = J1 + J2 subchannel
nodes, and an edge (i, j) for a device–subchannel pair. Its parts:

* **device nodes** ``(I, N_FEATURES)``: the device's row of
  :func:`~pcnalloc.access.features.device_features` (backlog, virtual queue, queuing delay,
  arrivals, expected rates, last mode, γ and the shared context), the same row the MLP teacher
  reads, so the graph teacher sees everything the MLP teacher does and the subchannels on top;
* **subchannel nodes** ``(J, len(SUBCHANNEL_FEATURES))``: PLC or 5G, the share of the I
  devices whose mean SINR on it reaches SINR_min (how contended it can be), and the mean rate
  it offers them;
* **edges** ``(2, E)`` (row 0 device, row 1 subchannel) with ``(E, len(EDGE_FEATURES))``
  features from the channel's mean SINR (no fading, EMI at its location μ,
  :meth:`~pcnalloc.access.channel.ChannelModel.mean_sinr`): the SINR margin over SINR_min,
  the OFDM rate at that SINR (eq. (1), 0 where the pair is unreliable), whether it is
  reliable (C7), and whether the subchannel is 5G.

``top_k = 0`` keeps every pair (I·J edges: 12,800 at I = 100, J = 128); ``top_k = k`` keeps,
per device, its k best subchannels *of each mode* by mean SINR (2·k edges per device, k
capped at J1 and J2), so both modes stay represented for the mode decision. The 5G path loss
does not depend on frequency, so a device's mean SINR is the same on all J2 5G subchannels;
those ties are broken by a per-device rotation (device i starts at subchannel i·k mod J2),
so that the k 5G edges of successive devices cover different subchannels instead of all
landing on the first k.

Everything but the device rows is fixed for an episode (the mean SINR is static per seed),
so :func:`static_graph` is computed once per episode and :func:`batch_graphs` joins B epochs
(their device rows and the static parts of their episodes) into one disjoint union by index
offsets. It is written here rather than with ``torch_geometric.data.Batch.from_data_list``
because every graph of a run has the same I, J and E: the union is one vectorised offset,
the replay stores only numpy arrays, and the ONNX-free edge side never needs PyG.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pcnalloc.access.features import N_FEATURES, device_features
from pcnalloc.access.rates import lin_to_db, ofdm_rate

if TYPE_CHECKING:
    from pcnalloc.access.model import AccessModel

SUBCHANNEL_FEATURES: tuple[str, ...] = (
    "is_plc",
    "is_5g",
    "reliable_device_share",
    "mean_rate_over_max",
)
"""Subchannel node columns, in order."""
EDGE_FEATURES: tuple[str, ...] = (
    "sinr_margin_db_over_10",
    "rate_over_max",
    "reliable",
    "is_5g",
)
"""Edge columns, in order."""
SINR_MARGIN_SCALE_DB = 10.0
"""The SINR margin (dB over SINR_min) is divided by this to keep the edge entries O(1)."""


@dataclass(frozen=True)
class StaticGraph:
    """The parts of the graph that are fixed for an episode.

    Attributes:
        n_devices: I; n_subchannels: J.
        sub_x_JS: subchannel node features, float32.
        edge_index_2E: int64, row 0 device index, row 1 subchannel index.
        edge_attr_ED: edge features, float32.
    """

    n_devices: int
    n_subchannels: int
    sub_x_JS: np.ndarray
    edge_index_2E: np.ndarray
    edge_attr_ED: np.ndarray

    @property
    def n_edges(self) -> int:
        return int(self.edge_index_2E.shape[1])


@dataclass(frozen=True)
class GraphBatch:
    """B epoch graphs as one disjoint union (device d of graph b is node b·I + d).

    Attributes:
        dev_x_NF: device node features (N = B·I), float32.
        sub_x_MS: subchannel node features (M = B·J), float32.
        edge_index_2E: int64 (device node, subchannel node) over the union.
        edge_attr_ED: float32 edge features.
        graphs: B.
    """

    dev_x_NF: np.ndarray
    sub_x_MS: np.ndarray
    edge_index_2E: np.ndarray
    edge_attr_ED: np.ndarray
    graphs: int


def _edges(sinr_db_IJ: np.ndarray, is_plc_J: np.ndarray, top_k: int) -> np.ndarray:
    """(2, E) device-major edge list: all pairs, or each device's top k per mode."""
    n, j = sinr_db_IJ.shape
    if top_k <= 0:
        dev, sub = np.meshgrid(np.arange(n), np.arange(j), indexing="ij")
        return np.stack([dev.ravel(), sub.ravel()]).astype(np.int64)
    parts = []
    for cols in (np.flatnonzero(is_plc_J), np.flatnonzero(~is_plc_J)):
        if cols.size == 0:
            continue
        k = min(top_k, cols.size)
        s = sinr_db_IJ[:, cols]
        # rotation key: device i prefers, among equal SINRs, the subchannels from i·k on
        rot = (np.arange(cols.size)[None, :] - np.arange(n)[:, None] * k) % cols.size
        order = np.lexsort((rot, -s), axis=1)[:, :k]  # last key is the primary one
        parts.append(np.stack([np.repeat(np.arange(n), k), cols[order].ravel()], axis=1))
    e = np.concatenate(parts, axis=0)
    e = e[np.lexsort((e[:, 1], e[:, 0]))]
    return e.T.astype(np.int64).copy()


def static_graph(model: AccessModel, top_k: int = 0) -> StaticGraph:
    """Subchannel nodes and edges of ``model``'s episode (see the module docstring)."""
    cfg = model.cfg
    mean = model.channel.mean_sinr()
    top = max(float(cfg.symbol_rate * cfg.max_bits_per_symbol), 1.0)
    reliable = mean >= model.sinr_min
    rate = ofdm_rate(mean, cfg.symbol_rate, cfg.max_bits_per_symbol) * reliable / top
    sinr_db = lin_to_db(np.maximum(mean, 1e-30))
    is_plc = np.asarray(model.is_plc, bool)
    ei = _edges(sinr_db, is_plc, top_k)
    d, s = ei
    attr = np.stack(
        [
            (sinr_db[d, s] - cfg.sinr_min_db) / SINR_MARGIN_SCALE_DB,
            rate[d, s],
            reliable[d, s].astype(float),
            (~is_plc[s]).astype(float),
        ],
        axis=1,
    )
    sub = np.stack(
        [is_plc.astype(float), (~is_plc).astype(float), reliable.mean(axis=0), rate.mean(axis=0)],
        axis=1,
    )
    return StaticGraph(
        n_devices=model.n,
        n_subchannels=model.j,
        sub_x_JS=sub.astype(np.float32),
        edge_index_2E=ei,
        edge_attr_ED=attr.astype(np.float32),
    )


def batch_graphs(statics: list[StaticGraph], dev_x: list[np.ndarray]) -> GraphBatch:
    """Join epochs (one static graph and one ``(I, N_FEATURES)`` device table each).

    Raises:
        ValueError: lists of different lengths, or graphs of different I, J or E.
    """
    if len(statics) != len(dev_x) or not statics:
        raise ValueError("batch_graphs needs one device table per static graph, at least one")
    g0 = statics[0]
    if any(
        (g.n_devices, g.n_subchannels, g.n_edges) != (g0.n_devices, g0.n_subchannels, g0.n_edges)
        for g in statics
    ):
        raise ValueError("batch_graphs needs graphs of one shape (same I, J and edge count)")
    b = len(statics)
    off = np.stack([np.arange(b) * g0.n_devices, np.arange(b) * g0.n_subchannels], axis=1)
    ei = np.stack([g.edge_index_2E for g in statics]) + off[:, :, None]  # (B, 2, E)
    return GraphBatch(
        dev_x_NF=np.concatenate(dev_x, axis=0).astype(np.float32, copy=False),
        sub_x_MS=np.concatenate([g.sub_x_JS for g in statics], axis=0),
        edge_index_2E=np.ascontiguousarray(ei.transpose(1, 0, 2).reshape(2, -1)),
        edge_attr_ED=np.concatenate([g.edge_attr_ED for g in statics], axis=0),
        graphs=b,
    )


def epoch_graph(model: AccessModel, top_k: int = 0) -> GraphBatch:
    """The graph of ``model``'s current epoch as a batch of one."""
    return batch_graphs([static_graph(model, top_k)], [device_features(model)])


__all__ = [
    "EDGE_FEATURES",
    "N_FEATURES",
    "SUBCHANNEL_FEATURES",
    "GraphBatch",
    "StaticGraph",
    "batch_graphs",
    "epoch_graph",
    "static_graph",
]
