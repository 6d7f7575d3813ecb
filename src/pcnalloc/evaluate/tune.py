"""Tune each heuristic's parameters on training seeds (grid search), never on evaluation seeds.

``tune`` plays every grid point of every heuristic on the same training seeds and keeps the
point with the highest mean weighted value ratio (ties: lower priority ≤ 1 blocking). The
default parameters are always in the grid, so a tuned heuristic is never worse than its
default on the tuning seeds. The result names each winner as a full policy spec
(``trunk:16@reserve=0.05,protect_from=3``) that :func:`make_policy` builds again anywhere.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pcnalloc.config import EnvConfig
from pcnalloc.core.executors import Executor, SerialExecutor
from pcnalloc.errors import ConfigError

TRAINING_SEED_MIN = 1000
"""Seeds below this are evaluation seeds: tuning refuses them."""

DEFAULT_GRIDS: dict[str, dict[str, list[Any]]] = {
    "ksp-ff": {"k": [4, 8, 16]},
    "cspf-pe": {"k": [4, 8, 16]},
    "llp": {"k": [4, 8, 16]},
    "trunk": {"k": [16], "reserve": [0.0, 0.02, 0.05, 0.1], "protect_from": [2, 4]},
    "lcr": {"k": [16], "beta": [0.0, 0.01, 0.05, 0.2], "gamma": [1.0, 2.0]},
    "cspf-pv": {"k": [16], "ratio": [0.25, 0.5, 1.0, 2.0, 4.0]},
}
"""Grid per heuristic (``k`` is the spec's ``:K``; other keys its ``@key=value`` args)."""

DEFAULTS: dict[str, dict[str, Any]] = {
    "ksp-ff": {"k": 4},
    "cspf-pe": {"k": 16},
    "llp": {"k": 4},
    "trunk": {"k": 16, "reserve": 0.1, "protect_from": 2},
    "lcr": {"k": 16, "beta": 0.05, "gamma": 1.0},
    "cspf-pv": {"k": 16, "ratio": 1.0},
}


def spec_of(name: str, point: dict[str, Any]) -> str:
    """The policy spec of one grid point."""
    args = ",".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in sorted(point.items())
        if k != "k"
    )
    k = f":{point['k']}" if "k" in point else ""
    return f"{name}{k}" + (f"@{args}" if args else "")


@dataclass
class TuneResult:
    """Winners and every grid point's score."""

    best_specs: dict[str, str]
    best_scores: dict[str, dict[str, float]]
    default_scores: dict[str, dict[str, float]]
    table: list[dict[str, Any]] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "best_specs": self.best_specs,
            "best_scores": self.best_scores,
            "default_scores": self.default_scores,
            "seeds": self.seeds,
            "table": self.table,
        }


def _points(name: str, grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    keys = sorted(grid)
    pts = [
        dict(zip(keys, vals, strict=True)) for vals in itertools.product(*(grid[k] for k in keys))
    ]
    default = dict(DEFAULTS.get(name, {}))
    if default and default not in pts:
        pts.insert(0, default)
    return pts


def tune(
    policies: Sequence[str],
    config: EnvConfig,
    seeds: Sequence[int],
    requests: int,
    grids: dict[str, dict[str, list[Any]]] | None = None,
    progress: Callable[[int], None] | None = None,
    executor: Executor | None = None,
) -> TuneResult:
    """Grid-search each heuristic on the training ``seeds``.

    Every (grid point, seed) episode is an independent :class:`SweepItem`, so an
    ``executor`` (process pool, Ray) plays them in parallel with the same scores as the
    serial default.

    Raises:
        ConfigError: an evaluation seed (< 1000), an unknown heuristic, or a grid with no
            valid point.
    """
    from pcnalloc.baselines.registry import make_policy
    from pcnalloc.evaluate.sweep import SweepItem, policy_imports, run_item

    bad = [s for s in seeds if s < TRAINING_SEED_MIN]
    if bad or not seeds:
        raise ConfigError(
            f"tuning seeds {list(bad) or list(seeds)} are not training seeds; accepted: "
            f"seeds ≥ {TRAINING_SEED_MIN} (lower seeds are kept for evaluation)"
        )
    grids = {**DEFAULT_GRIDS, **(grids or {})}
    result = TuneResult({}, {}, {}, seeds=list(seeds))
    points: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for name in policies:  # every name and grid checked before any episode is played
        if name not in grids:
            raise ConfigError(f"no tuning grid for {name!r}; accepted: {', '.join(sorted(grids))}")
        own = [
            dict(zip(sorted(grids[name]), v, strict=True))
            for v in itertools.product(*(grids[name][k] for k in sorted(grids[name])))
        ]
        points[name] = []
        n_valid_own = 0
        for point in _points(name, grids[name]):
            spec = spec_of(name, point)
            try:
                make_policy(spec)
            except ConfigError:
                continue
            n_valid_own += point in own
            points[name].append((spec, point))
        if not n_valid_own:
            raise ConfigError(f"the tuning grid of {name!r} has no valid point: {grids[name]}")
    specs = [spec for pts in points.values() for spec, _ in pts]
    env_ov = config.model_dump()
    imports = policy_imports(specs)
    items = [
        SweepItem(spec, config.network.case, config.traffic.load, int(s), requests, env_ov, imports)
        for spec in specs
        for s in seeds
    ]
    runs = iter((executor or SerialExecutor()).map_ordered(run_item, items, progress=progress))
    for name in policies:
        scored = []
        for spec, point in points[name]:
            ms = [next(runs)["metrics"] for _ in seeds]
            score = {
                "value": float(np.mean([m["weighted_value_ratio"] for m in ms])),
                "critical_blocking": float(np.mean([m["blocking_priority_le1"] for m in ms])),
            }
            scored.append((spec, point, score))
            result.table.append({"policy": name, "spec": spec, **point, **score})
        spec, _, score = max(scored, key=lambda x: (x[2]["value"], -x[2]["critical_blocking"]))
        result.best_specs[name] = spec
        result.best_scores[name] = score
        dflt = spec_of(name, DEFAULTS[name]) if name in DEFAULTS else None
        for sp, _, sc in scored:
            if sp == dflt:
                result.default_scores[name] = sc
    return result


def grid_size(policies: Sequence[str], grids: dict[str, dict[str, list[Any]]] | None = None) -> int:
    """Grid points over all ``policies`` (for a progress bar)."""
    g = {**DEFAULT_GRIDS, **(grids or {})}
    return sum(len(_points(p, g[p])) for p in policies if p in g)
