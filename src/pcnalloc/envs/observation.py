"""Observation spaces and builders: graph, history, request, candidates, mask, compact vector.

Feature scaling keeps every entry within [-10, 10] (documented per block below), so the
spaces are bounded and the same teacher works on any topology size.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from numba import njit

from pcnalloc.config import SLICES, EnvConfig
from pcnalloc.envs.features import CANDIDATE_FEATURES, Evaluation
from pcnalloc.envs.state import NetworkState
from pcnalloc.traffic.catalog import Catalog
from pcnalloc.traffic.generator import KINDS, Request

NODE_FEATURES = (
    "trust",
    "is_control_center",
    "is_edge_controller",
    "region_frac",
    "degree_frac",
    "emergency",
    "failed_link_frac",
)
LINK_FEATURES = (
    "residual_rt",
    "residual_nrt",
    "residual_mgmt",
    "queue_rt_ms",
    "queue_nrt_ms",
    "queue_mgmt_ms",
    "capacity_log10_gbps",
    "propagation_ms",
    "failed",
    "min_end_trust",
)
HISTORY_STATS = ("accept_rate", "mean_grant", "restoration_share", "critical_share", "log_gap")
NETWORK_STATS = (
    "mean_util_rt",
    "mean_util_nrt",
    "mean_util_mgmt",
    "max_util_rt",
    "max_util_nrt",
    "max_util_mgmt",
    "failed_frac",
    "emergency",
)
LIM = 10.0


def request_dim(catalog: Catalog) -> int:
    return catalog.n_classes + 4 + 4 + 2 + len(KINDS) + 3 + 2


def history_dim(catalog: Catalog) -> int:
    return catalog.n_classes + 7


def compact_dim(catalog: Catalog, cfg: EnvConfig) -> int:
    return (
        request_dim(catalog)
        + cfg.n_actions * len(CANDIDATE_FEATURES)
        + len(HISTORY_STATS)
        + len(NETWORK_STATS)
    )


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

    def _request_static(self) -> np.ndarray:
        """Class-dependent part of the request features, shape (C, request_dim)."""
        cat = self.catalog
        C = cat.n_classes
        out = np.zeros((C, request_dim(cat)), dtype=np.float32)
        out[np.arange(C), np.arange(C)] = 1.0
        out[:, C] = np.log10(cat.bandwidth_kbps_C / 1000.0) / 2.0
        out[:, C + 1] = np.log10(cat.max_latency_ms_C) / 3.0
        out[:, C + 2] = cat.priority_C / 7.0
        out[:, C + 3] = cat.value_C / 10.0
        out[np.arange(C), C + 4 + cat.zone_C] = 1.0
        out[:, C + 8] = cat.protected_C
        return out

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
        rf = self.request_feats(req, emergency_R)
        compact = np.concatenate(
            [rf, ev.feats_AF.ravel(), self.history.stats(), self.network_stats(emergency_R)]
        )
        np.clip(compact, -LIM, LIM, out=compact)
        obs = {
            "request": rf,
            "candidates": ev.feats_AF,
            "action_mask": ev.mask_A,
            "compact": compact,
        }
        if self.mode == "full":
            obs["graph"] = self.graph(emergency_R)
            obs["history"] = self.history.rows.copy()
        return obs


assert len(SLICES) == 3
