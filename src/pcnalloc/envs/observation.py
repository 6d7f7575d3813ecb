"""Observation spaces and builders: graph, history, request, candidates, mask, compact vector.

Feature scaling keeps every entry within [-10, 10] (documented per block below), so the
spaces are bounded and the same teacher works on any topology size. Block order and columns
are declared in :mod:`pcnalloc.envs.layout`; the compact vector is written in place, block by
block at the layout's offsets, by one compiled call
(:meth:`ObservationBuilder.write_compact`) that the env and the edge agent share.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from numba import njit

from pcnalloc.config import SLICES, EnvConfig
from pcnalloc.envs.features import Evaluation, _write_compact
from pcnalloc.envs.layout import (
    CANDIDATE_FEATURES,
    HISTORY_STATS,
    LINK_FEATURES,
    NETWORK_STATS,
    NODE_FEATURES,
    FeatureLayout,
    compact_layout,
    request_columns,
)
from pcnalloc.envs.state import NetworkState
from pcnalloc.traffic.catalog import ZONES, Catalog
from pcnalloc.traffic.generator import KINDS, Request

LIM = 10.0


def layout_for(catalog: Catalog, cfg: EnvConfig) -> FeatureLayout:
    """The compact vector's layout for this catalog and env config."""
    return compact_layout(catalog.names, cfg.n_actions)


def request_dim(catalog: Catalog) -> int:
    """Length of the request feature vector for this catalog."""
    return len(request_columns(catalog.names))


def history_dim(catalog: Catalog) -> int:
    """Columns of the recent-history table (one per class plus 7 summary columns)."""
    return catalog.n_classes + 7


def compact_dim(catalog: Catalog, cfg: EnvConfig) -> int:
    """Length of the compact (flat) observation vector, from the declared layout."""
    return layout_for(catalog, cfg).size


def _box(*shape: int) -> gym.spaces.Box:
    return gym.spaces.Box(-LIM, LIM, shape=shape, dtype=np.float32)


def make_space(
    n_sites: int, n_links: int, catalog: Catalog, cfg: EnvConfig, mode: str
) -> gym.spaces.Dict:
    """The Dict observation space; ``mode='compact'`` omits graph and history."""
    A = cfg.n_actions
    parts: dict[str, gym.spaces.Space] = {
        "request": _box(request_dim(catalog)),
        "candidates": _box(A, len(CANDIDATE_FEATURES)),
        "action_mask": gym.spaces.MultiBinary(A),
        "compact": _box(compact_dim(catalog, cfg)),
    }
    if mode == "full":
        parts["graph"] = gym.spaces.Dict(
            {
                "node_feats": _box(n_sites, len(NODE_FEATURES)),
                "link_feats": _box(n_links, len(LINK_FEATURES)),
                "edge_index": gym.spaces.Box(0, n_sites - 1, shape=(2, n_links), dtype=np.int64),
            }
        )
        parts["history"] = _box(cfg.history, history_dim(catalog))
    return gym.spaces.Dict(parts)


class History:
    """Ring buffer of the last W requests and their outcomes, shape (W, C + 7), oldest first.

    Per-row summary values are stored at push time so :meth:`stats` is one reduction.
    """

    def __init__(self, w: int, catalog: Catalog) -> None:
        self.w = w
        self.catalog = catalog
        self._rows = np.zeros((w, history_dim(catalog)), dtype=np.float32)
        self._stats = np.zeros((w, len(HISTORY_STATS)), dtype=np.float32)
        C = catalog.n_classes
        self._static = np.zeros((C, history_dim(catalog)), dtype=np.float32)
        self._static[np.arange(C), np.arange(C)] = 1.0
        self._static[:, C] = np.log10(catalog.bandwidth_kbps_C / 1000.0) / 2.0
        self._static[:, C + 1] = np.log10(catalog.max_latency_ms_C) / 3.0
        self._static[:, C + 6] = 1.0  # row present
        self._crit = (catalog.priority_C <= 1).astype(np.float32)
        self.n = 0
        self._head = 0
        self.last_t: float | None = None

    def reset(self) -> None:
        self._rows[:] = 0.0
        self._stats[:] = 0.0
        self.n = 0
        self._head = 0
        self.last_t = None

    @property
    def rows(self) -> np.ndarray:
        """The W rows, oldest first (zero rows before the first W requests)."""
        return np.roll(self._rows, -self._head, axis=0)

    def push(self, req: Request, grant: float, accepted: bool) -> None:
        C = self.catalog.n_classes
        row = self._rows[self._head]
        row[:] = self._static[req.cls]
        gap = 0.0 if self.last_t is None else max(req.time_s - self.last_t, 0.0)
        log_gap = np.log10(gap + 1e-3) / 3.0
        g = grant if accepted else 0.0
        row[C + 2] = g
        row[C + 3] = 0.0 if accepted else 1.0
        row[C + 4] = log_gap
        row[C + 5] = float(req.kind == 2)
        st = self._stats[self._head]
        st[0] = float(accepted)
        st[1] = g
        st[2] = float(req.kind == 2)
        st[3] = self._crit[req.cls]
        st[4] = log_gap
        self.last_t = req.time_s
        self._head = (self._head + 1) % self.w
        self.n = min(self.n + 1, self.w)

    def stats(self) -> np.ndarray:
        """Means over the rows present of (accept, grant, restoration, critical, log gap)."""
        if self.n == 0:
            return np.zeros(len(HISTORY_STATS), dtype=np.float32)
        return self._stats.sum(axis=0) / np.float32(self.n)


