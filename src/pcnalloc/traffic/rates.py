"""Per-class Poisson arrival rates solved from a target offered load ρ.

ρ is the offered bandwidth-time demand over what the network can carry at its tightest cut,
per slice: (1) control-center traffic over the maximum flow that uniformly spread sources
can push into the primary (and, separately, the backup) control center — a min-cut bound no
routing can beat; (2) all traffic × mean shortest-path hops (1+1 flows twice) over the summed
pool capacity. ρ = 1 fills the tightest cut exactly on average, so even an ideal router
starts to block; 0.3 is light and 1.5 overloaded. Within a slice, classes split the
bandwidth-time demand by their ``load_share``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra, maximum_flow

from pcnalloc.config import SLICES
from pcnalloc.network.model import CommNetwork
from pcnalloc.traffic.catalog import Catalog

_PAIR_SAMPLES = 400


@dataclass(frozen=True, eq=False)
class EndpointModel:
    """How endpoints are drawn per class; arrays over sites."""

    sources: np.ndarray
    """Sites that originate control-center traffic (every site except the centers)."""
    primary_cc_share: float


def _sp_link_share(
    net: CommNetwork, pairs: list[tuple[int, int]], weights: np.ndarray
) -> np.ndarray:
    """Weighted share of pairs whose shortest path (by latency) uses each link, shape (E,)."""
    n = net.n_sites
    a, b = net.link_ends[:, 0], net.link_ends[:, 1]
    w = net.link_prop_ms + net.config.switching_delay_ms
    graph = csr_matrix((np.r_[w, w], (np.r_[a, b], np.r_[b, a])), shape=(n, n))
    link_of = {(int(x), int(y)): e for e, (x, y) in enumerate(net.link_ends)}
    link_of.update({(y, x): e for (x, y), e in list(link_of.items())})
    srcs = np.unique([p[0] for p in pairs])
    _, pred = dijkstra(graph, indices=srcs, return_predecessors=True)
    row = {int(s): i for i, s in enumerate(srcs)}
    share = np.zeros(net.n_links)
    for (s, d), wt in zip(pairs, weights, strict=True):
        p = pred[row[s]]
        v = d
        while v != s and p[v] >= 0:
            share[link_of[(int(p[v]), int(v))]] += wt
            v = p[v]
    return share / max(weights.sum(), 1e-12)


def class_link_incidence(net: CommNetwork, catalog: Catalog, primary_cc_share: float) -> np.ndarray:
    """P(link on a class's shortest path), shape (C, E); 1+1 classes count primary only."""
    rng = np.random.default_rng(0)
    cc1, cc2 = net.control_centers
    srcs = [s for s in range(net.n_sites) if s not in (cc1, cc2)] or [cc2]
    to_cc_pairs = [(cc1, s) for s in srcs] + [(cc2, s) for s in srcs]
    to_cc_w = np.array([primary_cc_share] * len(srcs) + [1 - primary_cc_share] * len(srcs))
    cache: dict[str, np.ndarray] = {}
    out = np.zeros((catalog.n_classes, net.n_links))
    for c, cls in enumerate(catalog.classes):
        kind = cls.endpoints
        if kind not in cache:
            if kind in ("to_cc", "cc_bidir"):
                cache[kind] = _sp_link_share(net, to_cc_pairs, to_cc_w)
            elif kind == "line_ends":
                ends = [tuple(int(x) for x in e) for e in net.link_ends]
                cache[kind] = _sp_link_share(net, ends, np.ones(len(ends)))  # type: ignore[arg-type]
            else:
                a = rng.integers(0, net.n_sites, _PAIR_SAMPLES)
                b = (a + rng.integers(1, net.n_sites, _PAIR_SAMPLES)) % net.n_sites
                pairs = [(int(x), int(y)) for x, y in zip(a, b, strict=True)]
                cache[kind] = _sp_link_share(net, pairs, np.ones(len(pairs)))
        out[c] = cache[kind]
    return out


def solve_rates(
    net: CommNetwork, catalog: Catalog, load: float, primary_cc_share: float
) -> np.ndarray:
    """Mean arrival rate per class (1/s), shape (C,), giving bottleneck offered load ``load``."""
    inc_CE = class_link_incidence(net, catalog, primary_cc_share)
    hops_C = inc_CE.sum(axis=1) * np.where(catalog.protected_C, 2.0, 1.0)
    to_cc_C = np.array([c.endpoints in ("to_cc", "cc_bidir") for c in catalog.classes])
    cap_mbps_ES = net.pool_capacity_kbps / 1000.0
    cc1, cc2 = net.control_centers
    rates = np.zeros(catalog.n_classes)
    for s in range(len(SLICES)):
        members = np.flatnonzero(catalog.slice_C == s)
        if members.size == 0:
            continue
        shares = catalog.load_share_C[members] / catalog.load_share_C[members].sum()
        cc_share = float((shares * to_cc_C[members]).sum())
        per_unit = max(
            cc_share * primary_cc_share / max_concurrent_inflow(net, cap_mbps_ES[:, s], cc1),
            cc_share * (1 - primary_cc_share) / max_concurrent_inflow(net, cap_mbps_ES[:, s], cc2),
            float((shares * hops_C[members]).sum()) / cap_mbps_ES[:, s].sum(),
        )
        scale_mbps = load / per_unit
        bt = catalog.bandwidth_kbps_C[members] / 1000.0 * catalog.mean_holding_s_C[members]
        rates[members] = scale_mbps * shares / bt
    return rates


def max_concurrent_inflow(net: CommNetwork, cap_mbps_E: np.ndarray, sink: int) -> float:
    """Largest total rate (Mb/s) that equal demands from every other site can send to ``sink``.

    Bisection on the total t: feasible when the maximum flow (SciPy's Dinic on integer kb/s)
    from a super-source — an arc of capacity t / n to each source site — to ``sink`` over the
    links (both directions, capacity ``cap_mbps_E``) carries all of t. Exact to 0.1 %.
    """
    n = net.n_sites
    root = n
    a, b = net.link_ends[:, 0], net.link_ends[:, 1]
    cap_kbps = np.floor(cap_mbps_E * 1000.0).astype(np.int64)
    sources = np.array([v for v in range(n) if v != sink])
    rows = np.concatenate([a, b, np.full(sources.size, root)])
    cols = np.concatenate([b, a, sources])
    hi = float(cap_kbps[(a == sink) | (b == sink)].sum())
    lo = 0.0
    while hi - lo > 1e-3 * hi:
        t = 0.5 * (lo + hi)
        per = max(int(t / sources.size), 1)
        data = np.concatenate([cap_kbps, cap_kbps, np.full(sources.size, per)]).astype(np.int32)
        graph = csr_matrix((data, (rows, cols)), shape=(n + 1, n + 1))
        flow = maximum_flow(graph, root, sink).flow_value
        if flow >= per * sources.size:
            lo = t
        else:
            hi = t
    return max(lo / 1000.0, 1e-9)
