"""Access layer: rate formula, matchings, bidding, virtual queue, bad input, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pcnalloc.access import access_config, make_access_policy, run_access
from pcnalloc.access.bidding import bid_modes, bidding_prices
from pcnalloc.access.errors import AccessConfigError, UnreachableSinrError
from pcnalloc.access.matching import blocking_pairs, deferred_acceptance, serial_dictatorship
from pcnalloc.access.model import AccessModel
from pcnalloc.access.queues import queuing_delay, transmission_delay, virtual_queue
from pcnalloc.access.rates import ofdm_rate, sinr_gap
from pcnalloc.errors import PcnallocError, UnknownCaseError

SMALL = dict(devices=12, plc_subchannels=10, g5_subchannels=4, quota=3, epochs=2, slots_per_epoch=3)


def test_sinr_gap_and_rate_by_hand() -> None:
    # Q^-1(1e-7 / 4) = 5.45126 → Γ = 5.45126² / 2 = 14.8581
    assert sinr_gap(1e-7) == pytest.approx(14.8581, rel=1e-4)
    r = ofdm_rate(np.array([0.5, 1.0, 15.0, 300.0, 1000.0]), 14000.0, 8)
    # ⌊log2(1.5)⌋=0, ⌊log2 2⌋=1, ⌊log2 16⌋=4, ⌊log2 301⌋=8, ⌊log2 1001⌋=9 → capped at 8
    assert r.tolist() == [0.0, 14000.0, 56000.0, 112000.0, 112000.0]


def test_rate_rejects_negative_input() -> None:
    with pytest.raises(AccessConfigError):
        ofdm_rate(np.array([-1.0]), 14000.0, 8)
    with pytest.raises(AccessConfigError):
        ofdm_rate(np.array([1.0]), -5.0, 8)


def test_queues_by_hand() -> None:
    o = virtual_queue(np.array([0.0, 1.0, 0.5]), np.array([3.0, 0.5, 0.2]), 2.0)
    assert o.tolist() == [1.0, 0.0, 0.0]  # max(0+3-2, 0), max(1+0.5-2, 0), max(0.5+0.2-2, 0)
    assert queuing_delay(np.array([100.0, 5.0]), np.array([50.0, 0.0])).tolist() == [2.0, 0.0]
    d = transmission_delay(
        np.array([0.0, 1e3, 1e3]), np.array([0.0, 1e3, 0.0]), 1.0, np.array([1e3, 4e3, 0.0])
    )
    assert d.tolist() == [0.0, 0.5, 1.0]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 7), j=st.integers(1, 9), q=st.integers(1, 4), seed=st.integers(0, 10**6))
def test_deferred_acceptance_is_stable(n: int, j: int, q: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    dev, ch = rng.random((n, j)), rng.random((n, j))
    acc = rng.random((n, j)) < 0.7
    demand = rng.integers(0, q + 1, n)
    h = deferred_acceptance(dev, ch, acc, demand)
    assert blocking_pairs(h, dev, ch, acc, demand) == []
    assert all(acc[h[k], k] for k in range(j) if h[k] >= 0)
    assert (np.bincount(h[h >= 0], minlength=n) <= demand).all()
    # common subchannel ranking: the fast path gives the same stable matching
    prio = rng.random(n)
    common = np.repeat(prio[:, None], j, axis=1)
    assert (
        serial_dictatorship(prio, dev, acc, demand) == deferred_acceptance(dev, common, acc, demand)
    ).all()


def test_blocking_pair_check_catches_a_planted_fault() -> None:
    dev = np.array([[2.0, 1.0]])
    acc = np.ones((1, 2), dtype=bool)
    # the device holds its worse subchannel while the better one is idle
    assert blocking_pairs(np.array([-1, 0]), dev, dev, acc, np.array([1])) == [(0, 0)]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 30), seed=st.integers(0, 10**6), j1=st.integers(0, 30))
def test_bidding_terminates_and_respects_capacity(n: int, seed: int, j1: int) -> None:
    rng = np.random.default_rng(seed)
    j2 = max(0, n - j1) + int(rng.integers(0, 3))
    gamma = rng.normal(0, 1, (n, 2))
    price = bidding_prices(gamma, rng.exponential(5, n), (0.2, 0.2))
    res = bid_modes(gamma, price, (j1, j2), max_rounds=10_000)
    assert set(res.modes.tolist()) <= {0, 1}
    assert (res.modes == 0).sum() <= j1 and (res.modes == 1).sum() <= j2


def test_bidding_favours_the_larger_virtual_queue() -> None:
    gamma = np.array([[0.0, 1.0], [0.0, 1.0]])  # both want 5G, one place
    price = bidding_prices(gamma, np.array([0.0, 50.0]), (0.2, 0.2))
    res = bid_modes(gamma, price, (2, 1))
    assert res.modes.tolist() == [0, 1]


@pytest.mark.parametrize(
    "over",
    [
        {"quota": 200},
        {"devices": 500},
        {"plc_subchannels": -1},
        {"symbol_rate": -3.0},
        {"arrivals": {"mean_kbit": [-1.0, 2.0]}},
        {"nonsense": 1},
    ],
)
def test_bad_config_is_one_typed_line(over: dict) -> None:
    with pytest.raises(AccessConfigError) as err:
        access_config(over)
    assert "\n" not in str(err.value)


def test_unreachable_sinr_and_unknown_grid() -> None:
    with pytest.raises(UnreachableSinrError, match="unreachable"):
        AccessModel(access_config(SMALL, sinr_min_db=90.0), 0)
    with pytest.raises(UnknownCaseError):
        AccessModel(access_config(SMALL, grid="atlantis"), 0)
    assert issubclass(UnreachableSinrError, PcnallocError)


@pytest.mark.parametrize("name", ["matching", "raf", "raom", "all-plc", "all-5g", "greedy"])
def test_policies_keep_constraints_and_are_deterministic(name: str) -> None:
    cfg = access_config(SMALL)
    a = run_access(make_access_policy(name), cfg, seed=3)  # model.apply checks C2-C7
    b = run_access(make_access_policy(name), cfg, seed=3)
    assert a["metrics"] == b["metrics"]
    c = run_access(make_access_policy(name), cfg, seed=4)
    assert c["metrics"]["weighted_sum"] != a["metrics"]["weighted_sum"]


def test_model_rejects_a_broken_quota() -> None:
    m = AccessModel(access_config(SMALL), 0)
    m.begin_epoch(None)
    v = m.slot_view()
    i = int(np.argmax(v.acceptable.sum(axis=1)))
    h = np.where(v.acceptable[i], i, -1)
    assert (h >= 0).sum() > SMALL["quota"]
    with pytest.raises(AccessConfigError, match=r"C5|C2"):
        m.apply(v, h)
