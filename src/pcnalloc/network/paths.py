"""K shortest paths by latency (Yen) and link-disjoint 1+1 pairs, cached per site pair.

Searches run on one shortest-path tree per destination (:mod:`pcnalloc.network.ksp`): the
first path of a pair is read off the tree, Yen's spur searches and the 1+1 backups are A*
searches guided by it, and failed links are a mask over arrays built once. Before any
search for a disjoint pair, the two ends are checked to lie in one 2-edge-connected
component of the (cut) topology (Menger: two link-disjoint routes exist exactly then), so
the radial parts of a grid cost no min-cost flow and no backup search that must fail.
``engine="reference"`` keeps the earlier code path (SciPy's ``yen`` on a sparse graph
rebuilt per set of removed links, no connectivity check) for parity tests and benchmarks.

A 1+1 candidate is a primary from Yen's list with the shortest route avoiding its links.
Where that fails for every primary — a *trap* topology, whose shortest path blocks every
disjoint alternative although a disjoint pair exists — the min-sum link-disjoint pair
(Suurballe's problem, solved as a two-unit min-cost flow with networkx's network simplex)
takes the place of a backup-less slot, so a protected service is never refused for want of
a pair the topology has.

Paths are held as padded integer arrays (path × hop → link index, padded with the sentinel
link index E), so per-decision feature work is numpy gathers over per-link state arrays of
length E + 1 — no Python loop over links or actions at decision time.
"""

from __future__ import annotations

import atexit
import logging
import os
import time
import weakref
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import networkx as nx
import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, dijkstra, yen

from pcnalloc.errors import ConfigError
from pcnalloc.network import ksp, pathstore
from pcnalloc.network.model import CommNetwork

log = logging.getLogger(__name__)

