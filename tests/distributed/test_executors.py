"""Executors: ordered results, progress, errors, optional Ray; identical sweeps everywhere."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pcnalloc.core import (
    Executor,
    LocalExecutor,
    MissingDependencyError,
    SerialExecutor,
    make_executor,
)
from pcnalloc.errors import ConfigError, PcnallocError
from pcnalloc.evaluate.sweep import sweep


def test_serial_and_process_map_in_order() -> None:
    items = [5, -3, 8, -1, 0, 7]
    ticks: list[int] = []
    assert SerialExecutor().map_ordered(abs, items, progress=ticks.append) == [5, 3, 8, 1, 0, 7]
    assert sum(ticks) == len(items)
    with LocalExecutor(2) as ex:
        assert isinstance(ex, Executor)
        ticks.clear()
        assert ex.map_ordered(abs, items, progress=ticks.append) == [5, 3, 8, 1, 0, 7]
        assert sum(ticks) == len(items)
        assert ex.map_ordered(abs, []) == []
        with pytest.raises(ValueError, match="invalid literal"):
            ex.map_ordered(int, ["1", "x", "3"])


def test_make_executor_names() -> None:
    assert make_executor("serial").name == "serial"
    ex = make_executor("process", 3)
    assert ex.name == "process" and ex.workers == 3
    ex.close()
    with pytest.raises(ConfigError, match="unknown executor 'dask'; accepted: serial"):
        make_executor("dask")
    with pytest.raises(ConfigError, match="workers"):
        LocalExecutor(0)


def test_missing_ray_is_a_typed_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail
    with pytest.raises(MissingDependencyError, match=r"pip install 'pcnalloc\[distributed\]'"):
        make_executor("ray", 2)
    assert issubclass(MissingDependencyError, PcnallocError)


def _tiny_sweep(executor: Executor, graph: Path) -> dict:
    return sweep(
        ["ksp-ff", "random"],
        [str(graph)],
        [1.5],
        [0, 1],
        60,
        executor,
        env_overrides={"traffic": {"events": {"faults_per_hour": 30.0}}},
    )


def _metrics(result: dict) -> list:
    return [(r["policy"], r["seed"], r["metrics"]) for r in result["runs"]]


def test_ray_sweep_matches_serial_and_process_pool(small_pool_graph_file: Path) -> None:
    """Ray gives the serial results; tests/evaluate/test_sweep.py shows the process pool
    gives the serial results too, so Ray and the process pool agree (without paying for a
    second pool start here)."""
    ray = pytest.importorskip("ray")
    serial = _tiny_sweep(SerialExecutor(), small_pool_graph_file)
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        ex = make_executor("ray", 2)
        assert ex.name == "ray" and ex.workers == 2
        remote = _tiny_sweep(ex, small_pool_graph_file)
        ex.close()
    finally:
        if started:
            ray.shutdown()
    assert _metrics(remote) == _metrics(serial)
    assert [a["metrics"] for a in remote["aggregate"]] == [
        a["metrics"] for a in serial["aggregate"]
    ]
    assert remote["executor"]["name"] == "ray"
