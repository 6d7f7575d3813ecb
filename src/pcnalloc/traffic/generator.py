"""Request arrivals: Poisson per class with a daily profile, emergency bursts, restorations.

Every draw is made when its event is handled, from the environment's one generator: base
arrivals, endpoints, holding times, burst classes and fault/cut places interleave in event
order, so drawing any of them ahead in vectorised batches would change the stream (and the
trajectories of a seed). The per-draw cost is kept low instead (Python-scalar tables,
``bisect`` for categorical draws).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

import numpy as np

from pcnalloc.config import TrafficConfig
from pcnalloc.network.model import CommNetwork
from pcnalloc.traffic.catalog import Catalog
from pcnalloc.traffic.profile import DailyProfile
from pcnalloc.traffic.rates import solve_rates

KIND_NEW, KIND_BURST, KIND_RESTORATION = 0, 1, 2
KINDS = ("new", "burst", "restoration")


@dataclass(slots=True)
class Request:
    """One service request.

    Attributes:
        id: sequence number within the episode.
        time_s: arrival time (simulated seconds since midnight of day 0).
        cls: class index into the catalog.
        src, dst: site indices (``src`` is the originating site; its region decides it).
        holding_s: how long the flow stays if admitted.
        kind: KIND_NEW, KIND_BURST or KIND_RESTORATION.
        full_holding_s: the holding time of the service as first requested (0 = this
            request's own ``holding_s``). A restoration asks only for what is left of its
            service, so it can earn only the fraction ``holding_s / full_holding_s`` of the
            class value (DESIGN §4 accounting).
    """

    id: int
    time_s: float
    cls: int
    src: int
    dst: int
    holding_s: float
    kind: int = KIND_NEW
    full_holding_s: float = 0.0

    @property
    def value_fraction(self) -> float:
        """Share of the class value this request can earn (1 for a fresh request)."""
        if self.full_holding_s <= 0:
            return 1.0
        return min(1.0, self.holding_s / self.full_holding_s)


class TrafficModel:
    """Static traffic description of one network + catalog + config; sampling takes an rng.

    Args:
        net: the network.
        catalog: service classes.
        config: offered load, profile and events.
    """

    def __init__(self, net: CommNetwork, catalog: Catalog, config: TrafficConfig) -> None:
        self.net = net
        self.catalog = catalog
        self.config = config
        self.profile = DailyProfile(config.profile)
        self.rates_C = solve_rates(net, catalog, config.load, config.primary_cc_share)
        self.total_rate = float(self.rates_C.sum())
        self.class_p = self.rates_C / self.total_rate
        self._class_cdf = np.cumsum(self.class_p)
        self._class_cdf[-1] = 1.0
        cc1, cc2 = net.control_centers
        self.sources = np.array([s for s in range(net.n_sites) if s not in (cc1, cc2)] or [cc2])
        w = catalog.emergency_weight_C
        self.burst_p = w / w.sum() if w.sum() > 0 else None
        self._burst_cdf = np.cumsum(self.burst_p) if self.burst_p is not None else None
        self._endpoint_kind = np.array(
            [
                ("line_ends", "to_cc", "cc_bidir", "site_pair").index(c.endpoints)
                for c in catalog.classes
            ]
        )
        # Python-scalar copies of what every draw reads (a numpy scalar read or a scalar
        # searchsorted costs more than the draw itself); the draws and their order are those
        # of the array versions, value for value.
        self._kind_C: list[int] = self._endpoint_kind.tolist()
        self._ends_E: list[tuple[int, int]] = [(int(a), int(b)) for a, b in net.link_ends]
        self._n_links = int(net.n_links)
        self._sources_l: list[int] = self.sources.tolist()
        self._n_sources = int(self.sources.size)
        self._holding_C: list[float] = catalog.mean_holding_s_C.astype(float).tolist()
        self._cc_share = config.primary_cc_share
        self._ccs = tuple(int(c) for c in net.control_centers)
        self._class_cdf_l: list[float] = self._class_cdf.tolist()
        self._burst_cdf_l: list[float] | None = (
            self._burst_cdf.tolist() if self._burst_cdf is not None else None
        )
        self._peak_rate = self.total_rate * self.profile.peak
        self._gap_mean = 1.0 / self._peak_rate

    def set_burst_weights(self, weights: dict[str, float]) -> None:
        """Replace the burst class mix (class name → weight; a scenario's choice).

        Raises:
            ConfigError: an unknown class name or weights that are negative or all zero.
        """
        from pcnalloc.errors import ConfigError, choices

        w = np.zeros(self.catalog.n_classes)
        for name, x in weights.items():
            if name not in self.catalog.names:
                known = choices(self.catalog.names)
                raise ConfigError(f"burst_weights: unknown class {name!r}; accepted: {known}")
            if not np.isfinite(x) or x < 0:
                raise ConfigError(f"burst_weights[{name}] must be a number ≥ 0, got {x!r}")
            w[self.catalog.names.index(name)] = x
        if w.sum() <= 0:
            raise ConfigError("burst_weights must give some class a positive weight")
        self.burst_p = w / w.sum()
        self._burst_cdf = np.cumsum(self.burst_p)
        self._burst_cdf[-1] = 1.0
        self._burst_cdf_l = self._burst_cdf.tolist()

    def expected_span_s(self, requests: int, t_s: float) -> float:
        """Simulated time ``requests`` base arrivals take at the profile's rate at ``t_s``."""
        return requests / max(self.total_rate * self.profile(t_s), 1e-12)

    def mean_concurrent_flows(self) -> np.ndarray:
        """Mean number of flows per class in steady state (Little's law), shape (C,)."""
        return self.rates_C * self.catalog.mean_holding_s_C

    def _cc(self, rng: np.random.Generator) -> int:
        cc1, cc2 = self._ccs
        return cc1 if rng.random() < self._cc_share else cc2

    def endpoints(
        self, rng: np.random.Generator, cls: int, near: np.ndarray | None = None
    ) -> tuple[int, int]:
        """Draw (src, dst) for a class; ``near`` restricts the originating site (bursts)."""
        kind = self._kind_C[cls]
        if kind == 0:  # line_ends
            return self._ends_E[rng.integers(self._n_links)]
        if kind == 3:  # site_pair
            n = self.net.n_sites
            a = int(rng.integers(n))
            b = int((a + rng.integers(1, n)) % n)
            return a, b
        if near is not None and near.size:
            site = int(near[rng.integers(near.size)])
        else:
            site = self._sources_l[rng.integers(self._n_sources)]
        cc = self._cc(rng)
        if site == cc:
            cc1, cc2 = self._ccs
            cc = cc2 if cc == cc1 else cc1
        return site, cc

    def holding(self, rng: np.random.Generator, cls: int) -> float:
        return float(rng.exponential(self._holding_C[cls]))

    def next_arrival(self, rng: np.random.Generator, t_s: float) -> tuple[float, int]:
        """Next base arrival after ``t_s`` by thinning the profile-modulated Poisson process."""
        gap, peak, profile = self._gap_mean, self.profile.peak, self.profile
        while True:
            t_s += float(rng.exponential(gap))
            if rng.random() * peak <= profile(t_s):
                return t_s, _draw_list(rng.random(), self._class_cdf_l)

    def burst_class(self, rng: np.random.Generator) -> int | None:
        if self._burst_cdf_l is None:
            return None
        return _draw_list(rng.random(), self._burst_cdf_l)


def _draw(rng: np.random.Generator, cdf: np.ndarray) -> int:
    """Categorical draw from a cumulative distribution (one uniform, a binary search)."""
    return min(int(np.searchsorted(cdf, rng.random(), side="right")), cdf.size - 1)


def _draw_list(u: float, cdf: list[float]) -> int:
    """:func:`_draw` for a uniform ``u`` already drawn and the distribution as a list
    (``bisect_right`` makes the comparisons of ``searchsorted(side="right")``)."""
    i = bisect_right(cdf, u)
    n = len(cdf) - 1
    return i if i < n else n
