"""Grid case → communication network: sites, fiber links, slice pools, regions, paths."""

from pcnalloc.network.builder import available_cases, build_network, cached_network
from pcnalloc.network.model import CommNetwork, capacity_for_kv
from pcnalloc.network.paths import CandidateSet, PathCache

__all__ = [
    "CandidateSet",
    "CommNetwork",
    "PathCache",
    "available_cases",
    "build_network",
    "cached_network",
    "capacity_for_kv",
]
