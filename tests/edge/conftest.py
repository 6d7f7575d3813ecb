"""Fixtures of the edge tests: the default catalog and engine, hand-built field arrays."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from pcnalloc.rules.engine import RuleEngine, build_engine
from pcnalloc.traffic.catalog import Catalog, load_catalog

K, L = 4, 3
A = K * L + 1


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog(None, max_levels=L)


@pytest.fixture(scope="session")
def engine(catalog: Catalog) -> RuleEngine:
    return build_engine(None, catalog)


def benign_fields(n_actions: int = A, grant_levels: int = L, **over: Any) -> dict[str, np.ndarray]:
    """Fields of a request where every path action at full grant is fine.

    Every slot holds a present, fitting, fast, trusted route with a backup; grant slot 0 is
    1.0, slot 1 is 0.5 and slot 2 is 0 (no such level). ``over`` replaces whole arrays.
    """
    n = n_actions - 1
    grant = np.tile([1.0, 0.5, 0.0][:grant_levels], n // grant_levels)
    f = {
        "is_reject": np.arange(n_actions) == n,
        "present": np.append(np.ones(n, bool), False),
        "grant": np.append(grant, 0.0),
        "kbps": np.append((grant * 1000).astype(np.int64), 0),
        "latency_ms": np.append(np.full(n, 1.0), 0.0),
        "latency_over_bound": np.append(np.full(n, 0.1), 0.0),
        "residual_kbps": np.append(np.full(n, 10**6, np.int64), 0),
        "residual_with_preemption_kbps": np.append(np.full(n, 10**6, np.int64), 0),
        "fits": np.ones(n_actions, bool),
        "fits_with_preemption": np.ones(n_actions, bool),
        "needs_preemption": np.zeros(n_actions, bool),
        "has_backup": np.append(np.ones(n, bool), False),
        "min_trust": np.ones(n_actions),
        "util_after": np.append(np.full(n, 0.3), 0.0),
        "hops": np.append(np.full(n, 2, np.int64), 0),
    }
    f.update(over)
    return f


@pytest.fixture
def make_fields() -> Callable[..., dict[str, np.ndarray]]:
    return benign_fields