@njit(cache=True, nogil=True)
def _util_stats(used_ES: np.ndarray, cap_ES: np.ndarray, out: np.ndarray) -> None:
    """Mean and max utilisation per slice over real links (sentinel row excluded)."""
    E = used_ES.shape[0] - 1
    S = used_ES.shape[1]
    for s in range(S):
        tot = 0.0
        mx = 0.0
        for e in range(E):
            u = used_ES[e, s] / cap_ES[e, s]
            tot += u
            mx = max(mx, u)
        out[s] = tot / E
        out[S + s] = mx


class ObservationBuilder:
    """Builds observations from the live state; static per-network parts are prepared once."""

    def __init__(self, state: NetworkState, catalog: Catalog, cfg: EnvConfig, mode: str) -> None:
        net = state.net
        self.state, self.catalog, self.cfg, self.mode = state, catalog, cfg, mode
        self.history = History(cfg.history, catalog)
        deg = net.degree().astype(np.float32)
        self._deg = np.maximum(deg, 1.0)
        static = np.zeros((net.n_sites, len(NODE_FEATURES)), dtype=np.float32)
        static[list(net.control_centers), 1] = 1.0
        static[net.edge_controllers, 2] = 1.0
        static[:, 3] = net.site_region / max(net.n_regions - 1, 1)
        static[:, 4] = deg / deg.max()
        self._node_static = static
        self._edge_index = net.link_ends.T.astype(np.int64).copy()
        self._cap_log = np.log10(net.link_capacity_mbps / 1000.0).astype(np.float32)
        self._prop = np.minimum(net.link_prop_ms, LIM).astype(np.float32)
        self._ends = net.link_ends
        self._region = net.site_region
        self._req_static = self._request_static()
        self._net_stats = np.zeros(len(NETWORK_STATS), dtype=np.float32)
        self.layout = layout_for(catalog, cfg)
        lay = self.layout
        self.compact_positions = np.array(
            [
                lay.index("request", c)
                for c in (
                    "log_holding",
                    f"kind={KINDS[0]}",
                    "emergency_at_src",
                    "src_is_control_center",
                    "dst_is_control_center",
                    "time_of_day_sin",
                    "time_of_day_cos",
                )
            ]
            + [lay.block(b).offset for b in ("candidates", "history_stats", "network_stats")],
            dtype=np.int64,
        )
        """Positions :func:`~pcnalloc.envs.features._write_compact` writes at (from the
        layout): request columns, then the candidate/history/network block offsets."""
        self._req_slice = lay.slice("request")
        self._no_feats = np.empty((0, len(CANDIDATE_FEATURES)), dtype=np.float32)
        self._no_req = np.empty(0, dtype=np.float32)
        self._cc = frozenset(int(c) for c in net.control_centers)

    def _request_static(self) -> np.ndarray:
        """Class-dependent part of the request features, shape (C, request_dim), by column."""
        cat = self.catalog
        C = cat.n_classes
        cols = request_columns(cat.names)
        col = cols.index
        out = np.zeros((C, len(cols)), dtype=np.float32)
        out[np.arange(C), [col(f"class={n}") for n in cat.names]] = 1.0
        out[:, col("log_size")] = np.log10(cat.bandwidth_kbps_C / 1000.0) / 2.0
        out[:, col("log_bound")] = np.log10(cat.max_latency_ms_C) / 3.0
        out[:, col("priority")] = cat.priority_C / 7.0
        out[:, col("value")] = cat.value_C / 10.0
        zone0 = col(f"zone={ZONES[0]}")
        out[np.arange(C), zone0 + cat.zone_C] = 1.0
        out[:, col("protected")] = cat.protected_C
        return out

    def write_compact(
        self,
        x_D: np.ndarray,
        req: Request,
        feats_AF: np.ndarray | None,
        emergency_R: np.ndarray,
        history: History | None = None,
        request_out: np.ndarray | None = None,
    ) -> np.ndarray:
        """Write the compact vector of ``req`` into ``x_D`` (float32 (D,)) in place.

        Args:
            feats_AF: the candidate table to copy in, or None when it was written in place
                (a view of ``x_D``'s candidate block).
            history: the history the statistics come from (default: the builder's own).
            request_out: also receives the request block before clipping (the ``request``
                observation).

        Returns:
            ``x_D``.
        """
        st = self.state
        h = history if history is not None else self.history
        t = 2 * np.pi * ((req.time_s / 3600.0) % 24.0) / 24.0  # as numpy computes it
        _write_compact(
            x_D,
            self._req_static,
            int(req.cls),
            self.compact_positions,
            int(req.kind),
            np.log10(max(req.holding_s, 1.0)) / 5.0,
            emergency_R,
            int(self._region[req.src]),
            req.src in self._cc,
            req.dst in self._cc,
            np.sin(t),
            np.cos(t),
            self._no_feats if feats_AF is None else feats_AF,
            h._stats,
            h.n,
            st.used_ES1,
            st.cap_ES1,
            st.n_failed,
            st.net.n_links,
            LIM,
            self._no_req if request_out is None else request_out,
        )
        return x_D

    def request_feats(self, req: Request, emergency_R: np.ndarray) -> np.ndarray:
        """Request features (see :func:`request_dim`): class one-hot, log size, log bound,
        priority, value, zone one-hot, protection, log holding, kind one-hot, emergency at
        the source, source/destination is a control center, time of day (sin, cos)."""
        out = self._req_static[req.cls].copy()
        i = self.catalog.n_classes + 9
        out[i] = np.log10(max(req.holding_s, 1.0)) / 5.0
        i += 1
        out[i + req.kind] = 1.0
        i += len(KINDS)
        cc = self.state.net.control_centers
        out[i] = emergency_R[self._region[req.src]] > 0
        out[i + 1] = req.src in cc
        out[i + 2] = req.dst in cc
        h = 2 * np.pi * ((req.time_s / 3600.0) % 24.0) / 24.0
        out[i + 3] = np.sin(h)
        out[i + 4] = np.cos(h)
        return out

    def network_stats(self, emergency_R: np.ndarray) -> np.ndarray:
        """Mean and max utilisation per slice, failed-link share, emergency anywhere."""
        out = np.empty(len(NETWORK_STATS))
        _util_stats(self.state.used_ES1, self.state.cap_ES1, out)
        out[6] = self.state.n_failed / self.state.net.n_links
        out[7] = emergency_R.any()
        return out.astype(np.float32)

    def graph(self, emergency_R: np.ndarray) -> dict[str, np.ndarray]:
        st = self.state
        node = self._node_static.copy()
        node[:, 0] = st.trust_N1[:-1]
        node[:, 5] = emergency_R[self._region] > 0
        failed = st.failed_E1[:-1]
        node[:, 6] = np.bincount(self._ends[failed].ravel(), minlength=node.shape[0]) / self._deg
        cap = st.cap_ES1[:-1]
        used = st.used_ES1[:-1]
        u = np.minimum(used / cap, self.cfg.network.util_cap)
        link = np.empty((cap.shape[0], len(LINK_FEATURES)), dtype=np.float32)
        link[:, 0:3] = (cap - used) / cap
        link[:, 3:6] = np.minimum(self.cfg.network.queue_q0_ms * u / (1 - u), LIM)
        link[:, 6] = self._cap_log
        link[:, 7] = self._prop
        link[:, 8] = failed
        link[:, 9] = np.minimum(st.trust_N1[self._ends[:, 0]], st.trust_N1[self._ends[:, 1]])
        return {"node_feats": node, "link_feats": link, "edge_index": self._edge_index.copy()}

    def build(self, req: Request, ev: Evaluation, emergency_R: np.ndarray) -> dict:
        """The observation of ``req`` from its evaluation (see :meth:`build_arrays`)."""
        return self.build_arrays(req, ev.feats_AF, ev.mask_A, emergency_R)

    def build_arrays(
        self, req: Request, feats_AF: np.ndarray, mask_A: np.ndarray, emergency_R: np.ndarray
    ) -> dict:
        """The observation of ``req`` whose candidate table and mask are ``feats_AF`` and
        ``mask_A`` (held by the observation as they are, not copied)."""
        rf = np.empty(self._req_slice.stop, dtype=np.float32)
        compact = np.empty(self.layout.size, dtype=np.float32)
        self.write_compact(compact, req, feats_AF, emergency_R, request_out=rf)
        obs: dict[str, Any] = {
            "request": rf,
            "candidates": feats_AF,
            "action_mask": mask_A,
            "compact": compact,
        }
        if self.mode == "full":
            obs["graph"] = self.graph(emergency_R)
            obs["history"] = self.history.rows.copy()
        return obs


assert len(SLICES) == 3
