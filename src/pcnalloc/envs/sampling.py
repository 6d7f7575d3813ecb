"""Compiled draws of a base arrival: its endpoints, holding time and the next arrival.

A base arrival, the simulator's most frequent event, makes five to eight draws in Python
(:meth:`TrafficModel.endpoints`, :meth:`~TrafficModel.holding`,
:meth:`~TrafficModel.next_arrival`), each a method call on the generator. Here one compiled
call makes them all on the env's own generator: numba's ``Generator`` methods draw
``random``, ``exponential`` and ``integers`` from the same bit generator with numpy's
algorithms, so the stream, and every value drawn, is the one the Python methods give
(tests/envs/test_sim_sampling_parity.py compares them draw for draw), and draws made in
Python before or after continue the same stream.

The generator is held by a small jitclass (:class:`ArrivalSampler`): numba unboxes a
``Generator`` argument in about 9 µs per call, a jitclass in a fraction of one. The tables
are the :class:`~pcnalloc.traffic.generator.TrafficModel`'s own Python-scalar tables (read,
not recomputed, so they cannot drift from what the Python methods use).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, types
from numba.experimental import jitclass

from pcnalloc.traffic.generator import TrafficModel

_SPEC = [
    ("rng", types.NumPyRandomGeneratorType("NumPyRandomGeneratorType")),
    ("profile_M", types.float64[::1]),
    ("class_cdf_C", types.float64[::1]),
    ("kind_C", types.int64[::1]),
    ("ends_E2", types.int64[:, ::1]),
    ("sources", types.int64[::1]),
    ("holding_C", types.float64[::1]),
    ("cc1", types.int64),
    ("cc2", types.int64),
    ("cc_share", types.float64),
    ("gap_mean", types.float64),
    ("peak", types.float64),
    ("n_sites", types.int64),
    ("n_links", types.int64),
]


@jitclass(_SPEC)
class ArrivalSampler:  # pragma: no cover - compiled
    """The env's generator and the traffic model's tables, for :func:`draw_arrival`."""

    def __init__(
        self,
        rng,
        profile_M,
        class_cdf_C,
        kind_C,
        ends_E2,
        sources,
        holding_C,
        cc1,
        cc2,
        cc_share,
        gap_mean,
        peak,
        n_sites,
        n_links,
    ):
        self.rng = rng
        self.profile_M = profile_M
        self.class_cdf_C = class_cdf_C
        self.kind_C = kind_C
        self.ends_E2 = ends_E2
        self.sources = sources
        self.holding_C = holding_C
        self.cc1 = cc1
        self.cc2 = cc2
        self.cc_share = cc_share
        self.gap_mean = gap_mean
        self.peak = peak
        self.n_sites = n_sites
        self.n_links = n_links


def make_sampler(rng: np.random.Generator, traffic: TrafficModel) -> Any:
    """An :class:`ArrivalSampler` drawing from ``rng`` with ``traffic``'s tables."""
    tm = traffic
    cc1, cc2 = tm._ccs
    return ArrivalSampler(
        rng,
        np.asarray(tm.profile._table, dtype=np.float64),
        np.asarray(tm._class_cdf_l, dtype=np.float64),
        np.asarray(tm._kind_C, dtype=np.int64),
        np.ascontiguousarray(np.asarray(tm._ends_E, dtype=np.int64).reshape(-1, 2)),
        np.asarray(tm._sources_l, dtype=np.int64),
        np.asarray(tm._holding_C, dtype=np.float64),
        int(cc1),
        int(cc2),
        float(tm._cc_share),
        float(tm._gap_mean),
        float(tm.profile.peak),
        int(tm.net.n_sites),
        int(tm._n_links),
    )


@njit(cache=False, nogil=True)
def _profile(table, t_s):  # pragma: no cover - compiled
    """:meth:`DailyProfile.__call__` (the same arithmetic, in its order)."""
    m = (t_s / 60.0) % 1440.0
    i = int(m)
    frac = m - i
    return table[i] * (1.0 - frac) + table[i + 1] * frac


@njit(cache=False, nogil=True)
def _draw_cdf(u, cdf):  # pragma: no cover - compiled
    """``generator._draw_list``: ``bisect_right`` clipped to the last index."""
    lo, hi = 0, cdf.shape[0]
    while lo < hi:
        mid = (lo + hi) // 2
        if u < cdf[mid]:
            hi = mid
        else:
            lo = mid + 1
    n = cdf.shape[0] - 1
    return lo if lo < n else n


@njit(cache=False, nogil=True)
def draw_arrival(s, t_s, cls):  # pragma: no cover - compiled
    """A base arrival of class ``cls`` at ``t_s``: ``(src, dst, holding_s, next_t_s,
    next_cls)``, drawn as ``endpoints(rng, cls)``, ``holding(rng, cls)`` and
    ``next_arrival(rng, t_s)`` draw them, in that order."""
    rng = s.rng
    kind = s.kind_C[cls]
    if kind == 0:  # line_ends
        e = rng.integers(0, s.n_links)
        src, dst = s.ends_E2[e, 0], s.ends_E2[e, 1]
    elif kind == 3:  # site_pair
        n = s.n_sites
        a = rng.integers(0, n)
        src, dst = a, (a + rng.integers(1, n)) % n
    else:
        site = s.sources[rng.integers(0, s.sources.shape[0])]
        cc = s.cc1 if rng.random() < s.cc_share else s.cc2
        if site == cc:
            cc = s.cc2 if cc == s.cc1 else s.cc1
        src, dst = site, cc
    holding = rng.exponential(s.holding_C[cls])
    t = t_s
    while True:
        t += rng.exponential(s.gap_mean)
        if rng.random() * s.peak <= _profile(s.profile_M, t):
            return src, dst, holding, t, _draw_cdf(rng.random(), s.class_cdf_C)
