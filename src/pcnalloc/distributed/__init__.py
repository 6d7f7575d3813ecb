"""Distributed operation: executors (process pool, Ray), regional edge agents with stale
summaries and two-phase reservations, site trust by Bayesian reputation.

The PettingZoo env lives in :mod:`pcnalloc.distributed.parallel_env` (import it directly).
The names below are loaded on first use: the command line reads the light
:mod:`pcnalloc.distributed.config` at start, and importing it must not load the environment
and grid code that the regions and scenarios need (PEP 562 module ``__getattr__``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_WHERE: dict[str, str] = {
    **dict.fromkeys(
        (
            "EXECUTORS",
            "Executor",
            "LocalExecutor",
            "MissingDependencyError",
            "RayExecutor",
            "SerialExecutor",
            "make_executor",
        ),
        "pcnalloc.core.executors",
    ),
    **dict.fromkeys(
        ("GapConfig", "RATES", "RegionConfig", "TrustRun", "TrustScenario"),
        "pcnalloc.distributed.config",
    ),
    **dict.fromkeys(
        (
            "CONFLICT_REASONS",
            "RegionalCoordinator",
            "distributed_gap",
            "link_owner",
            "run_regional",
        ),
        "pcnalloc.distributed.regions",
    ),
    **dict.fromkeys(("feedback_sweep", "run_trust_scenario"), "pcnalloc.distributed.scenarios"),
    **dict.fromkeys(
        ("ReputationTracker", "TrustConfig", "committee_mask", "dos_inference"),
        "pcnalloc.distributed.trust",
    ),
}
"""Public name → the module that defines it."""

if TYPE_CHECKING:
    from pcnalloc.core.executors import (
        EXECUTORS,
        Executor,
        LocalExecutor,
        MissingDependencyError,
        RayExecutor,
        SerialExecutor,
        make_executor,
    )
    from pcnalloc.distributed.config import (
        RATES,
        GapConfig,
        RegionConfig,
        TrustRun,
        TrustScenario,
    )
    from pcnalloc.distributed.regions import (
        CONFLICT_REASONS,
        RegionalCoordinator,
        distributed_gap,
        link_owner,
        run_regional,
    )
    from pcnalloc.distributed.scenarios import feedback_sweep, run_trust_scenario
    from pcnalloc.distributed.trust import (
        ReputationTracker,
        TrustConfig,
        committee_mask,
        dos_inference,
    )


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value  # later look-ups skip this hook
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})


__all__ = [
    "CONFLICT_REASONS",
    "EXECUTORS",
    "RATES",
    "Executor",
    "GapConfig",
    "LocalExecutor",
    "MissingDependencyError",
    "RayExecutor",
    "RegionConfig",
    "RegionalCoordinator",
    "ReputationTracker",
    "SerialExecutor",
    "TrustConfig",
    "TrustRun",
    "TrustScenario",
    "committee_mask",
    "distributed_gap",
    "dos_inference",
    "feedback_sweep",
    "link_owner",
    "make_executor",
    "run_regional",
    "run_trust_scenario",
]
