"""Grid case → CommNetwork: sites, links, capacity by voltage, lengths, centers, regions, pools.

Expected figures are recomputed from the raw pandapower tables with networkx (an independent
route from the builder's union-find), and the exact counts are pinned as well.
"""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from pcnalloc.config import SLICES, NetworkConfig
from pcnalloc.errors import NetworkError, PcnallocError, UnknownCaseError
from pcnalloc.network import build_network, capacity_for_kv
from pcnalloc.network.builder import from_pandapower

CASES = ("case14", "case30", "case118")

EXPECTED_COUNTS = {
    # case14: 14 buses, 5 transformers merge {3,6,7,8} and {4,5} → 10 sites; 15 lines.
    "case14": {"sites": 10, "links": 15, "circuits": 15, "regions": 1},
    # case30: no transformers in pandapower's conversion → 30 sites, 41 lines; 3 bus zones.
    "case30": {"sites": 30, "links": 41, "circuits": 41, "regions": 3},
    # case118: 118 buses, 13 transformers (a forest) → 105 sites; 173 lines, some parallel or
    # inside one merged substation, → 163 links carrying the 173 circuits.
    "case118": {"sites": 105, "links": 163, "circuits": 173, "regions": 7},
}


def _sdh_capacity_mbps(kv: float) -> float:
    """DESIGN §2 table, written out independently of the package."""
    if kv >= 330.0:
        return 10_000.0
    if kv >= 220.0:
        return 2_488.32
    if kv >= 100.0:
        return 622.08
    return 155.52


@pytest.fixture(scope="module")
def raw(pp_case):
    """Raw pandapower nets by case name (shared, read-only)."""
    return {c: pp_case(c) for c in CASES}


def _raw_sites(net) -> tuple[dict[int, int], list[set[int]]]:
    """bus → component id of the transformer/switch graph, and the components."""
    g = nx.Graph()
    g.add_nodes_from(int(b) for b in net.bus.index)
    for tbl, cols in (("trafo", ("hv_bus", "lv_bus")), ("trafo3w", ("hv_bus", "mv_bus", "lv_bus"))):
        t = net[tbl]
        for row in t[list(cols)].itertuples(index=False):
            g.add_edges_from((int(row[0]), int(b)) for b in row[1:])
    comps = list(nx.connected_components(g))
    return {b: i for i, c in enumerate(comps) for b in c}, comps


@pytest.mark.parametrize("case", CASES)
def test_counts_match_raw_grid(case: str, case_network, raw) -> None:
    net = case_network(case)
    pp = raw[case]
    comp_of, comps = _raw_sites(pp)
    pairs = {
        tuple(sorted((comp_of[int(a)], comp_of[int(b)])))
        for a, b in zip(pp.line.from_bus, pp.line.to_bus, strict=True)
        if comp_of[int(a)] != comp_of[int(b)]
    }
    assert net.n_sites == len(comps)
    assert net.n_links == len(pairs)
    exp = EXPECTED_COUNTS[case]
    assert (net.n_sites, net.n_links, net.n_regions) == (exp["sites"], exp["links"], exp["regions"])
    assert net.link_circuits.sum() == exp["circuits"]
    # Sites partition the buses exactly like the transformer components do.
    assert sorted(map(sorted, comps)) == sorted(net.site_buses)


@pytest.mark.parametrize("case", CASES)
def test_capacity_by_voltage_of_line_ends(case: str, case_network, raw) -> None:
    net = case_network(case)
    pp = raw[case]
    site_of_bus = {b: s for s, buses in enumerate(net.site_buses) for b in buses}
    kv_of_link: dict[tuple[int, int], float] = {}
    for a, b in zip(pp.line.from_bus, pp.line.to_bus, strict=True):
        sa, sb = site_of_bus[int(a)], site_of_bus[int(b)]
        if sa == sb:
            continue
        kv = max(float(pp.bus.vn_kv[a]), float(pp.bus.vn_kv[b]))
        key = (min(sa, sb), max(sa, sb))
        kv_of_link[key] = max(kv_of_link.get(key, 0.0), kv)
    for e, (a, b) in enumerate(net.link_ends):
        expected = _sdh_capacity_mbps(kv_of_link[(int(a), int(b))])
        assert net.link_capacity_mbps[e] == pytest.approx(expected), (case, e)


def test_capacity_classes_seen_in_cases(case_network) -> None:
    """case14 mixes 135 kV (STM-4) and ≤14 kV (STM-1); case118's 345 kV lines get OTN 10G."""
    assert set(case_network("case14").link_capacity_mbps) == {155.52, 622.08}
    assert set(case_network("case30").link_capacity_mbps) == {622.08}
    caps118 = case_network("case118").link_capacity_mbps
    assert set(caps118) == {622.08, 10_000.0}
    assert (caps118 == 10_000.0).sum() == 8


