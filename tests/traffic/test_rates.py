"""Offered-load rates, the min-cut inflow bound, the daily profile and arrival sampling."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from pcnalloc.config import SLICES, TrafficConfig
from pcnalloc.errors import ConfigError
from pcnalloc.network import CommNetwork
from pcnalloc.traffic import TrafficModel, load_catalog
from pcnalloc.traffic.profile import DailyProfile
from pcnalloc.traffic.rates import class_link_incidence, max_concurrent_inflow, solve_rates


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def _nets(tiny_net, case_network) -> list[CommNetwork]:
    return [tiny_net, case_network("case30")]


def test_rates_positive_and_linear_in_load(tiny_net, case_network, catalog) -> None:
    for net in _nets(tiny_net, case_network):
        r1 = solve_rates(net, catalog, 1.0, 0.7)
        r2 = solve_rates(net, catalog, 2.0, 0.7)
        assert r1.shape == (catalog.n_classes,) and (r1 > 0).all()
        np.testing.assert_allclose(r2, 2.0 * r1, rtol=1e-12)


def test_bandwidth_time_split_by_load_share(tiny_net, catalog) -> None:
    rates = solve_rates(tiny_net, catalog, 1.0, 0.7)
    demand_mbps = rates * catalog.bandwidth_kbps_C / 1000.0 * catalog.mean_holding_s_C
    for s in range(len(SLICES)):
        m = catalog.slice_C == s
        ratio = demand_mbps[m] / catalog.load_share_C[m]
        np.testing.assert_allclose(ratio, ratio[0], rtol=1e-9)


def test_tightest_cut_carries_the_target_load(tiny_net, case_network, catalog) -> None:
    """ρ = max over (primary-center cut, backup-center cut, whole network) of demand/capacity."""
    share = 0.7
    for net in _nets(tiny_net, case_network):
        load = 1.3
        rates = solve_rates(net, catalog, load, share)
        demand = rates * catalog.bandwidth_kbps_C / 1000.0 * catalog.mean_holding_s_C
        hops = class_link_incidence(net, catalog, share).sum(axis=1)
        hops = hops * np.where(catalog.protected_C, 2.0, 1.0)
        to_cc = np.array([c.endpoints in ("to_cc", "cc_bidir") for c in catalog.classes])
        cap = net.pool_capacity_kbps / 1000.0
        cc1, cc2 = net.control_centers
        for s in range(len(SLICES)):
            m = catalog.slice_C == s
            cc_demand = demand[m & to_cc].sum()
            rho = max(
                cc_demand * share / max_concurrent_inflow(net, cap[:, s], cc1),
                cc_demand * (1 - share) / max_concurrent_inflow(net, cap[:, s], cc2),
                (demand[m] * hops[m]).sum() / cap[:, s].sum(),
            )
            assert rho == pytest.approx(load, rel=1e-9), (net.name, SLICES[s])


def _inflow_networkx(net: CommNetwork, cap_mbps_E: np.ndarray, sink: int) -> float:
    """Independent bisection with networkx max-flow (equal demand from every other site)."""
    sources = [v for v in range(net.n_sites) if v != sink]
    lo, hi = 0.0, float(cap_mbps_E[(net.link_ends == sink).any(axis=1)].sum())
    for _ in range(40):
        t = 0.5 * (lo + hi)
        g = nx.DiGraph()
        for (a, b), c in zip(net.link_ends.tolist(), cap_mbps_E, strict=True):
            g.add_edge(a, b, capacity=float(c))
            g.add_edge(b, a, capacity=float(c))
        for v in sources:
            g.add_edge("S", v, capacity=t / len(sources))
        if nx.maximum_flow_value(g, "S", sink) >= t * (1 - 1e-9):
            lo = t
        else:
            hi = t
    return lo


def test_max_concurrent_inflow_matches_networkx(tiny_net) -> None:
    rng = np.random.default_rng(3)
    for sink in range(tiny_net.n_sites):
        cap = rng.uniform(5.0, 50.0, tiny_net.n_links)
        got = max_concurrent_inflow(tiny_net, cap, sink)
        ref = _inflow_networkx(tiny_net, cap, sink)
        assert got == pytest.approx(ref, rel=5e-3)
        # Never more than the links around the sink can take.
        assert got <= cap[(tiny_net.link_ends == sink).any(axis=1)].sum() + 1e-9


def test_uniform_ring_inflow_is_sink_degree_bound(tiny_net) -> None:
    """Every tiny site has 3 links; with equal capacities the sink's links are the min cut."""
    cap = np.full(tiny_net.n_links, 10.0)
    assert max_concurrent_inflow(tiny_net, cap, 0) == pytest.approx(30.0, rel=2e-3)


# ----------------------------------------------------------------------------- profile


@pytest.mark.parametrize("kind", ["two_peak", "flat"])
def test_profile_has_daily_mean_one(kind: str) -> None:
    prof = DailyProfile(kind)
    t = np.arange(0, 86400, 30.0)
    values = np.array([prof(x) for x in t])
    assert values.mean() == pytest.approx(1.0, rel=1e-3)
    assert values.max() <= prof.peak + 1e-12 and (values > 0).all()
    assert prof(3600.0) == pytest.approx(prof(3600.0 + 86400.0 * 3))  # periodic


def test_two_peak_profile_shape() -> None:
    prof = DailyProfile("two_peak")
    night, morning, midday, evening = (prof(h * 3600.0) for h in (3, 10, 14.5, 19))
    assert evening > morning > midday > night
    assert prof(19 * 3600.0) == pytest.approx(prof.peak, rel=1e-3)


def test_unknown_profile_is_config_error() -> None:
    with pytest.raises(ConfigError, match="'weekly'"):
        DailyProfile("weekly")


# ----------------------------------------------------------------------------- sampling


def test_arrivals_follow_solved_rates(tiny_net, catalog) -> None:
    """Flat profile: inter-arrival mean 1/Σλ and class frequencies λ_c/Σλ."""
    tm = TrafficModel(tiny_net, catalog, TrafficConfig(profile="flat", load=1.0))
    rng = np.random.default_rng(0)
    n = 20_000
    t, counts = 0.0, np.zeros(catalog.n_classes)
    for _ in range(n):
        t, c = tm.next_arrival(rng, t)
        counts[c] += 1
    assert t / n == pytest.approx(1.0 / tm.total_rate, rel=0.03)
    expected = tm.rates_C / tm.total_rate
    big = expected > 0.02
    np.testing.assert_allclose(counts[big] / n, expected[big], rtol=0.1)
    np.testing.assert_allclose(tm.mean_concurrent_flows(), tm.rates_C * catalog.mean_holding_s_C)


def test_endpoints_by_class_kind(tiny_net, catalog) -> None:
    tm = TrafficModel(tiny_net, catalog, TrafficConfig())
    rng = np.random.default_rng(0)
    cc = set(tiny_net.control_centers)
    links = {tuple(sorted(e)) for e in tiny_net.link_ends.tolist()}
    for c, cls in enumerate(catalog.classes):
        for _ in range(50):
            src, dst = tm.endpoints(rng, c)
            assert src != dst and 0 <= src < tiny_net.n_sites and 0 <= dst < tiny_net.n_sites
            if cls.endpoints == "line_ends":
                assert tuple(sorted((src, dst))) in links
            elif cls.endpoints in ("to_cc", "cc_bidir"):
                assert dst in cc
            h = tm.holding(rng, c)
            assert h > 0
