"""Operator heuristics and the shared Policy protocol."""

from pcnalloc.baselines.base import Policy
from pcnalloc.baselines.heuristics import FirstFit, LeastLoaded, RandomValid
from pcnalloc.baselines.registry import make_policy, policy_names, register_policy

__all__ = [
    "FirstFit",
    "LeastLoaded",
    "Policy",
    "RandomValid",
    "make_policy",
    "policy_names",
    "register_policy",
]
