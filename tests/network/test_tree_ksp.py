"""Tree-guided path search (network/ksp.py) against the reference engine it replaced.

Nothing differs: every route is the reference's, site for site and in the same order — the
first paths off the trees, Yen's K paths, the routes on cut topologies (links masked instead
of a rebuilt graph) and the 1+1 sets. The tree search would break ties between routes of
equal latency its own way, so where it meets one (case14 and case30 have many: estimated
line lengths) it hands the pair to the reference search; planted faults show both the tie
check and the failed-link mask are needed.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from scipy.sparse.csgraph import dijkstra

from pcnalloc.config import NetworkConfig
from pcnalloc.network import CommNetwork, PathCache, cached_network, ksp, pathstore
from pcnalloc.network import paths as paths_mod
from pcnalloc.network.paths import disjoint_pair

CASES = ("case14", "case30", "case118")


@pytest.fixture(scope="module", params=CASES)
def net(request) -> CommNetwork:
    return cached_network(request.param, NetworkConfig())


def _pairs(net: CommNetwork, n: int, seed: int = 0) -> list[tuple[int, int]]:
    """Pairs as the traffic draws them: to a control centre, along a link, and at random."""
    rng = np.random.default_rng(seed)
    ccs = list(net.control_centers)
    out = []
    for i in range(n):
        a = int(rng.integers(net.n_sites))
        if i % 3 == 0:
            b = ccs[i % 2]
        elif i % 3 == 1:
            a, b = (int(x) for x in net.link_ends[int(rng.integers(net.n_links))])
        else:
            b = int(rng.integers(net.n_sites))
        if a != b:
            out.append((a, b) if i % 2 else (b, a))
    return out


def _cuts(net: CommNetwork, n: int, seed: int = 1) -> list[tuple[int, ...]]:
    rng = np.random.default_rng(seed)
    return [
        tuple(sorted(rng.choice(net.n_links, size=int(rng.integers(1, 4)), replace=False)))
        for _ in range(n)
    ]


def _failed(net: CommNetwork, cut: tuple[int, ...]) -> np.ndarray:
    f = np.zeros(net.n_links + 1, dtype=bool)
    f[list(cut)] = True
    return f


def _same_set(a, b) -> bool:
    return all(
        np.array_equal(getattr(a, f), getattr(b, f)) for f in pathstore.SET_FIELDS
    ) and np.allclose(a.prop_ms_K, b.prop_ms_K, rtol=0, atol=0)


def _ambiguous(cache: PathCache, dist: np.ndarray) -> np.ndarray:
    """Sites with two next sites towards the root within the tie tolerance."""
    indptr, nbr, wt, _ = cache._csr
    row = np.repeat(np.arange(indptr.size - 1), np.diff(indptr))
    via = dist[nbr] + wt
    on = np.abs(via - dist[row]) <= ksp.TIE_RTOL * np.maximum(via, dist[row])
    return np.bincount(row[on], minlength=indptr.size - 1) >= 2


def _first_path_mismatches(net: CommNetwork, *, trust_ties: bool = False) -> int:
    """Pairs whose first path differs from the per-pair Dijkstra one (SciPy, from ``src``):
    the tree's path where it marks no tie on the way, else :meth:`PathCache.shortest`."""
    cache = PathCache(net, 4)
    bad = 0
    for root in [*net.control_centers, 1, net.n_sites - 1]:
        dist, nxt = cache.tree(int(root))
        amb = _ambiguous(cache, dist)
        for s in range(net.n_sites):
            if s == root:
                continue
            d_s, pred = dijkstra(cache._full, indices=s, return_predecessors=True)
            want = [int(root)]
            while want[-1] != s:
                want.append(int(pred[want[-1]]))
            want.reverse()
            got = [s]
            while got[-1] != root:
                got.append(int(nxt[got[-1]]))
            assert dist[s] == pytest.approx(d_s[root], rel=1e-12)
            if trust_ties or not amb[got[:-1]].any():
                bad += got != want
            bad += cache.shortest(s, int(root)) != want
    return bad


def test_first_paths_off_the_trees_equal_per_pair_dijkstra(net: CommNetwork) -> None:
    assert _first_path_mismatches(net) == 0


def test_tree_paths_through_a_tie_are_not_trusted() -> None:
    # planted: taking the tree's path through a site with two equal next sites differs
    # from the per-pair Dijkstra path on case14 (equal estimated line lengths)
    assert _first_path_mismatches(cached_network("case14", NetworkConfig()), trust_ties=True)


def _ksp_mismatches(net: CommNetwork, n: int) -> int:
    tree, ref = PathCache(net, 6), PathCache(net, 6, engine="reference")
    return sum(tree._search(s, t, 6, ()) != ref._search(s, t, 6, ()) for s, t in _pairs(net, n))