_MAX_SETS = 200_000
"""Bound on cached candidate sets (site pairs × failure states) before the cache is reset."""
_MAX_GRAPHS = 512
"""Bound on cached adjacency matrices (sets of removed links) before that cache is reset."""
_MAX_TREES = 64
"""Bound on kept shortest-path trees of roots other than the control centres."""
ENGINES = ("tree", "reference")
"""Path search engines: ``tree`` (destination trees, A*, link masks) and ``reference``."""
FLUSH_INTERVAL_S = 60.0
"""Least time between two writes of a cache's stored sets by :meth:`PathCache.maybe_flush`
(each write reads and rewrites the whole file; the last write happens at process exit)."""


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
    ``sentinel`` is the padding link index E (the network's number of links).
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
    sentinel: int = -1

    def route(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Slot ``k``'s (primary links, backup links) without padding (an empty backup for a
        slot without one): what an admission on the slot reserves.

        Built on first use and kept on the set (sets are cached and shown for many requests,
        so an admission no longer masks the padded rows itself); the arrays are read-only
        and shared by the flows admitted on the slot.
        """
        cache = self.__dict__.get("_routes")
        if cache is None:
            cache = self.__dict__["_routes"] = {}
        got = cache.get(k)
        if got is None:
            if self.sentinel < 0:
                raise ValueError("CandidateSet.route needs the sentinel link index")
            E = self.sentinel
            prim = self.links_KH[k][self.links_KH[k] < E]
            if self.has_backup_K[k]:
                back = self.backup_links_KB[k][self.backup_links_KB[k] < E]
            else:
                back = prim[:0]
            prim.flags.writeable = False
            back.flags.writeable = False
            got = cache[k] = (prim, back)
        return got

    def take(self, idx: np.ndarray) -> CandidateSet:
        """A new set whose slot i is this set's slot ``idx[i]`` (for state-chosen candidates)."""
        return CandidateSet(
            present_K=self.present_K[idx],
            links_KH=self.links_KH[idx],
            nodes_KN=self.nodes_KN[idx],
            hops_K=self.hops_K[idx],
            prop_ms_K=self.prop_ms_K[idx],
            has_backup_K=self.has_backup_K[idx],
            backup_links_KB=self.backup_links_KB[idx],
            backup_nodes_KN=self.backup_nodes_KN[idx],
            backup_prop_ms_K=self.backup_prop_ms_K[idx],
            sentinel=self.sentinel,
        )


_LINK_OF: weakref.WeakKeyDictionary[CommNetwork, dict[tuple[int, int], int]] = (
    weakref.WeakKeyDictionary()
)


def _link_of(net: CommNetwork) -> dict[tuple[int, int], int]:
    """(site, site) → index of the link the graph holds between them, both directions
    (the ``graph.edges[a, b]["link"]`` lookup as one dict, built once per network)."""
    got = _LINK_OF.get(net)
    if got is None:
        got = {}
        for a, b, link in net.graph.edges(data="link"):
            got[(a, b)] = got[(b, a)] = int(link)
        _LINK_OF[net] = got
    return got


def _pack(paths: list[list[int]], net: CommNetwork) -> PathSet:
    E, N = net.n_links, net.n_sites
    link_of = _link_of(net)
    P = len(paths)
    H = max((len(p) - 1 for p in paths), default=1) or 1
    links = np.full((P, H), E, dtype=np.int64)
    nodes = np.full((P, H + 1), N, dtype=np.int64)
    hops = np.zeros(P, dtype=np.int64)
    for i, p in enumerate(paths):
        nodes[i, : len(p)] = p
        links[i, : len(p) - 1] = [link_of[ab] for ab in pairwise(p)]
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


def _tree_k_shortest(
    cache: PathCache, src: int, dst: int, k: int, removed: tuple[int, ...]
) -> list[list[int]]:
    """Yen's K shortest paths ``src`` → ``dst`` avoiding ``removed`` links, searched towards
    a control centre's tree (:func:`pcnalloc.network.ksp.tree_yen`), as site lists.

    A pair with a control centre at one end searches towards it (the paths are turned
    round when the centre is ``src``): the centre's tree gives the first path and the exact
    A* heuristic. Any other pair searches towards ``dst`` on ``dst``'s tree, except the ends
    of one link, which search with the landmark bound of both centres' trees (their routes
    stay near the link, where a Dijkstra over the whole grid would cost more than the
    searches it guides; far apart, the bound is too loose). Where the search meets a tie
    (two routes or two of the K + 1 paths of equal latency, which the engines may order
    apart) the pair is searched by the reference engine instead, so the routes are the
    reference's exactly.
    """
    if src == dst:
        return []
    ccs = cache.net.control_centers
    flip = src in ccs and dst not in ccs
    s, t = (dst, src) if flip else (src, dst)
    if t in ccs or (s, t) not in _link_of(cache.net):
        h, nxt = cache.tree(t)
    else:
        h, nxt = ksp.landmark_bound(cache.landmarks(), t), _NO_TREE
    off = np.zeros(cache.net.n_links, dtype=np.uint8)
    off[list(removed)] = 1
    sites, n_P, tie = ksp.tree_yen(*cache._csr, s, t, k, h, nxt, cache.bridges(), off)
    if tie:  # equal latencies: the reference engine decides, as before
        cache.n_tie_fallbacks += 1
        return _k_shortest(cache._graph_without(removed), src, dst, k)
    found = [row[:n].tolist() for row, n in zip(sites, n_P.tolist(), strict=True)]
    return [p[::-1] for p in found] if flip else found


_NO_TREE = np.zeros(0, dtype=np.int64)


def disjoint_pair(
    net: CommNetwork, src: int, dst: int, weight_E: np.ndarray, removed: tuple[int, ...] = ()
) -> tuple[list[int], list[int]] | None:
    """The link-disjoint pair of routes of least total weight (Suurballe's problem).

    Solved as a min-cost flow of two units from ``src`` to ``dst`` over unit-capacity arcs
    (both directions of every link that is not ``removed``); with positive weights an optimal
    flow never uses both directions of a link, so its two unit paths share no link.

    Args:
        net: the network.
        src, dst: site indices.
        weight_E: per-link weight (e.g. latency in ms), shape (E,), all > 0.
        removed: links that are down.

    Returns:
        ``(shorter, longer)`` site lists, or None when no disjoint pair exists.
    """
    if src == dst:
        return None
    g = nx.DiGraph()
    down = set(removed)
    # integer weights keep network simplex exact; ns resolution is ample for fibre latencies
    w_int = np.maximum(np.rint(np.asarray(weight_E) * 1e6), 1).astype(np.int64)
    for e, (a, b) in enumerate(net.link_ends.tolist()):
        if e in down:
            continue
        g.add_edge(a, b, capacity=1, weight=int(w_int[e]))
        g.add_edge(b, a, capacity=1, weight=int(w_int[e]))
    if src not in g or dst not in g:
        return None
    g.nodes[src]["demand"] = -2
    g.nodes[dst]["demand"] = 2
    try:
        _, flow = nx.network_simplex(g)
    except nx.NetworkXUnfeasible:
        return None
    succ = {u: [v for v, f in out.items() if f > 0] for u, out in flow.items()}
    paths = []
    for _ in range(2):
        path = [src]
        while path[-1] != dst:
            path.append(succ[path[-1]].pop())
        paths.append(path)
    cost = [sum(float(weight_E[g_link(net, a, b)]) for a, b in pairwise(p)) for p in paths]
    order = np.argsort(cost, kind="stable")
    return paths[int(order[0])], paths[int(order[1])]


def g_link(net: CommNetwork, a: int, b: int) -> int:
    """Index of the link joining sites ``a`` and ``b``."""
    return _link_of(net)[(a, b)]


class PathCache:
    """Per-site-pair K-shortest-path and 1+1 pair cache over one :class:`CommNetwork`.

    Args:
        net: the network.
        n_cached: paths kept per pair on the intact topology; failed links are filtered out of
            this list, and only when too few survive are paths recomputed on the cut topology.
        store: folder of stored path sets (:mod:`pcnalloc.network.pathstore`): the sets of
            the intact topology found there are loaded now, and those computed later are
            added to it by :meth:`flush`. None keeps everything in memory.
    """

    def __init__(
        self, net: CommNetwork, n_cached: int, *, store: Path | None = None, engine: str = "tree"
    ) -> None:
        if engine not in ENGINES:
            raise ConfigError(f"unknown path engine {engine!r}; accepted: {', '.join(ENGINES)}")
        self.net = net
        self.n_cached = n_cached
        self.engine = engine
        self._plain: dict[tuple[int, int], PathSet] = {}
        self._prot0: dict[tuple[int, int], CandidateSet] = {}
        """(K, pair) → protected set with no failed link: state-independent, so stored."""
        self._cut: dict[tuple[int, int, tuple[int, ...], int], PathSet] = {}
        """(src, dst, failed links, K) → the K shortest routes on the cut topology (K is part
        of the key: envs of different K share one cache)."""
        self._by_state: dict[tuple[bool, int, tuple[int, ...]], dict[int, CandidateSet]] = {}
        """(protected, K, failed links) → site pair ``src · N + dst`` (src ≤ dst) → set: the
        per-decision lookup hashes one short key and one int."""
        self._n_sets = 0
        self._w = net.link_prop_ms + net.config.switching_delay_ms
        self._graphs: dict[tuple[int, ...], csr_matrix] = {}
        self._full = self._graph_without(())
        self._csr = ksp.csr_arrays(net.n_sites, net.link_ends, self._w)
        self._trees: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._two_edge: dict[tuple[int, ...], np.ndarray] = {}
        self.n_tie_fallbacks = 0
        """Searches handed to the reference engine because the tree search met a tie."""
        self._store_path: Path | None = None
        self._key = ""
        self._dirty = False
        self._unreadable = False
        self._last_flush = time.monotonic()
        if store is not None:
            self._key = pathstore.path_key(net, n_cached, engine=engine)
            self._store_path = store / f"{self._key}.npz"
            self._load()

    # ------------------------------------------------------------------ persistence
    def _read_store(self) -> tuple[pathstore.Plain, pathstore.Protected]:
        """The stored sets, or none if the file is absent or unreadable (warned once)."""
        path = self._store_path
        if path is None or not path.is_file():
            return {}, {}
        try:
            return pathstore.read(path, self._key, self.net)
        except pathstore.UNREADABLE as err:
            if not self._unreadable:
                log.warning("ignoring unreadable path cache %s (%s); recomputing", path, err)
            self._unreadable = True
            return {}, {}

    def _load(self) -> None:
        plain, protected = self._read_store()
        for pair, arrays in plain.items():
            fields = dict(zip(pathstore.PLAIN_FIELDS, arrays, strict=True))
            self._plain.setdefault(pair, PathSet(**fields))
        E = self.net.n_links
        for (k, sp), arrays in protected.items():
            fields = dict(zip(pathstore.SET_FIELDS, arrays, strict=True))
            cs = self._prot0.setdefault((k, sp), CandidateSet(**fields, sentinel=E))
            self._by_state.setdefault((True, k, ()), {}).setdefault(sp, cs)
        self._n_sets += len(protected)

    @property
    def dirty(self) -> bool:
        """Whether sets were computed that the store has not received yet."""
        return self._dirty

    def flush(self) -> bool:
        """Add the sets computed since the last flush to the store (merged with what other
        processes wrote; one atomic replace), up to :data:`pathstore.MAX_STORED_SETS` in the
        file. Returns whether a file was written (not when it held every set already)."""
        path = self._store_path
        if not self._dirty or path is None:
            return False
        from pcnalloc.fileio import clean_stale, write_atomic

        try:
            with pathstore.locked(path):  # writers take turns: none loses another's sets
                clean_stale(path)  # temps of writers that were killed mid-write
                plain, protected = self._read_store()
                room = pathstore.MAX_STORED_SETS - len(plain) - len(protected)
                # the costlier 1+1 sets first; what the file already holds is equal
                new_prot = [kp for kp in self._prot0 if kp not in protected][: max(room, 0)]
                room -= len(new_prot)
                new_plain = [pair for pair in self._plain if pair not in plain][: max(room, 0)]
                if not new_prot and not new_plain:  # others stored them, or the file is full
                    self._dirty = False
                    return False
                for kp in new_prot:
                    cs = self._prot0[kp]
                    protected[kp] = tuple(getattr(cs, f) for f in pathstore.SET_FIELDS)
                for pair in new_plain:
                    ps = self._plain[pair]
                    plain[pair] = (ps.links_PH, ps.nodes_PN, ps.hops_P, ps.prop_ms_P)
                write_atomic(path, pathstore.encode(self._key, plain, protected))
        except OSError as err:  # a read-only cache folder must not stop the run
            log.warning("cannot write path cache %s: %s", path, err)
            self._store_path = None
            return False
        self._dirty = self._unreadable = False
        self._last_flush = time.monotonic()
        return True

    def maybe_flush(self) -> bool:
        """:meth:`flush` if sets are pending and :data:`FLUSH_INTERVAL_S` has passed since
        the last write (cheap to call at every episode reset)."""
        if self._dirty and time.monotonic() - self._last_flush >= FLUSH_INTERVAL_S:
            return self.flush()
        return False

    # ------------------------------------------------------------------ searches
    def tree(self, root: int) -> tuple[np.ndarray, np.ndarray]:
        """Shortest-path tree of the intact topology towards ``root``.

        Returns:
            ``(dist_N, next_N)``: latency of every site to ``root`` (ms, inf where cut off)
            and its next site towards ``root`` (-9999 at ``root``). The control centres'
            trees come from one Dijkstra call (``indices`` = both) on first use and are kept
            for the cache's life; other roots' trees are kept up to :data:`_MAX_TREES`.
        """
        got = self._trees.get(root)
        if got is None:
            ccs = [int(c) for c in dict.fromkeys(self.net.control_centers)]
            roots = ccs if root in ccs else [root]
            if root not in ccs and len(self._trees) >= _MAX_TREES + len(ccs):
                for r in [r for r in self._trees if r not in ccs]:
                    del self._trees[r]
            dist, pred = dijkstra(self._full, indices=roots, return_predecessors=True)
            for i, r in enumerate(roots):
                self._trees[r] = (dist[i], pred[i].astype(np.int64))
            got = self._trees[root]
        return got

    def landmarks(self) -> np.ndarray:
        """Latency of every site from each control centre, shape (2, N): the landmarks of
        the A* bound for pairs that do not end at a centre."""
        got = self.__dict__.get("_landmarks")
        if got is None:
            got = self._landmarks = np.stack(
                [self.tree(int(c))[0] for c in self.net.control_centers]
            )
        return got

    def bridges(self) -> np.ndarray:
        """1 for every link whose failure alone disconnects the intact topology, shape (E,)."""
        got = self.__dict__.get("_bridge_E")
        if got is None:
            got = self._bridge_E = self._bridge_flags(())
        return got

    def _search(self, src: int, dst: int, k: int, removed: tuple[int, ...]) -> list[list[int]]:
        """The K shortest paths avoiding ``removed`` links, by this cache's engine."""
        if self.engine == "reference":
            return _k_shortest(self._graph_without(removed), src, dst, k)
        return _tree_k_shortest(self, src, dst, k, removed)

    def shortest(self, src: int, dst: int, removed: tuple[int, ...] = ()) -> list[int]:
        """The shortest route ``src`` → ``dst`` avoiding ``removed`` links (site list; empty
        when none is left): the destination tree's path where no removed link lies on it,
        else one A* search (not cached)."""
        got = self._search(src, dst, 1, tuple(int(e) for e in removed))
        return got[0] if got else []

    def two_edge_connected(self, src: int, dst: int, removed: tuple[int, ...] = ()) -> bool:
        """Whether two link-disjoint routes join ``src`` and ``dst`` without the ``removed``
        links (Menger's theorem: exactly when no bridge separates them, i.e. they lie in one
        2-edge-connected component). Component labels are kept per set of removed links."""
        key = tuple(sorted({int(e) for e in removed}))
        label = self._two_edge.get(key)
        if label is None:
            if len(self._two_edge) >= _MAX_GRAPHS:
                self._two_edge.clear()
            label = self._two_edge[key] = self._two_edge_labels(key)
        return bool(label[src] == label[dst])

    def _bridge_flags(self, removed: tuple[int, ...]) -> np.ndarray:
        """1 for the links that are bridges of the topology without ``removed``, shape (E,)."""
        keep = np.ones(self.net.n_links, dtype=bool)
        keep[list(removed)] = False
        ends = self.net.link_ends[keep]
        g = nx.Graph()
        g.add_nodes_from(range(self.net.n_sites))
        pairs = [frozenset(e) for e in ends.tolist()]
        g.add_edges_from(ends.tolist())
        # a site pair joined by parallel links is never a bridge
        bridges = {frozenset(e) for e in nx.bridges(g)} - {
            p for p, n in Counter(pairs).items() if n > 1
        }
        out = np.zeros(self.net.n_links, dtype=np.uint8)
        out[np.flatnonzero(keep)] = [p in bridges for p in pairs]
        return out

    def _two_edge_labels(self, removed: tuple[int, ...]) -> np.ndarray:
        inner = np.ones(self.net.n_links, dtype=bool)
        inner[list(removed)] = False
        inner &= self._bridge_flags(removed) == 0
        a, b = self.net.link_ends[inner, 0], self.net.link_ends[inner, 1]
        n = self.net.n_sites
        adj = csr_matrix((np.ones(a.size), (a, b)), shape=(n, n))
        _, label = connected_components(adj, directed=False)
        return label

    def _graph_without(self, removed: tuple[int, ...] | np.ndarray) -> csr_matrix:
        """Symmetric latency-weighted adjacency without the ``removed`` links.

        Kept per set of removed links (a cut state asks for the same graph for every site
        pair it reroutes, a 1+1 pair for each primary); callers only read it.
        """
        key = tuple(sorted({int(e) for e in removed}))
        got = self._graphs.get(key)
        if got is None:
            if len(self._graphs) >= _MAX_GRAPHS:
                self._graphs.clear()
            got = self._graphs[key] = self._build_graph(key)
        return got

    def _build_graph(self, removed: tuple[int, ...]) -> csr_matrix:
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
            ps = _pack(self._search(src, dst, self.n_cached, ()), self.net)
            self._plain[key] = ps
            self._dirty = True
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
        # Routes are undirected: one cache entry serves both directions.
        if src > dst:
            src, dst = dst, src
        skey = (protected, k, failed_key)
        table = self._by_state.get(skey)
        if table is None:
            table = self._by_state[skey] = {}
        pair = src * self.net.n_sites + dst
        hit = table.get(pair)
        if hit is not None:
            return hit
        if self._n_sets > _MAX_SETS:
            for t in self._by_state.values():
                t.clear()
            self._n_sets = 0
        self._n_sets += 1
        if protected:
            if failed_key:
                cs = table[pair] = self._protected(src, dst, k, failed_key)
                return cs
            got = self._prot0.get((k, pair))
            if got is None:
                got = self._prot0[(k, pair)] = self._protected(src, dst, k, ())
                self._dirty = True
            table[pair] = got
            return got
        ps = self.paths(src, dst)
        ok = ~failed_E1[ps.links_PH].any(axis=1)
        idx = np.flatnonzero(ok)[:k]
        if failed_key and idx.size < min(k, ps.n_paths):
            ck = (src, dst, failed_key, k)
            cut = self._cut.get(ck)
            if cut is None:
                cut = _pack(self._search(src, dst, k, failed_key), self.net)
                self._cut[ck] = cut
            ps, idx = cut, np.arange(min(k, cut.n_paths))
        out = table[pair] = self._slots(ps, idx, k, backup=None)
        return out

    def _protected(self, src: int, dst: int, k: int, failed: tuple[int, ...]) -> CandidateSet:
        primaries = self._search(src, dst, k, failed)
        prim = _pack(primaries, self.net)
        backups: list[list[int]] = []
        # without two link-disjoint routes no primary has a backup and no pair exists (the
        # searches below would all fail); failing links only take such routes away, so the
        # intact topology's answer holds under any cut (one bridge search per cache, not per
        # cut state: ~0.2 s on case9241pegase). The reference engine searches anyway.
        pairable = self.engine == "reference" or self.two_edge_connected(src, dst)
        for i in range(len(primaries)):
            own = prim.links_PH[i][prim.links_PH[i] < self.net.n_links]
            alt = self._search(src, dst, 1, (*failed, *own.tolist())) if pairable else []
            backups.append(alt[0] if alt else [])
        if primaries and pairable and not all(backups):
            pair = disjoint_pair(self.net, src, dst, self._w, failed)
            if pair is not None and list(pair[0]) not in primaries:
                # a trap: put the disjoint pair in the last backup-less slot (or a free slot),
                # then keep the slots in order of primary latency
                slot = (
                    len(primaries)
                    if len(primaries) < k
                    else max(i for i, b in enumerate(backups) if not b)
                )
                if slot == len(primaries):
                    primaries.append(pair[0])
                    backups.append(pair[1])
                else:
                    primaries[slot], backups[slot] = pair[0], pair[1]
                lat = [
                    sum(float(self._w[g_link(self.net, a, b)]) for a, b in pairwise(p))
                    for p in primaries
                ]
                order = np.argsort(lat, kind="stable")
                primaries = [primaries[i] for i in order]
                backups = [backups[i] for i in order]
                prim = _pack(primaries, self.net)
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
            sentinel=E,
        )


