"""Yen's K shortest loop-free paths guided by a shortest-path tree of the destination, with
failed links as a mask.

Almost every route ends at one of two control centres, so one Dijkstra tree per destination
(SciPy's ``dijkstra`` with ``indices=root``, kept by the path cache) serves all its pairs:

* the first path of a pair is read off the tree (no search), and stays valid on a cut
  topology when none of its links failed;
* every other search — Yen's spur searches, the backup of a 1+1 primary, a first path that a
  cut broke — is an A* search towards the root whose heuristic is the tree's distance. That
  distance is exact on the intact graph and a lower bound on any graph with links removed
  (consistent, so a site is final when first popped), so a search expands little beyond the
  detour it has to find instead of the whole graph: on case9241pegase a spur search costs
  microseconds where a full Dijkstra costs milliseconds;
* failed links, Yen's root-path sites and the links of earlier paths are flags on arrays
  built once, never a rebuilt sparse graph.

Hand-written (numba) because SciPy's ``yen`` can neither start from a known first path nor
search with a heuristic, and networkx's ``shortest_simple_paths`` runs in Python.

**Ties.** The K shortest paths are unique up to routes of equal latency, which each search
code orders its own way (SciPy's Dijkstra and candidate heap, this code's tree predecessor
and first-in-first-out heap). So the search reports a tie — a site on a route reached by two
routes within :data:`TIE_RTOL`, a tree path through a site with two equally short next sites,
or two of the K + 1 shortest paths equally long — and the caller then searches the pair with
SciPy's ``yen`` as before: the routes are the reference's exactly (same K paths, same order,
ties included; ``tests/network/test_tree_ksp.py``). Ties are common on the small cases with
estimated line lengths (35 of 90 pairs on case14) and rare on the large ones (2 of 1,500
pairs on case1354pegase).
"""

from __future__ import annotations

import heapq

import numpy as np
from numba import njit
from numba.typed import List


