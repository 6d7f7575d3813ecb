"""Settings of one policy played on one seeded episode: ``pcnalloc simulate`` and
``pcnalloc rules explain`` read their option defaults and help texts from these fields.

The environment (case, load, scenario) is :class:`~pcnalloc.config.EnvConfig`'s; these
objects hold what the verb adds: the policy, the seed and how far to play.
"""

from __future__ import annotations

from pydantic import Field

from pcnalloc.config import _Frozen
from pcnalloc.core.limits import REQUESTS_MAX, SEED_MAX

EXPLAIN_STEP_MAX = 100_000
"""Requests ``rules explain`` replays before the one it explains (each is one env step)."""


class PlayConfig(_Frozen):
    """One policy on one seeded episode."""

    policy: str = Field("ksp-ff", min_length=1, description="policy spec, e.g. ksp-ff or ksp-ff:16")
    seed: int = Field(0, ge=0, le=SEED_MAX, description="episode seed")


class SimulateConfig(PlayConfig):
    """``pcnalloc simulate``: play the policy for ``requests`` decisions and report metrics."""

    requests: int = Field(5000, ge=1, le=REQUESTS_MAX, description="requests to decide")


class ExplainConfig(PlayConfig):
    """``pcnalloc rules explain``: replay to request ``step`` and show the rules per action."""

    step: int = Field(
        0, ge=0, le=EXPLAIN_STEP_MAX, description="request index to explain (0 = first)"
    )
