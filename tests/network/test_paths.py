"""Path cache: K shortest paths by latency, loop-free, consistent arrays, 1+1 disjoint pairs."""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pytest

from pcnalloc.network import CommNetwork, PathCache


def _no_failures(net: CommNetwork) -> tuple[np.ndarray, tuple[int, ...]]:
    return np.zeros(net.n_links + 1, dtype=bool), ()


def _failures(net: CommNetwork, links: list[int]) -> tuple[np.ndarray, tuple[int, ...]]:
    f = np.zeros(net.n_links + 1, dtype=bool)
    f[links] = True
    return f, tuple(sorted(links))


def _route_latency_ms(net: CommNetwork, nodes: list[int]) -> float:
    g = net.graph
    return sum(g.edges[a, b]["w"] for a, b in itertools.pairwise(nodes))


def _check_route(net: CommNetwork, links: np.ndarray, nodes: np.ndarray, ends: set[int]) -> None:
    """A padded route is a loop-free walk between ``ends`` whose links join its nodes."""
    E, N = net.n_links, net.n_sites
    hop_links = links[links < E]
    hop_nodes = nodes[nodes < N]
    assert hop_links.size >= 1 and hop_nodes.size == hop_links.size + 1
    assert (links[: hop_links.size] < E).all() and (links[hop_links.size :] == E).all()
    assert len(set(hop_nodes.tolist())) == hop_nodes.size, "route revisits a site"
    assert {int(hop_nodes[0]), int(hop_nodes[-1])} == ends
    for e, a, b in zip(hop_links, hop_nodes[:-1], hop_nodes[1:], strict=True):
        assert {int(a), int(b)} == set(net.link_ends[e].tolist())


def _pairs(net: CommNetwork, n: int = 12) -> list[tuple[int, int]]:
    rng = np.random.default_rng(0)
    all_pairs = [(a, b) for a in range(net.n_sites) for b in range(net.n_sites) if a != b]
    idx = rng.choice(len(all_pairs), size=min(n, len(all_pairs)), replace=False)
    return [all_pairs[i] for i in idx]


def test_tiny_paths_are_the_k_shortest_by_latency(tiny_net: CommNetwork) -> None:
    """Against brute force: every simple path of the tiny graph, sorted by latency."""
    cache = PathCache(tiny_net, 8)
    for src, dst in itertools.permutations(range(tiny_net.n_sites), 2):
        ps = cache.paths(src, dst)
        every = sorted(
            _route_latency_ms(tiny_net, p) for p in nx.all_simple_paths(tiny_net.graph, src, dst)
        )
        assert ps.n_paths == min(8, len(every))
        np.testing.assert_allclose(ps.prop_ms_P, every[: ps.n_paths])
        for i in range(ps.n_paths):
            _check_route(tiny_net, ps.links_PH[i], ps.nodes_PN[i], {src, dst})
            assert ps.hops_P[i] == (ps.links_PH[i] < tiny_net.n_links).sum()
        # Distinct routes.
        assert len({tuple(r) for r in ps.links_PH.tolist()}) == ps.n_paths


@pytest.mark.parametrize("case", ["case30", "case118"])
def test_case_paths_sorted_loop_free_and_consistent(case: str, case_network) -> None:
    net = case_network(case)
    cache = PathCache(net, 8)
    for src, dst in _pairs(net):
        ps = cache.paths(src, dst)
        assert ps.n_paths == 8  # meshed grids have many routes
        assert (np.diff(ps.prop_ms_P) >= -1e-12).all(), "paths not sorted by latency"
        for i in range(ps.n_paths):
            nodes = ps.nodes_PN[i][ps.nodes_PN[i] < net.n_sites].tolist()
            _check_route(net, ps.links_PH[i], ps.nodes_PN[i], {src, dst})
            prop = net.link_prop_ms[ps.links_PH[i][ps.links_PH[i] < net.n_links]].sum()
            expected = prop + ps.hops_P[i] * net.config.switching_delay_ms
            assert ps.prop_ms_P[i] == pytest.approx(expected)
            assert ps.prop_ms_P[i] == pytest.approx(_route_latency_ms(net, nodes))
        # The first path is a latency-shortest path.
        best = nx.shortest_path_length(net.graph, src, dst, weight="w")
        assert ps.prop_ms_P[0] == pytest.approx(best)


