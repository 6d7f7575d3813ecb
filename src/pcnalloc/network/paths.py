"""K shortest paths by latency (Yen) and link-disjoint 1+1 pairs, cached per site pair.

Paths are held as padded integer arrays (path × hop → link index, padded with the sentinel
link index E), so per-decision feature work is numpy gathers over per-link state arrays of
length E + 1 — no Python loop over links or actions at decision time.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import yen

from pcnalloc.network.model import CommNetwork

_MAX_SETS = 200_000
"""Bound on cached candidate sets (site pairs × failure states) before the cache is reset."""


@dataclass(frozen=True, eq=False)
class PathSet:
    """Up to P paths between one site pair, padded.

    Attributes:
        links_PH: link indices per path, padded with E (the sentinel), shape (P, H).
        nodes_PN: site indices along each path incl. both ends, padded with N, shape (P, H + 1).
        hops_P: links per path, shape (P,).
        prop_ms_P: propagation + switching delay per path (ms), shape (P,).
    """

    links_PH: np.ndarray
    nodes_PN: np.ndarray
    hops_P: np.ndarray
    prop_ms_P: np.ndarray

    @property
    def n_paths(self) -> int:
        return int(self.hops_P.shape[0])


@dataclass(frozen=True, eq=False)
class CandidateSet:
    """The K candidate routes offered for one request (primary and, for 1+1, backup).

    Slots beyond the number of routes found are absent (``present_K`` False); their link
    arrays hold only the sentinel. Shapes: K slots, H primary hops, B backup hops.
    """

    present_K: np.ndarray
    links_KH: np.ndarray
    nodes_KN: np.ndarray
    hops_K: np.ndarray
    prop_ms_K: np.ndarray
    has_backup_K: np.ndarray
    backup_links_KB: np.ndarray
    backup_nodes_KN: np.ndarray
    backup_prop_ms_K: np.ndarray


def _pack(paths: list[list[int]], net: CommNetwork) -> PathSet:
    E, N = net.n_links, net.n_sites
    g = net.graph
    P = len(paths)
    H = max((len(p) - 1 for p in paths), default=1) or 1
    links = np.full((P, H), E, dtype=np.int64)
    nodes = np.full((P, H + 1), N, dtype=np.int64)
    hops = np.zeros(P, dtype=np.int64)
    for i, p in enumerate(paths):
        nodes[i, : len(p)] = p
        links[i, : len(p) - 1] = [g.edges[a, b]["link"] for a, b in pairwise(p)]
        hops[i] = len(p) - 1
    prop = (
        np.append(net.link_prop_ms, 0.0)[links].sum(axis=1) + hops * net.config.switching_delay_ms
    )
    return PathSet(links_PH=links, nodes_PN=nodes, hops_P=hops, prop_ms_P=prop)


def _k_shortest(graph: csr_matrix, src: int, dst: int, k: int) -> list[list[int]]:
    """Yen's K shortest loop-free paths (SciPy's compiled implementation) as site lists."""
    if src == dst:
        return []
    dist, pred = yen(graph, src, dst, k, return_predecessors=True)
    paths = []
    for i in range(dist.shape[0]):
        if not np.isfinite(dist[i]):
            break
        path = [dst]
        while path[-1] != src:
            path.append(int(pred[i, path[-1]]))
        paths.append(path[::-1])
    return paths


class PathCache:
    """Per-site-pair K-shortest-path and 1+1 pair cache over one :class:`CommNetwork`.

    Args:
        net: the network.
        n_cached: paths kept per pair on the intact topology; failed links are filtered out of
            this list, and only when too few survive are paths recomputed on the cut topology.
    """

    def __init__(self, net: CommNetwork, n_cached: int) -> None:
        self.net = net
        self.n_cached = n_cached
        self._plain: dict[tuple[int, int], PathSet] = {}
        self._cut: dict[tuple[int, int, tuple[int, ...]], PathSet] = {}
        self._pairs: dict[tuple[int, int, int, tuple[int, ...]], CandidateSet] = {}
        self._sets: dict[tuple[int, int, int, tuple[int, ...]], CandidateSet] = {}
        self._w = net.link_prop_ms + net.config.switching_delay_ms
        self._full = self._graph_without(())

    def _graph_without(self, removed: tuple[int, ...] | np.ndarray) -> csr_matrix:
        """Symmetric latency-weighted adjacency without the ``removed`` links."""
        keep = np.ones(self.net.n_links, dtype=bool)
        keep[list(removed)] = False
        a, b = self.net.link_ends[keep, 0], self.net.link_ends[keep, 1]
        w = self._w[keep]
        n = self.net.n_sites
        return csr_matrix((np.r_[w, w], (np.r_[a, b], np.r_[b, a])), shape=(n, n))

    def paths(self, src: int, dst: int) -> PathSet:
        """Cached shortest paths on the intact topology (at most ``n_cached``)."""
        key = (src, dst)
        ps = self._plain.get(key)
        if ps is None:
            ps = _pack(_k_shortest(self._full, src, dst, self.n_cached), self.net)
            self._plain[key] = ps
        return ps

    def candidates(
        self,
        src: int,
        dst: int,
        k: int,
        *,
        protected: bool,
        failed_E1: np.ndarray,
        failed_key: tuple[int, ...],
    ) -> CandidateSet:
        """The K candidate routes for a request.

        Args:
            src, dst: site indices.
            k: slots K.
            protected: build 1+1 pairs (primary + shortest link-disjoint backup).
            failed_E1: failed flag per link plus a False sentinel, shape (E + 1,).
            failed_key: sorted failed link indices (part of the cache key).
        """
        if protected:
            if src > dst:
                src, dst = dst, src
            key = (src, dst, k, failed_key)
            cs = self._pairs.get(key)
            if cs is None:
                cs = self._protected(src, dst, k, failed_key)
                self._pairs[key] = cs
            return cs
        # Routes are undirected: one cache entry serves both directions.
        if src > dst:
            src, dst = dst, src
        key = (src, dst, k, failed_key)
        hit = self._sets.get(key)
        if hit is not None:
            return hit
        ps = self.paths(src, dst)
        ok = ~failed_E1[ps.links_PH].any(axis=1)
        idx = np.flatnonzero(ok)[:k]
        if failed_key and idx.size < min(k, ps.n_paths):
            ck = (src, dst, failed_key)
            cut = self._cut.get(ck)
            if cut is None:
                cut = _pack(_k_shortest(self._graph_without(failed_key), src, dst, k), self.net)
                self._cut[ck] = cut
            ps, idx = cut, np.arange(min(k, cut.n_paths))
        out = self._slots(ps, idx, k, backup=None)
        if len(self._sets) > _MAX_SETS:
            self._sets.clear()
        self._sets[key] = out
        return out

    def _protected(self, src: int, dst: int, k: int, failed: tuple[int, ...]) -> CandidateSet:
        primaries = _k_shortest(self._graph_without(failed), src, dst, k)
        prim = _pack(primaries, self.net)
        backups: list[list[int]] = []
        for i in range(len(primaries)):
            own = prim.links_PH[i][prim.links_PH[i] < self.net.n_links]
            alt = _k_shortest(self._graph_without((*failed, *own.tolist())), src, dst, 1)
            backups.append(alt[0] if alt else [])
        return self._slots(prim, np.arange(len(primaries)), k, backup=backups)

    def _slots(
        self, ps: PathSet, idx: np.ndarray, k: int, backup: list[list[int]] | None
    ) -> CandidateSet:
        E, N = self.net.n_links, self.net.n_sites
        n = idx.size
        H = ps.links_PH.shape[1]
        links = np.full((k, H), E, dtype=np.int64)
        nodes = np.full((k, H + 1), N, dtype=np.int64)
        hops = np.zeros(k, dtype=np.int64)
        prop = np.zeros(k)
        links[:n], nodes[:n] = ps.links_PH[idx], ps.nodes_PN[idx]
        hops[:n], prop[:n] = ps.hops_P[idx], ps.prop_ms_P[idx]
        present = np.zeros(k, dtype=bool)
        present[:n] = True
        has_b = np.zeros(k, dtype=bool)
        if backup:
            real = [b for b in backup if b]
            bp = _pack(real, self.net) if real else None
            B = bp.links_PH.shape[1] if bp else 1
            b_links = np.full((k, B), E, dtype=np.int64)
            b_nodes = np.full((k, B + 1), N, dtype=np.int64)
            b_prop = np.zeros(k)
            j = 0
            for i, b in enumerate(backup[:k]):
                if b and bp is not None:
                    b_links[i], b_nodes[i], b_prop[i] = (
                        bp.links_PH[j],
                        bp.nodes_PN[j],
                        bp.prop_ms_P[j],
                    )
                    has_b[i] = True
                    j += 1
        else:
            b_links = np.full((k, 1), E, dtype=np.int64)
            b_nodes = np.full((k, 2), N, dtype=np.int64)
            b_prop = np.zeros(k)
        return CandidateSet(
            present_K=present,
            links_KH=links,
            nodes_KN=nodes,
            hops_K=hops,
            prop_ms_K=prop,
            has_backup_K=has_b,
            backup_links_KB=b_links,
            backup_nodes_KN=b_nodes,
            backup_prop_ms_K=b_prop,
        )


_SHARED: dict[tuple[int, int], PathCache] = {}


def shared_path_cache(net: CommNetwork, n_cached: int) -> PathCache:
    """One :class:`PathCache` per (network, size) in this process, shared by all its envs.

    Safe because networks are immutable and cached routes depend only on the topology and
    the failed-link set that is part of every key.
    """
    key = (id(net), n_cached)
    cache = _SHARED.get(key)
    if cache is None or cache.net is not net:
        cache = PathCache(net, n_cached)
        _SHARED[key] = cache
    return cache
