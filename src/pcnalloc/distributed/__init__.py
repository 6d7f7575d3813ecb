"""Distributed operation: executors for sweeps and rollouts (process pool, Ray)."""

from pcnalloc.distributed.executors import (
    EXECUTORS,
    Executor,
    LocalExecutor,
    MissingDependencyError,
    RayExecutor,
    SerialExecutor,
    make_executor,
)

__all__ = [
    "EXECUTORS",
    "Executor",
    "LocalExecutor",
    "MissingDependencyError",
    "RayExecutor",
    "SerialExecutor",
    "make_executor",
]
