"""Core services every stage uses: executors that map work over processes or Ray.

Sits just above :mod:`pcnalloc.errors`; nothing here imports a stage.
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

__all__ = [
    "EXECUTORS",
    "Executor",
    "LocalExecutor",
    "MissingDependencyError",
    "RayExecutor",
    "SerialExecutor",
    "make_executor",
]