@pytest.mark.parametrize("k", [1, 4, 8])
def test_candidates_fill_k_slots_in_latency_order(tiny_net: CommNetwork, k: int) -> None:
    cache = PathCache(tiny_net, 8)
    failed, key = _no_failures(tiny_net)
    for src, dst in _pairs(tiny_net):
        cs = cache.candidates(src, dst, k, protected=False, failed_E1=failed, failed_key=key)
        n = int(cs.present_K.sum())
        assert cs.present_K.shape == (k,) and n == k  # ≥ 8 routes between any two sites
        assert (np.diff(cs.prop_ms_K[:n]) >= -1e-12).all()
        assert not cs.has_backup_K.any()
        for i in range(n):
            _check_route(tiny_net, cs.links_KH[i], cs.nodes_KN[i], {src, dst})


def test_candidates_are_undirected(tiny_net: CommNetwork) -> None:
    cache = PathCache(tiny_net, 8)
    failed, key = _no_failures(tiny_net)
    for src, dst in itertools.combinations(range(tiny_net.n_sites), 2):
        for protected in (False, True):
            ab = cache.candidates(
                src, dst, 4, protected=protected, failed_E1=failed, failed_key=key
            )
            ba = cache.candidates(
                dst, src, 4, protected=protected, failed_E1=failed, failed_key=key
            )
            np.testing.assert_array_equal(ab.links_KH, ba.links_KH)
            np.testing.assert_allclose(ab.prop_ms_K, ba.prop_ms_K)


@pytest.mark.parametrize("net_name", ["tiny", "case30"])
def test_protected_backups_are_link_disjoint(net_name: str, tiny_net, case_network) -> None:
    net = tiny_net if net_name == "tiny" else case_network("case30")
    cache = PathCache(net, 8)
    failed, key = _no_failures(net)
    E = net.n_links
    n_backups = 0
    for src, dst in _pairs(net):
        cs = cache.candidates(src, dst, 4, protected=True, failed_E1=failed, failed_key=key)
        n = int(cs.present_K.sum())
        assert n >= 1
        assert (np.diff(cs.prop_ms_K[:n]) >= -1e-12).all()
        for i in range(n):
            _check_route(net, cs.links_KH[i], cs.nodes_KN[i], {src, dst})
            if not cs.has_backup_K[i]:
                continue
            n_backups += 1
            _check_route(net, cs.backup_links_KB[i], cs.backup_nodes_KN[i], {src, dst})
            primary = set(cs.links_KH[i][cs.links_KH[i] < E].tolist())
            backup = set(cs.backup_links_KB[i][cs.backup_links_KB[i] < E].tolist())
            assert not primary & backup, "1+1 backup shares a link with its primary"
            # The backup is the latency-shortest route avoiding the primary's links.
            h = net.graph.copy()
            h.remove_edges_from(map(tuple, net.link_ends[sorted(primary)]))
            best = nx.shortest_path_length(h, src, dst, weight="w")
            assert cs.backup_prop_ms_K[i] == pytest.approx(best)
    assert n_backups > 0
    if net_name == "tiny":  # every tiny site has degree 3: a disjoint backup always exists
        cs = cache.candidates(0, 3, 4, protected=True, failed_E1=failed, failed_key=key)
        assert cs.has_backup_K[cs.present_K].all()