def test_capacity_for_kv_thresholds() -> None:
    kv = np.array([0.4, 99.9, 100.0, 219.9, 220.0, 329.9, 330.0, 765.0])
    expected = [155.52, 155.52, 622.08, 622.08, 2488.32, 2488.32, 10_000.0, 10_000.0]
    np.testing.assert_allclose(capacity_for_kv(kv), expected)
    np.testing.assert_allclose(capacity_for_kv(kv), [_sdh_capacity_mbps(x) for x in kv])


@pytest.mark.parametrize("case", CASES)
def test_lengths_estimated_from_reactance_and_clamped(case: str, case_network, raw) -> None:
    net = case_network(case)
    cfg = net.config
    pp = raw[case]
    assert net.length_estimated  # converted IEEE cases carry the 1 km placeholder
    site_of_bus = {b: s for s, buses in enumerate(net.site_buses) for b in buses}
    acc: dict[tuple[int, int], list[tuple[float, float]]] = {}
    for ln in pp.line.itertuples():
        sa, sb = site_of_bus[int(ln.from_bus)], site_of_bus[int(ln.to_bus)]
        if sa == sb:
            continue
        km = np.clip(ln.x_ohm_per_km * ln.length_km / 0.4, 1.0, 400.0)
        acc.setdefault((min(sa, sb), max(sa, sb)), []).append((float(km), float(ln.parallel)))
    for e, (a, b) in enumerate(net.link_ends):
        items = acc[(int(a), int(b))]
        mean = sum(k * p for k, p in items) / sum(p for _, p in items)
        assert net.link_length_km[e] == pytest.approx(mean)
    assert (net.link_length_km >= cfg.min_length_km).all()
    assert (net.link_length_km <= cfg.max_length_km).all()
    np.testing.assert_allclose(net.link_prop_ms, net.link_length_km * 5.0 / 1000.0)


def test_length_clamp_follows_config(case_network, raw) -> None:
    base = case_network("case30")
    cfg = NetworkConfig(min_length_km=20.0, max_length_km=50.0)
    tight = from_pandapower(raw["case30"], name="case30", config=cfg)
    assert tight.link_length_km.min() == pytest.approx(20.0)
    assert tight.link_length_km.max() == pytest.approx(50.0)
    np.testing.assert_allclose(tight.link_length_km, np.clip(base.link_length_km, 20.0, 50.0))


@pytest.mark.parametrize("case", CASES)
def test_topology_is_connected_and_indexed(case: str, case_network) -> None:
    net = case_network(case)
    g = net.graph
    assert nx.is_connected(g)
    assert g.number_of_nodes() == net.n_sites and g.number_of_edges() == net.n_links
    ends = net.link_ends
    assert ends.shape == (net.n_links, 2) and (ends[:, 0] < ends[:, 1]).all()
    assert len({tuple(e) for e in ends.tolist()}) == net.n_links  # parallel lines merged
    for e, (a, b) in enumerate(ends):
        assert g.edges[int(a), int(b)]["link"] == e


@pytest.mark.parametrize("case", CASES)
def test_primary_control_center_is_slack_site(case: str, case_network, raw) -> None:
    net = case_network(case)
    slack_bus = int(raw[case].ext_grid.bus.iloc[0])
    primary, backup = net.control_centers
    assert slack_bus in net.site_buses[primary]
    assert backup != primary and 0 <= backup < net.n_sites
    # Backup = the other site of highest betweenness.
    bc = nx.betweenness_centrality(net.graph)
    best = max(bc[s] for s in bc if s != primary)
    assert bc[backup] == pytest.approx(best)


def test_case118_primary_center(case_network) -> None:
    net = case_network("case118")
    assert net.site_names[net.control_centers[0]] == "bus64"  # ext_grid bus 68 merged in it
    assert 68 in net.site_buses[net.control_centers[0]]


def test_case30_regions_are_bus_zones(case_network, raw) -> None:
    net = case_network("case30")
    zone = raw["case30"].bus.zone
    assert net.n_regions == zone.nunique() == 3
    for s, buses in enumerate(net.site_buses):
        for t, other in enumerate(net.site_buses):
            same_zone = zone[buses[0]] == zone[other[0]]
            assert same_zone == (net.site_region[s] == net.site_region[t])


@pytest.mark.parametrize("case", CASES)
def test_regions_and_edge_controllers(case: str, case_network) -> None:
    net = case_network(case)
    R = net.n_regions
    assert set(net.site_region.tolist()) == set(range(R))
    deg = net.degree()
    for r, ctrl in enumerate(net.edge_controllers):
        members = np.flatnonzero(net.site_region == r)
        assert net.site_region[ctrl] == r
        assert deg[ctrl] == deg[members].max()


