"""Distributed operation: executors (process pool, Ray), regional edge agents with stale
summaries and two-phase reservations, site trust by Bayesian reputation.

The PettingZoo env lives in :mod:`pcnalloc.distributed.parallel_env` (import it directly).
"""

from pcnalloc.core.executors import (
    EXECUTORS,
    Executor,
    LocalExecutor,
    MissingDependencyError,
    RayExecutor,
    SerialExecutor,
    make_executor,
)
from pcnalloc.distributed.regions import (
    CONFLICT_REASONS,
    RegionalCoordinator,
    RegionConfig,
    distributed_gap,
    link_owner,
    run_regional,
)
from pcnalloc.distributed.scenarios import RATES, TrustScenario, feedback_sweep, run_trust_scenario
from pcnalloc.distributed.trust import (
    ReputationTracker,
    TrustConfig,
    committee_mask,
    dos_inference,
)

__all__ = [
    "CONFLICT_REASONS",
    "EXECUTORS",
    "RATES",
    "Executor",
    "LocalExecutor",
    "MissingDependencyError",
    "RayExecutor",
    "RegionConfig",
    "RegionalCoordinator",
    "ReputationTracker",
    "SerialExecutor",
    "TrustConfig",
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