def test_k_shortest_equal_the_reference_engine(net: CommNetwork) -> None:
    assert _ksp_mismatches(net, 90) == 0


def test_a_search_that_ignores_ties_is_caught(monkeypatch) -> None:
    real = ksp.tree_yen

    def tie_blind(*args):  # planted: never hand a tied pair to the reference engine
        sites, n_P, _ = real(*args)
        return sites, n_P, False

    monkeypatch.setattr(ksp, "tree_yen", tie_blind)
    assert _ksp_mismatches(cached_network("case14", NetworkConfig()), 90) > 0


def _cut_mismatches(net: CommNetwork, pairs, cuts) -> int:
    tree, ref = PathCache(net, 4), PathCache(net, 4, engine="reference")
    bad = 0
    for cut in cuts:
        failed = _failed(net, cut)
        for (s, t), protected in itertools.product(pairs, (False, True)):
            a = tree.candidates(s, t, 4, protected=protected, failed_E1=failed, failed_key=cut)
            b = ref.candidates(s, t, 4, protected=protected, failed_E1=failed, failed_key=cut)
            bad += not _same_set(a, b)
    return bad


def test_masked_links_route_as_the_rebuilt_graph_on_random_cuts(net: CommNetwork) -> None:
    assert _cut_mismatches(net, _pairs(net, 24), _cuts(net, 6)) == 0


def test_a_mask_that_ignores_one_failed_link_is_caught(monkeypatch) -> None:
    net = cached_network("case30", NetworkConfig())
    real = paths_mod._tree_k_shortest

    def leaky(cache, src, dst, k, removed):  # planted: the first failed link stays usable
        return real(cache, src, dst, k, removed[1:])

    monkeypatch.setattr(paths_mod, "_tree_k_shortest", leaky)
    assert _cut_mismatches(net, _pairs(net, 24), _cuts(net, 6)) > 0


def test_ties_keep_the_reference_latencies(tmp_path: Path) -> None:
    """A square of four equal links: two equal routes between opposite corners."""
    import json

    sites = [
        {"id": s, "kv": 110.0, "x": x, "y": y, "region": "r"}
        for s, x, y in (("A", 0, 0), ("B", 1, 0), ("C", 1, 1), ("D", 0, 1))
    ]
    links = [{"a": a, "b": b, "length_km": 10.0} for a, b in ("AB", "BC", "CD", "DA")]
    path = tmp_path / "square.json"
    path.write_text(json.dumps({"sites": sites, "links": links, "control_centers": ["A", "C"]}))
    sq = cached_network(str(path), NetworkConfig())
    tree, ref = PathCache(sq, 4), PathCache(sq, 4, engine="reference")
    for s, t in itertools.permutations(range(4), 2):
        a, b = tree.paths(s, t), ref.paths(s, t)
        np.testing.assert_array_equal(a.prop_ms_P, b.prop_ms_P)
        np.testing.assert_array_equal(a.nodes_PN, b.nodes_PN)  # ties: the reference decides
    assert tree.n_tie_fallbacks > 0


def test_two_edge_connectivity_is_where_disjoint_pairs_exist(monkeypatch) -> None:
    net = cached_network("case30", NetworkConfig())
    cache = PathCache(net, 4)
    checks = [(), *_cuts(net, 4)]
    for cut in checks:
        for s, t in itertools.combinations(range(0, net.n_sites, 3), 2):
            has_pair = disjoint_pair(net, s, t, cache._w, cut) is not None
            assert cache.two_edge_connected(s, t, cut) == has_pair, (s, t, cut)
    # planted: bridges ignored, so every connected pair looks pairable — caught by the check
    monkeypatch.setattr(nx, "bridges", lambda g: iter(()))
    wrong = PathCache(net, 4)
    assert any(
        wrong.two_edge_connected(s, t) != (disjoint_pair(net, s, t, cache._w) is not None)
        for s, t in itertools.combinations(range(net.n_sites), 2)
    )


def test_the_store_key_follows_the_engine_and_the_search_code(monkeypatch) -> None:
    net = cached_network("case14", NetworkConfig())
    key = pathstore.path_key(net, 4)
    assert pathstore.path_key(net, 4, engine="reference") != key
    real = Path.read_bytes

    def edited(self: Path) -> bytes:  # the search module changed by one byte
        return real(self) + (b"#" if self.name == "ksp.py" else b"")

    monkeypatch.setattr(Path, "read_bytes", edited)
    assert pathstore.path_key(net, 4) != key, "an edit of ksp.py must miss the old file"


def test_an_unknown_engine_is_a_config_error() -> None:
    from pcnalloc.errors import ConfigError

    with pytest.raises(ConfigError, match="tree, reference"):
        PathCache(cached_network("case14", NetworkConfig()), 4, engine="fast")
