"""Access policies by name."""

from __future__ import annotations

from collections.abc import Callable

from pcnalloc.access.baselines import FireworksPolicy, RaomPolicy
from pcnalloc.access.policies import FixedModePolicy, GreedyPolicy, MatchingPolicy
from pcnalloc.access.policy import AccessPolicy
from pcnalloc.errors import UnknownPolicyError

POLICIES: dict[str, Callable[[], AccessPolicy]] = {
    "matching": MatchingPolicy,
    "raf": FireworksPolicy,
    "raom": RaomPolicy,
    "all-plc": lambda: FixedModePolicy(0),
    "all-5g": lambda: FixedModePolicy(1),
    "greedy": GreedyPolicy,
}


def make_access_policy(name: str) -> AccessPolicy:
    """A fresh policy by registry name.

    Raises:
        UnknownPolicyError: naming the accepted names.
    """
    if name not in POLICIES:
        raise UnknownPolicyError(name, POLICIES)
    return POLICIES[name]()
