"""Executors that map a picklable function over work items: serial, process pool, Ray.

Sweeps, rollouts and library building hand their work to an :class:`Executor`; every executor
returns results in the order of the items, and results depend only on the items (each item
carries its own seed), so the same sweep gives identical numbers whichever executor runs it.

* :class:`SerialExecutor` runs in the calling process (debugging, tiny jobs).
* :class:`LocalExecutor` runs on a local process pool (the default). Workers start with the
  ``spawn`` method: forking a process that has imported torch (with its thread pools) is not
  safe, and spawned workers start from a clean interpreter on every platform.
* :class:`RayExecutor` runs on a Ray cluster (``--executor ray``) when a user outgrows one
  machine; ``ray`` is an optional extra imported only when this executor is built.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from typing import Any, Protocol, TypeVar, runtime_checkable

from pcnalloc.errors import ConfigError, PcnallocError

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
_C = TypeVar("_C", bound="_Closing")
Progress = Callable[[int], None]
"""Called with the number of items just finished (always 1 here)."""

EXECUTORS: tuple[str, ...] = ("serial", "process", "ray")
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


class MissingDependencyError(PcnallocError):
    """An optional dependency that the requested feature needs is not installed."""


@runtime_checkable
class Executor(Protocol):
    """Maps a function over items and returns the results in item order.

    Attributes:
        name: ``serial``, ``process`` or ``ray``.
        workers: how many items may run at once.
    """

    name: str
    workers: int

    def map_ordered(
        self, fn: Callable[[T], R], items: Sequence[T], *, progress: Progress | None = None
    ) -> list[R]:
        """``[fn(x) for x in items]``, possibly in parallel; the first failure is raised."""
        ...

    def close(self) -> None:
        """Release workers (idempotent)."""
        ...

    def __enter__(self) -> Executor:
        """The executor itself; leaving the ``with`` block closes it."""
        ...

    def __exit__(self, *exc: object) -> None:
        """Call :meth:`close`."""
        ...


class _Closing:
    def __enter__(self: _C) -> _C:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        return None


class SerialExecutor(_Closing):
    """Runs every item in the calling process, in order."""

    name = "serial"
    workers = 1

    def map_ordered(
        self, fn: Callable[[T], R], items: Sequence[T], *, progress: Progress | None = None
    ) -> list[R]:
        out = []
        for x in items:
            out.append(fn(x))
            if progress is not None:
                progress(1)
        return out


def _init_worker() -> None:
    """One BLAS/OpenMP thread per worker: parallelism comes from the processes."""
    for var in _THREAD_VARS:
        os.environ.setdefault(var, "1")


class LocalExecutor(_Closing):
    """A local pool of ``workers`` spawned processes, kept alive across calls until closed.

    Args:
        workers: process count (≥ 1); None = ``os.cpu_count()``.
    """

    name = "process"

    def __init__(self, workers: int | None = None) -> None:
        n = workers if workers is not None else (os.cpu_count() or 1)
        if n < 1:
            raise ConfigError(f"workers must be ≥ 1, got {n}")
        self.workers = int(n)
        self._pool: ProcessPoolExecutor | None = None

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=mp.get_context("spawn"),
                initializer=_init_worker,
            )
        return self._pool

    def map_ordered(
        self, fn: Callable[[T], R], items: Sequence[T], *, progress: Progress | None = None
    ) -> list[R]:
        if not items:
            return []
        pool = self._get_pool()
        futures: list[Future] = [pool.submit(fn, x) for x in items]
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for f in done:
                    if f.exception() is not None:
                        raise f.exception()  # type: ignore[misc]
                    if progress is not None:
                        progress(1)
        except BaseException:
            for f in pending:
                f.cancel()
            raise
        return [f.result() for f in futures]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class RayExecutor(_Closing):
    """Runs items as Ray tasks (one CPU each).

    Connects to a running cluster when ``address`` is given (or ``RAY_ADDRESS`` is set);
    otherwise starts a local Ray instance with ``num_cpus`` CPUs and shuts it down on
    :meth:`close`. An already initialised Ray session is reused and left running.

    Args:
        num_cpus: CPUs of a locally started instance; None = all.
        address: a cluster address (``ray://…`` or ``auto``).

    Raises:
        MissingDependencyError: when ray is not installed.
    """

    name = "ray"

    def __init__(self, num_cpus: int | None = None, *, address: str | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise MissingDependencyError(
                "the ray executor needs the optional 'ray' package; install it with "
                "pip install 'pcnalloc[distributed]' or use --executor process"
            ) from None
        if num_cpus is not None and num_cpus < 1:
            raise ConfigError(f"num_cpus must be ≥ 1, got {num_cpus}")
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address is not None:
                kwargs["address"] = address
            else:
                kwargs["num_cpus"] = num_cpus
            env_vars = {v: os.environ.get(v, "1") for v in _THREAD_VARS}
            ray.init(runtime_env={"env_vars": env_vars}, **kwargs)
            self._started = True
        self.workers = int(ray.cluster_resources().get("CPU", num_cpus or 1))

    def map_ordered(
        self, fn: Callable[[T], R], items: Sequence[T], *, progress: Progress | None = None
    ) -> list[R]:
        if not items:
            return []
        ray = self._ray
        remote = ray.remote(num_cpus=1, max_retries=0)(fn)
        refs = [remote.remote(x) for x in items]
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                ray.get(done)  # raise the task's exception early
                if progress is not None:
                    progress(len(done))
        except BaseException:
            for r in pending:
                ray.cancel(r)
            raise
        return ray.get(refs)

    def close(self) -> None:
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()
        self._started = False


def make_executor(kind: str = "process", workers: int | None = None) -> Executor:
    """Build an executor by name.

    Args:
        kind: ``serial``, ``process`` (local process pool) or ``ray``.
        workers: worker processes / Ray CPUs; None = all cores.

    Raises:
        ConfigError: for an unknown ``kind``.
        MissingDependencyError: for ``ray`` without ray installed.
    """
    if kind == "serial":
        return SerialExecutor()
    if kind == "process":
        return LocalExecutor(workers)
    if kind == "ray":
        return RayExecutor(workers)
    raise ConfigError(f"unknown executor {kind!r}; accepted: {', '.join(EXECUTORS)}")
