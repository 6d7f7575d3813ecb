"""Request arrivals: Poisson per class with a daily profile, emergency bursts, restorations."""

from __future__ import annotations

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

    def expected_span_s(self, requests: int, t_s: float) -> float:
        """Simulated time ``requests`` base arrivals take at the profile's rate at ``t_s``."""
        return requests / max(self.total_rate * self.profile(t_s), 1e-12)

    def mean_concurrent_flows(self) -> np.ndarray:
        """Mean number of flows per class in steady state (Little's law), shape (C,)."""
        return self.rates_C * self.catalog.mean_holding_s_C

    def _cc(self, rng: np.random.Generator) -> int:
        cc1, cc2 = self.net.control_centers
        return cc1 if rng.random() < self.config.primary_cc_share else cc2

    def endpoints(
        self, rng: np.random.Generator, cls: int, near: np.ndarray | None = None
    ) -> tuple[int, int]:
        """Draw (src, dst) for a class; ``near`` restricts the originating site (bursts)."""
        kind = self._endpoint_kind[cls]
        if kind == 0:  # line_ends
            a, b = self.net.link_ends[rng.integers(self.net.n_links)]
            return int(a), int(b)
        if kind == 3:  # site_pair
            n = self.net.n_sites
            a = int(rng.integers(n))
            b = int((a + rng.integers(1, n)) % n)
            return a, b
        pool = near if near is not None and near.size else self.sources
        site = int(pool[rng.integers(pool.size)])
        cc = self._cc(rng)
        if site == cc:
            cc = (
                self.net.control_centers[1]
                if cc == self.net.control_centers[0]
                else self.net.control_centers[0]
            )
        return site, cc

    def holding(self, rng: np.random.Generator, cls: int) -> float:
        return float(rng.exponential(self.catalog.mean_holding_s_C[cls]))

    def next_arrival(self, rng: np.random.Generator, t_s: float) -> tuple[float, int]:
        """Next base arrival after ``t_s`` by thinning the profile-modulated Poisson process."""
        peak = self.total_rate * self.profile.peak
        while True:
            t_s += float(rng.exponential(1.0 / peak))
            if rng.random() * self.profile.peak <= self.profile(t_s):
                return t_s, _draw(rng, self._class_cdf)

    def burst_class(self, rng: np.random.Generator) -> int | None:
        if self._burst_cdf is None:
            return None
        return _draw(rng, self._burst_cdf)


def _draw(rng: np.random.Generator, cdf: np.ndarray) -> int:
    """Categorical draw from a cumulative distribution (one uniform, a binary search)."""
    return min(int(np.searchsorted(cdf, rng.random(), side="right")), cdf.size - 1)