@pytest.mark.parametrize("case", CASES)
def test_pools_split_capacity(case: str, case_network) -> None:
    net = case_network(case)
    pools = net.pool_capacity_kbps
    cap_kbps = net.link_capacity_mbps * 1000.0
    assert pools.shape == (net.n_links, len(SLICES)) and pools.dtype.kind == "i"
    assert (pools > 0).all()
    assert (pools.sum(axis=1) <= cap_kbps + 1e-9).all()
    assert (pools.sum(axis=1) >= cap_kbps - len(SLICES)).all()  # only floor() rounding lost
    shares = np.array([net.config.slice_shares[s] for s in SLICES])
    np.testing.assert_allclose(
        pools / cap_kbps[:, None], np.broadcast_to(shares, pools.shape), atol=1e-5
    )


def test_custom_slice_shares(raw) -> None:
    cfg = NetworkConfig(slice_shares={"rt": 0.5, "nrt": 0.25, "mgmt": 0.25})
    net = from_pandapower(raw["case14"], name="case14", config=cfg)
    np.testing.assert_array_equal(
        net.pool_capacity_kbps, np.floor(net.link_capacity_mbps[:, None] * 1000 * [0.5, 0.25, 0.25])
    )


# ----------------------------------------------------------------------------- graph JSON


def test_graph_json_network(tiny_graph_json: Path) -> None:
    net = build_network(str(tiny_graph_json))
    assert (net.n_sites, net.n_links, net.n_regions) == (6, 9, 2)
    assert net.site_names == list("ABCDEF")
    assert net.control_centers == (0, 3)
    assert not net.length_estimated
    np.testing.assert_allclose(net.link_length_km, [40, 55, 30, 25, 60, 35, 80, 90, 70])
    kv = net.site_kv[net.link_ends].max(axis=1)
    np.testing.assert_allclose(net.link_capacity_mbps, [_sdh_capacity_mbps(x) for x in kv])
    assert net.site_region.tolist() == [0, 0, 0, 1, 1, 1]
    assert net.degree().tolist() == [3] * 6


def _write(path: Path, data: dict) -> str:
    path.write_text(json.dumps(data))
    return str(path)


def test_graph_json_capacity_overrides_voltage(tmp_path: Path) -> None:
    sites = [{"id": "x", "kv": 400}, {"id": "y", "kv": 400}, {"id": "z", "kv": 20}]
    links = [
        {"a": "x", "b": "y", "length_km": 5, "capacity_mbps": 100},
        {"a": "y", "b": "z", "length_km": 5},
    ]
    net = build_network(_write(tmp_path / "g.json", {"sites": sites, "links": links}))
    np.testing.assert_allclose(net.link_capacity_mbps, [100.0, 10_000.0])
    assert net.n_regions == 1  # no region labels, 3 sites → one Louvain region


def _two(**link: float) -> dict:
    """Two sites joined by one link with the given link fields."""
    return {
        "sites": [{"id": "a"}, {"id": "b"}],
        "links": [{"a": "a", "b": "b", "length_km": 10.0, **link}],
    }


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"sites": [{"id": "a"}, {"id": "a"}], "links": []}, "duplicate"),
        (
            {"sites": [{"id": "a"}, {"id": "b"}], "links": [{"a": "a", "b": "zz", "length_km": 1}]},
            "zz",
        ),
        (
            {"sites": [{"id": "a"}, {"id": "b"}], "links": [{"a": "a", "b": "a", "length_km": 1}]},
            "itself",
        ),
        (
            {"sites": [{"id": "a"}, {"id": "b"}], "links": [{"a": "a", "b": "b", "length_km": 0}]},
            "length_km",
        ),
        (
            {
                "sites": [{"id": "a"}, {"id": "b"}, {"id": "c"}],
                "links": [{"a": "a", "b": "b", "length_km": 1}],
            },
            "connected",
        ),
        (_two(length_km=float("nan")), "length_km nan is invalid"),
        (_two(length_km=float("inf")), "length_km inf is invalid"),
        (_two(capacity_mbps=-5.0), "capacity_mbps -5.0 is invalid"),
        (_two(capacity_mbps=1e30), "capacity_mbps 1e[+]?30 is invalid"),
        (_two(circuits=-1), "circuits -1.0 is invalid"),
        ({**_two(), "control_centers": ["nope"]}, "control center 'nope' names no site"),
    ],
)
def test_malformed_graph_json(tmp_path: Path, data: dict, needle: str) -> None:
    with pytest.raises(NetworkError, match=needle):
        build_network(_write(tmp_path / "bad.json", data))


def test_graph_json_without_links_is_a_network_error(tmp_path: Path) -> None:
    with pytest.raises(NetworkError):
        build_network(_write(tmp_path / "nolinks.json", {"sites": [{"id": "a"}], "links": []}))


def test_unknown_case_names_value_and_choices() -> None:
    with pytest.raises(UnknownCaseError, match="case_does_not_exist") as err:
        build_network("case_does_not_exist")
    assert "case30" in str(err.value) and isinstance(err.value, PcnallocError)
    with pytest.raises(UnknownCaseError, match=r"missing\.m"):
        build_network("missing.m")
