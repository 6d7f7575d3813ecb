"""Per-class Poisson arrival rates solved from a target offered load ρ.

ρ is the offered bandwidth-time demand over pool capacity at the tightest of three cuts of
each slice: the links around the primary control center, the links around the backup center
(control-center traffic must cross them whatever the routing), and the network as a whole
(demand × mean shortest-path hops, 1+1 flows counted twice, over the summed pool capacity).
ρ = 1 fills the tightest cut exactly on average, so no routing can avoid blocking for long;
0.3 is light and 1.5 overloaded. Within a slice, classes split the bandwidth-time demand by
their ``load_share``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import networkx as nx
import numpy as np

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
    """Weighted share of pairs whose shortest path uses each link, shape (E,)."""
    share = np.zeros(net.n_links)
    by_src: dict[int, list[tuple[int, float]]] = {}
    for (s, d), w in zip(pairs, weights, strict=True):
        by_src.setdefault(s, []).append((d, float(w)))
    g = net.graph
    for s, targets in by_src.items():
        paths = nx.single_source_dijkstra_path(g, s, weight="w")
        for d, w in targets:
            p = paths[d]
            for a, b in itertools.pairwise(p):
                share[g.edges[a, b]["link"]] += w
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
    at = lambda site: (net.link_ends == site).any(axis=1)  # noqa: E731
    rates = np.zeros(catalog.n_classes)
    for s in range(len(SLICES)):
        members = np.flatnonzero(catalog.slice_C == s)
        if members.size == 0:
            continue
        shares = catalog.load_share_C[members] / catalog.load_share_C[members].sum()
        cc_share = float((shares * to_cc_C[members]).sum())
        per_unit = max(
            cc_share * primary_cc_share / cap_mbps_ES[at(cc1), s].sum(),
            cc_share * (1 - primary_cc_share) / cap_mbps_ES[at(cc2), s].sum(),
            float((shares * hops_C[members]).sum()) / cap_mbps_ES[:, s].sum(),
        )
        scale_mbps = load / per_unit
        bt = catalog.bandwidth_kbps_C[members] / 1000.0 * catalog.mean_holding_s_C[members]
        rates[members] = scale_mbps * shares / bt
    return rates
