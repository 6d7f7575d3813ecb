"""The Policy protocol every decision maker implements; declared in :mod:`pcnalloc.core.policy`
with its optional capabilities and re-exported here for the baselines' users."""

from __future__ import annotations

from pcnalloc.core.policy import EnvBound, Ordered, Policy, Scoring, Summarising

__all__ = ["EnvBound", "Ordered", "Policy", "Scoring", "Summarising"]
