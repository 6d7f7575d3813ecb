"""The communication network: sites, OPGW fiber links, slice pools, regions, control centers."""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from pcnalloc.config import SLICES, NetworkConfig

SDH_CAPACITY_MBPS: tuple[tuple[float, float], ...] = (
    (330.0, 10_000.0),  # OTN 10G
    (220.0, 2_488.32),  # STM-16
    (100.0, 622.08),  # STM-4
    (0.0, 155.52),  # STM-1
)
"""(minimum kV, capacity Mb/s): optical hierarchy a utility deploys on OPGW by voltage level."""


def capacity_for_kv(kv: np.ndarray) -> np.ndarray:
    """Link capacity (Mb/s) for the higher voltage (kV) of its two ends, DESIGN §2."""
    kv = np.asarray(kv, dtype=float)
    out = np.full(kv.shape, SDH_CAPACITY_MBPS[-1][1])
    for threshold, cap in reversed(SDH_CAPACITY_MBPS[:-1]):
        out = np.where(kv >= threshold, cap, out)
    return out


@dataclass(frozen=True, eq=False)
class CommNetwork:
    """A utility telecom network derived from a grid.

    Links are indexed 0..E-1; index E is a sentinel "no link" used to pad path arrays, so
    every per-link array that path arrays index into has length E + 1 where noted.

    Attributes:
        name: case name.
        site_names: one label per site (the lowest bus index it merges, as ``"bus12"``).
        site_buses: grid buses merged into each site.
        site_kv: highest nominal voltage at each site (kV), shape (N,).
        site_xy: drawing coordinates, shape (N, 2).
        site_region: region index of each site, shape (N,).
        link_ends: site indices of each link, shape (E, 2).
        link_length_km: route length, shape (E,).
        link_circuits: parallel grid lines merged into the link, shape (E,).
        link_capacity_mbps: line rate of the fiber system, shape (E,).
        pool_capacity_kbps: capacity of each slice pool, integer kb/s, shape (E, S).
        link_prop_ms: propagation delay, shape (E,).
        control_centers: (primary, backup) site indices.
        edge_controllers: site index of each region's edge controller, shape (R,).
        config: the network config it was built with.
    """

    name: str
    site_names: list[str]
    site_buses: list[list[int]]
    site_kv: np.ndarray
    site_xy: np.ndarray
    site_region: np.ndarray
    link_ends: np.ndarray
    link_length_km: np.ndarray
    link_circuits: np.ndarray
    link_capacity_mbps: np.ndarray
    pool_capacity_kbps: np.ndarray
    link_prop_ms: np.ndarray
    control_centers: tuple[int, int]
    edge_controllers: np.ndarray
    length_estimated: bool
    config: NetworkConfig
    graph: nx.Graph = field(repr=False)

    @property
    def n_sites(self) -> int:
        return len(self.site_names)

    @property
    def n_links(self) -> int:
        return int(self.link_ends.shape[0])

    @property
    def n_regions(self) -> int:
        return int(self.edge_controllers.shape[0])

    @property
    def slices(self) -> tuple[str, ...]:
        return SLICES

    def degree(self) -> np.ndarray:
        """Number of links at each site, shape (N,)."""
        return np.bincount(self.link_ends.ravel(), minlength=self.n_sites)

    def summary(self) -> dict[str, object]:
        """Headline figures for tables and JSON."""
        caps, counts = np.unique(self.link_capacity_mbps, return_counts=True)
        return {
            "case": self.name,
            "sites": self.n_sites,
            "links": self.n_links,
            "regions": self.n_regions,
            "control_centers": [self.site_names[i] for i in self.control_centers],
            "edge_controllers": [self.site_names[i] for i in self.edge_controllers],
            "links_by_capacity_mbps": {f"{c:g}": int(n) for c, n in zip(caps, counts, strict=True)},
            "total_length_km": round(float(self.link_length_km.sum()), 1),
            "length_estimated_from_reactance": self.length_estimated,
            "mean_degree": round(float(self.degree().mean()), 2),
            "diameter_hops": nx.diameter(self.graph) if self.n_sites <= 3000 else None,
        }