_SHARED: dict[tuple[int, int], PathCache] = {}


def shared_path_cache(net: CommNetwork, n_cached: int) -> PathCache:
    """One :class:`PathCache` per (network, size) in this process, shared by all its envs.

    Safe because networks are immutable and cached routes depend only on the topology and
    the failed-link set that is part of every key. The intact-topology sets persist on disk
    (:mod:`pcnalloc.network.pathstore`, unless ``PCNALLOC_CACHE_DIR=off``): loaded here when
    the cache is first made in this process, written back by :meth:`PathCache.maybe_flush`
    (environments call it at reset) and at process exit. ``PCNALLOC_PATH_ENGINE=reference``
    selects the earlier search code (:data:`ENGINES`; for parity runs and benchmarks).
    """
    engine = os.environ.get("PCNALLOC_PATH_ENGINE") or "tree"
    key = (id(net), n_cached)
    cache = _SHARED.get(key)
    if cache is None or cache.net is not net or cache.engine != engine:
        cache = PathCache(net, n_cached, store=pathstore.store_dir(), engine=engine)
        _SHARED[key] = cache
    return cache


def flush_shared() -> int:
    """Write every shared cache's pending sets to disk; returns the number of files written.

    Runs at interpreter exit (the main process and ``spawn`` workers, which exit through
    ``sys.exit``); a process killed or ended by ``os._exit`` keeps only what
    :meth:`PathCache.maybe_flush` wrote before.
    """
    n = 0
    for cache in list(_SHARED.values()):
        try:
            n += cache.flush()
        except Exception as err:  # exit must not fail over a cache
            log.warning("path cache not written at exit: %s", err)
    return n


atexit.register(flush_shared)
