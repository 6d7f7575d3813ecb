"""Operator heuristics, the offline MILP bound, and the shared Policy protocol."""

from pcnalloc.baselines.base import Policy
from pcnalloc.baselines.heuristics import FirstFit, LeastLoaded, RandomValid
from pcnalloc.baselines.offline import (
    Window,
    offline_bound,
    record_window,
    schedule_usage,
    solve_window,
    window_config,
    window_gap,
)
from pcnalloc.baselines.registry import make_policy, policy_names, register_policy

__all__ = [
    "FirstFit",
    "LeastLoaded",
    "Policy",
    "RandomValid",
    "Window",
    "make_policy",
    "offline_bound",
    "policy_names",
    "record_window",
    "register_policy",
    "schedule_usage",
    "solve_window",
    "window_config",
    "window_gap",
]