@pytest.mark.parametrize("protected", [False, True])
def test_candidates_avoid_failed_links(tiny_net: CommNetwork, protected: bool) -> None:
    cache = PathCache(tiny_net, 8)
    E = tiny_net.n_links
    rng = np.random.default_rng(1)
    for _ in range(20):
        cut = sorted(rng.choice(E, size=int(rng.integers(1, 4)), replace=False).tolist())
        failed, key = _failures(tiny_net, cut)
        g = tiny_net.graph.copy()
        g.remove_edges_from(map(tuple, tiny_net.link_ends[cut]))
        src, dst = (int(x) for x in rng.choice(tiny_net.n_sites, size=2, replace=False))
        cs = cache.candidates(src, dst, 4, protected=protected, failed_E1=failed, failed_key=key)
        n = int(cs.present_K.sum())
        routes = (
            list(itertools.islice(nx.shortest_simple_paths(g, src, dst, "w"), 4))
            if (nx.has_path(g, src, dst))
            else []
        )
        assert n == len(routes), (cut, src, dst)
        for i in range(n):
            assert not failed[cs.links_KH[i]].any()
            assert not failed[cs.backup_links_KB[i]].any()
            _check_route(tiny_net, cs.links_KH[i], cs.nodes_KN[i], {src, dst})
        np.testing.assert_allclose(
            cs.prop_ms_K[:n], [_route_latency_ms(tiny_net, r) for r in routes]
        )


def _trap_network(tmp_path) -> CommNetwork:
    """s–a–b–t is the shortest route and blocks every route disjoint from it, although the
    pair s–a–t / s–b–t is link-disjoint (the classic trap of remove-and-reroute)."""
    import json

    from pcnalloc.config import NetworkConfig
    from pcnalloc.network import cached_network

    sites = [{"id": n, "kv": 110.0, "x": float(i), "y": 0.0} for i, n in enumerate("sabt")]
    links = [
        {"a": "s", "b": "a", "length_km": 10.0},
        {"a": "a", "b": "b", "length_km": 10.0},
        {"a": "b", "b": "t", "length_km": 10.0},
        {"a": "s", "b": "b", "length_km": 50.0},
        {"a": "a", "b": "t", "length_km": 50.0},
    ]
    p = tmp_path / "trap.json"
    p.write_text(
        json.dumps({"name": "trap", "sites": sites, "links": links, "control_centers": ["s"]})
    )
    return cached_network(str(p), NetworkConfig())


def test_trap_topology_gets_the_disjoint_pair(tmp_path) -> None:
    from pcnalloc.network.paths import disjoint_pair

    net = _trap_network(tmp_path)
    idx = {sid: i for i, sid in enumerate(net.site_names)}
    s, t = idx["s"], idx["t"]
    E = net.n_links
    cache = PathCache(net, 4)
    w = net.link_prop_ms + net.config.switching_delay_ms
    # remove-and-reroute fails: no route avoids the shortest path's links
    shortest = cache.paths(s, t)
    own = shortest.links_PH[0][shortest.links_PH[0] < E]
    h = net.graph.copy()
    h.remove_edges_from(map(tuple, net.link_ends[own]))
    assert not nx.has_path(h, s, t)
    # Suurballe's pair exists and is what a protected request is offered
    pair = disjoint_pair(net, s, t, w)
    assert pair is not None
    a, b = pair
    la = {net.graph.edges[x, y]["link"] for x, y in itertools.pairwise(a)}
    lb = {net.graph.edges[x, y]["link"] for x, y in itertools.pairwise(b)}
    assert not la & lb and {a[0], a[-1]} == {b[0], b[-1]} == {s, t}
    failed, key = _no_failures(net)
    # K = 1: the only slot is the trap path under remove-and-reroute; it must hold the pair
    for k in (1, 4):
        cs = cache.candidates(s, t, k, protected=True, failed_E1=failed, failed_key=key)
        assert cs.has_backup_K[0] or k > 1
        assert cs.has_backup_K.any()
        i = int(np.flatnonzero(cs.has_backup_K)[0])
        prim = set(cs.links_KH[i][cs.links_KH[i] < E].tolist())
        back = set(cs.backup_links_KB[i][cs.backup_links_KB[i] < E].tolist())
        assert prim and back and not prim & back
        n = int(cs.present_K.sum())
        assert (np.diff(cs.prop_ms_K[:n]) >= -1e-12).all()
    # with a link of the pair down no disjoint pair is left
    assert disjoint_pair(net, s, t, w, removed=(next(iter(la)),)) is None