def csr_arrays(
    n_sites: int, link_ends: np.ndarray, weight_E: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Adjacency in CSR form with the link index of every arc (both directions).

    Returns:
        ``(indptr_N1, nbr_A, weight_A, link_A)``: neighbours of site v are
        ``nbr_A[indptr_N1[v]:indptr_N1[v + 1]]`` (sorted), A = 2E arcs.
    """
    a, b = link_ends[:, 0].astype(np.int64), link_ends[:, 1].astype(np.int64)
    row = np.r_[a, b]
    col = np.r_[b, a]
    e = np.arange(link_ends.shape[0], dtype=np.int64)
    order = np.lexsort((col, row))
    indptr = np.zeros(n_sites + 1, dtype=np.int64)
    np.cumsum(np.bincount(row, minlength=n_sites), out=indptr[1:])
    w = np.asarray(weight_E, dtype=np.float64)
    return indptr, col[order], np.r_[w, w][order], np.r_[e, e][order]


TIE_RTOL = 1e-9
"""Latencies closer than this (relative) count as a tie: the engines may order them apart
(summation order alone moves a latency by ~1e-16), so such a pair is searched by the
reference engine instead."""


@njit(cache=True, nogil=True)
def _astar(  # noqa: C901 - one compiled search with its tie check
    indptr: np.ndarray,
    nbr: np.ndarray,
    wt: np.ndarray,
    lnk: np.ndarray,
    src: int,
    dst: int,
    h: np.ndarray,
    node_off: np.ndarray,
    link_off: np.ndarray,
    scratch: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    cap: float,
) -> tuple[np.ndarray, bool]:
    """Shortest path ``src`` → ``dst`` avoiding flagged sites and links (A*, heuristic ``h``
    = distance to ``dst`` on a supergraph, so consistent).

    Returns the path (empty when unreachable) and whether it may not be the only shortest
    one: a site on it is reached by two routes of latency within :data:`TIE_RTOL`. Every
    site that can lie on an equally short route has f ≤ the path's latency, so the search
    goes on popping up to that bound before it answers. ``scratch`` = (g, pred, closed,
    tie) arrays of length N, returned to their initial state (inf, -1, 0, 0). A route
    longer than ``cap`` counts as none.
    """
    g, pred, closed, tie_N = scratch
    touched = List()
    touched.append(src)
    g[src] = 0.0
    heap = [(h[src], 0, src)]
    seq = 1
    found = False
    bound = cap  # no route longer than this is wanted
    while heap:
        f, _, u = heapq.heappop(heap)
        if f > bound:
            break
        if closed[u]:
            continue
        closed[u] = 1
        if u == dst and not found:
            found = True
            bound = min(bound, g[dst] * (1.0 + TIE_RTOL))
            continue
        gu = g[u]
        for j in range(indptr[u], indptr[u + 1]):
            v = nbr[j]
            if node_off[v] or link_off[lnk[j]]:
                continue
            nv = gu + wt[j]
            gv = g[v]
            if gv < np.inf and abs(nv - gv) <= TIE_RTOL * max(nv, gv):
                tie_N[v] = 1
            if closed[v] or found:
                continue
            if nv < gv:
                if gv == np.inf:
                    touched.append(v)
                elif nv < gv * (1.0 - TIE_RTOL):
                    tie_N[v] = 0  # the earlier near-equal route is no longer near
                g[v] = nv
                pred[v] = u
                heapq.heappush(heap, (nv + h[v], seq, v))
                seq += 1
    n = 0
    tie = False
    if found:
        v = dst
        n = 1
        while v != src:
            tie = tie or tie_N[v] == 1
            v = pred[v]
            n += 1
    out = np.empty(n, dtype=np.int64)
    if found:
        v = dst
        for i in range(n - 1, -1, -1):
            out[i] = v
            v = pred[v] if i > 0 else v
    for v in touched:
        g[v] = np.inf
        pred[v] = -1
        closed[v] = 0
        tie_N[v] = 0
    return out, tie


@njit(cache=True, nogil=True)
def _arc_link(indptr: np.ndarray, nbr: np.ndarray, lnk: np.ndarray, a: int, b: int) -> int:
    for j in range(indptr[a], indptr[a + 1]):
        if nbr[j] == b:
            return lnk[j]
    return -1


@njit(cache=True, nogil=True)
def _arc_w(indptr: np.ndarray, nbr: np.ndarray, wt: np.ndarray, a: int, b: int) -> float:
    for j in range(indptr[a], indptr[a + 1]):
        if nbr[j] == b:
            return wt[j]
    return np.inf


@njit(cache=True, nogil=True)
def _cost(indptr: np.ndarray, nbr: np.ndarray, wt: np.ndarray, p: np.ndarray) -> float:
    c = 0.0
    for i in range(p.size - 1):
        for j in range(indptr[p[i]], indptr[p[i] + 1]):
            if nbr[j] == p[i + 1]:
                c += wt[j]
                break
    return c


@njit(cache=True, nogil=True)
def tree_yen(  # noqa: C901 - one compiled Yen loop
    indptr: np.ndarray,
    nbr: np.ndarray,
    wt: np.ndarray,
    lnk: np.ndarray,
    src: int,
    dst: int,
    k: int,
    h: np.ndarray,
    tree_pred: np.ndarray,
    bridge_E: np.ndarray,
    link_off: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Yen's K shortest loop-free paths ``src`` → ``dst``, shortest first.

    Args:
        indptr, nbr, wt, lnk: :func:`csr_arrays`.
        src, dst: site indices.
        k: paths wanted.
        h: a consistent lower bound on every site's latency to ``dst`` on the intact graph,
            shape (N,): ``dst``'s tree distance, or :func:`landmark_bound`.
        tree_pred: the tree's next site towards ``dst`` (-9999 at ``dst``), shape (N,), or
            an empty array when ``h`` is not a tree (the first path is then searched too).
        bridge_E: 1 for the bridges of the intact graph, shape (E,): a spur search whose
            next link on the previous path is a bridge cannot succeed (every route from the
            spur site to ``dst`` crosses it), so it is skipped.
        link_off: 1 for failed links, shape (E,); flags set during the search are cleared
            again before returning.

    Returns:
        ``(sites_PL, n_P, tie)``: path p is ``sites_PL[p, :n_P[p]]`` (padded with -1),
        P ≤ k; ``tie`` when the answer may depend on how ties are broken — a search met two
        routes of equal latency, or two of the K + 1 shortest paths are equally long (the
        last round only looks for a route as short as the K-th: spur searches capped there).
    """
    N = indptr.size - 1
    A = List()
    empty = (np.full((0, 1), -1, dtype=np.int64), np.zeros(0, dtype=np.int64))
    if src == dst or not np.isfinite(h[src]):
        return empty[0], empty[1], False
    scratch = (
        np.full(N, np.inf),
        np.full(N, -1, dtype=np.int64),
        np.zeros(N, dtype=np.uint8),
        np.zeros(N, dtype=np.uint8),
    )
    node_off = np.zeros(N, dtype=np.uint8)
    tie = False
    # first path: the tree's, unless a failed link lies on it
    n = 1
    v = src
    ok = tree_pred.size > 0
    while ok and v != dst:
        u = tree_pred[v]
        if link_off[_arc_link(indptr, nbr, lnk, v, u)]:
            ok = False
            break
        # two next sites equally short: the tree's path is one of several
        nexts = 0
        for j in range(indptr[v], indptr[v + 1]):
            via = h[nbr[j]] + wt[j]
            if abs(via - h[v]) <= TIE_RTOL * max(via, h[v]):
                nexts += 1
        tie = tie or nexts > 1
        v = u
        n += 1
    if ok:
        p0 = np.empty(n, dtype=np.int64)
        v = src
        for i in range(n):
            p0[i] = v
            if i < n - 1:
                v = tree_pred[v]
    else:
        tie = False
        p0, tie = _astar(indptr, nbr, wt, lnk, src, dst, h, node_off, link_off, scratch, np.inf)
    if p0.size == 0:
        return empty[0], empty[1], False
    A.append(p0)
    A_cost = List()
    A_cost.append(_cost(indptr, nbr, wt, p0))
    B = List()
    B.append(p0)  # typed-list placeholders, removed below
    B.pop()
    B_cost = List()
    B_cost.append(0.0)
    B_cost.pop()
    B_tie = List()
    B_tie.append(False)
    B_tie.pop()
    blocked = List()
    blocked.append(0)
    blocked.pop()
    for _ in range(1, k + 1):
        prev = A[len(A) - 1]
        # the round after the K-th path only asks whether a route as short as it exists
        # (a tie over which path is K-th): spur searches capped at that latency
        last = len(A) == k
        c_k = A_cost[len(A) - 1]
        if last:
            for c in B_cost:
                if c - c_k <= TIE_RTOL * c:
                    tie = True
            if tie:
                break
        root = 0.0
        for i in range(prev.size - 1):
            spur = prev[i]
            if i > 0:
                root += _arc_w(indptr, nbr, wt, prev[i - 1], spur)
            if bridge_E[_arc_link(indptr, nbr, lnk, spur, prev[i + 1])]:
                continue
            for j in range(i):
                node_off[prev[j]] = 1
            for p in A:
                if p.size > i + 1:
                    same = True
                    for j in range(i + 1):
                        if p[j] != prev[j]:
                            same = False
                            break
                    if same:
                        e = _arc_link(indptr, nbr, lnk, p[i], p[i + 1])
                        if not link_off[e]:
                            link_off[e] = 1
                            blocked.append(e)
            cap = c_k * (1.0 + 2.0 * TIE_RTOL) - root if last else np.inf
            sp, sp_tie = _astar(
                indptr, nbr, wt, lnk, spur, dst, h, node_off, link_off, scratch, cap
            )
            for j in range(i):
                node_off[prev[j]] = 0
            for e in blocked:
                link_off[e] = 0
            blocked.clear()
            if sp.size == 0:
                continue
            cand = np.empty(i + sp.size, dtype=np.int64)
            cand[:i] = prev[:i]
            cand[i:] = sp
            cost = _cost(indptr, nbr, wt, cand)
            if last:
                if cost - c_k <= TIE_RTOL * cost:
                    tie = True
                    break
                continue
            dup = False
            for q in B:
                if q.size == cand.size and (q == cand).all():
                    dup = True
                    break
            if not dup:
                B.append(cand)
                B_cost.append(cost)
                B_tie.append(sp_tie)
        if last or len(B) == 0:
            break
        best = 0
        for j in range(1, len(B)):
            if B_cost[j] < B_cost[best]:
                best = j
        A.append(B.pop(best))
        A_cost.append(B_cost.pop(best))
        tie = tie or B_tie.pop(best)
    for i in range(len(A) - 1):
        if A_cost[i + 1] - A_cost[i] <= TIE_RTOL * A_cost[i + 1]:
            tie = True
    P = min(len(A), k)
    L = 1
    for i in range(P):
        L = max(L, A[i].size)
    sites = np.full((P, L), -1, dtype=np.int64)
    n_P = np.empty(P, dtype=np.int64)
    for i in range(P):
        sites[i, : A[i].size] = A[i]
        n_P[i] = A[i].size
    return sites, n_P, tie


def landmark_bound(dist_LN: np.ndarray, dst: int) -> np.ndarray:
    """ALT lower bound on every site's latency to ``dst`` from landmark distances
    (Goldberg & Harrelson 2005): ``max_l |d(l, dst) − d(l, v)|`` by the triangle inequality;
    consistent, and a lower bound on any graph with links removed as well.

    Args:
        dist_LN: latency of every site from each landmark on the intact graph, shape (L, N).
        dst: the destination site.
    """
    return np.abs(dist_LN[:, dst : dst + 1] - dist_LN).max(axis=0)
