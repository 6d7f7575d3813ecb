"""Sweeps: every policy × case × load × seed through an executor, aggregated with 95 % CIs.

Each grid point is a small picklable :class:`SweepItem` (policy spec string, case, load,
seed, env overrides), so the same sweep runs serially, on a local process pool or on Ray and
gives identical metrics (timing figures aside): every run starts from ``reset(seed=…)``.
Aggregates are the mean over seeds with a two-sided 95 % confidence half-width from the
t-distribution (``t_{0.975, n−1} · s / √n``; None with a single seed).
"""

from __future__ import annotations

import copy
import importlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pcnalloc.baselines.registry import display_name, make_policy
from pcnalloc.config import EnvConfig, build
from pcnalloc.core.executors import Executor, SerialExecutor
from pcnalloc.core.limits import SEED_MAX, SEEDS_MAX
from pcnalloc.errors import ConfigError
from pcnalloc.evaluate.runner import run_policy

SWEEP_METRICS: tuple[str, ...] = (
    "weighted_value_ratio",
    "blocking_probability",
    "blocking_priority_le1",
    "max_link_utilisation",
    "mean_latency_over_bound",
    "executed_hard_violations",
    "intercepted",
)
"""Metrics aggregated per (policy, case, load); each run keeps the full metrics dict."""
TIMING_KEYS: tuple[str, ...] = (
    "wall_s",
    "decisions_per_s",
    "policy_latency_us_p50",
    "policy_latency_us_p99",
)


@dataclass(frozen=True)
class SweepItem:
    """One grid point; picklable, so any executor can ship it to a worker.

    Attributes:
        policy: policy spec for :func:`make_policy` (``ksp-ff``, ``ksp-ff:16`` …).
        case: grid case.
        load: offered load ρ.
        seed: episode seed.
        requests: decisions per episode.
        env_overrides: nested EnvConfig overrides applied under case and load.
        imports: modules a worker imports first, so that policies registered there (with
            :func:`register_policy`) exist in a freshly spawned process.
    """

    policy: str
    case: str
    load: float
    seed: int
    requests: int
    env_overrides: dict[str, Any] = field(default_factory=dict)
    imports: tuple[str, ...] = ()

    def env_config(self) -> EnvConfig:
        """The item's env config: the overrides with this case and load."""
        raw = copy.deepcopy(self.env_overrides)
        raw.setdefault("network", {})["case"] = self.case
        raw.setdefault("traffic", {})["load"] = self.load
        return build(EnvConfig, raw, "environment config")


def run_item(item: SweepItem) -> dict[str, Any]:
    """Play one grid point (worker entry point): ``run_policy``'s result dict."""
    for mod in item.imports:
        importlib.import_module(mod)
    return run_policy(
        make_policy(item.policy), item.env_config(), seed=item.seed, requests=item.requests
    )


def parse_seeds(spec: str) -> list[int]:
    """``"0-4"`` → [0, 1, 2, 3, 4]; ``"1,3,7"``; mixtures such as ``"0-2,9"``.

    Raises:
        ConfigError: for anything else, naming the bad part.
    """
    seeds: list[int] = []
    for part in (p.strip() for p in spec.split(",")):
        lo, sep, hi = part.partition("-")
        try:
            a = int(lo)
            b = int(hi) if sep else a
        except ValueError:
            raise ConfigError(
                f"bad seed spec {part!r} in {spec!r}; accepted: integers, ranges like 0-4, "
                "comma-separated"
            ) from None
        if b < a or a < 0 or b > SEED_MAX:
            raise ConfigError(f"bad seed range {part!r}; accepted: 0 ≤ start ≤ end ≤ {SEED_MAX}")
        if len(seeds) + b - a + 1 > SEEDS_MAX:  # checked before the list is built
            raise ConfigError(f"seed spec {spec!r} names more than {SEEDS_MAX:,} seeds")
        seeds.extend(range(a, b + 1))
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"seed spec {spec!r} must name distinct seeds")
    return seeds


def policy_imports(policies: Sequence[str]) -> tuple[str, ...]:
    """Modules defining the policies' classes and their top packages (a worker imports them
    so that policies registered on import exist there too)."""
    mods: set[str] = set()
    for spec in policies:
        mod = type(make_policy(spec)).__module__
        parts = mod.split(".")
        mods.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return tuple(sorted(mods))


def validate_grid(
    policies: Sequence[str],
    cases: Sequence[str],
    loads: Sequence[float],
    seeds: Sequence[int],
    requests: int,
    env_overrides: dict[str, Any] | None = None,
) -> None:
    """Check every name and value before any long work starts.

    Raises:
        UnknownPolicyError, UnknownCaseError, ConfigError, NetworkError: the first bad input.
    """
    from pcnalloc.network.builder import cached_network

    if not policies or not cases or not loads or not seeds:
        raise ConfigError("a sweep needs at least one policy, case, load and seed")
    if requests < 1:
        raise ConfigError(f"requests must be ≥ 1, got {requests}")
    for p in policies:
        make_policy(p)
    for c in cases:
        for x in loads:
            cfg = SweepItem("", c, x, 0, requests, dict(env_overrides or {})).env_config()
        cached_network(cfg.network.case, cfg.network)


def grid_items(
    policies: Sequence[str],
    cases: Sequence[str],
    loads: Sequence[float],
    seeds: Sequence[int],
    requests: int,
    env_overrides: dict[str, Any] | None = None,
    imports: Sequence[str] | None = None,
) -> list[SweepItem]:
    """The grid in (case, load, seed, policy) order: the policies of one episode are adjacent,
    so workers spread the slowest policies over the whole run."""
    imp = tuple(imports) if imports is not None else policy_imports(policies)
    ov = dict(env_overrides or {})
    return [
        SweepItem(p, c, float(x), int(s), requests, ov, imp)
        for c in cases
        for x in loads
        for s in seeds
        for p in policies
    ]


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> dict[str, Any]:
    """Mean, sample std and the t-distribution CI half-width (None when n < 2)."""
    v = np.asarray(values, dtype=float)
    n = int(v.size)
    mean = float(v.mean()) if n else float("nan")
    if n < 2:
        return {"mean": round(mean, 6), "ci95": None, "std": None, "n": n}
    from scipy import stats  # imported here: it costs ~1 s and workers rarely need it

    sd = float(v.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / np.sqrt(n))
    return {"mean": round(mean, 6), "ci95": round(half, 6), "std": round(sd, 6), "n": n}


def aggregate(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Group runs by (policy, case, load) and summarise :data:`SWEEP_METRICS` and timing."""
    groups: dict[tuple[str, str, float], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((r["policy"], r["case"], float(r["load"])), []).append(r)
    out = []
    for (pol, case, load), rs in groups.items():
        out.append(
            {
                "policy": pol,
                "case": case,
                "load": load,
                "seeds": [r["seed"] for r in rs],
                "metrics": {k: mean_ci([r["metrics"][k] for r in rs]) for k in SWEEP_METRICS},
                "timing": {k: mean_ci([r["timing"][k] or 0.0 for r in rs]) for k in TIMING_KEYS},
            }
        )
    return out


def sweep(
    policies: Sequence[str],
    cases: Sequence[str],
    loads: Sequence[float],
    seeds: Sequence[int],
    requests: int,
    executor: Executor | None = None,
    *,
    env_overrides: dict[str, Any] | None = None,
    imports: Sequence[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Run every (policy, case, load, seed) and aggregate over seeds.

    Args:
        policies: policy specs.
        cases: grid cases.
        loads: offered loads ρ.
        seeds: episode seeds (the same for every policy).
        requests: decisions per episode.
        executor: where to run; None = serially in this process.
        env_overrides: nested EnvConfig overrides shared by every run.
        imports: modules workers import before building policies (default: the policies'
            own modules, see :func:`policy_imports`).
        progress: called with 1 per finished run.

    Returns:
        A JSON-serialisable dict: ``grid``, ``executor``, ``wall_s``, ``runs`` (every
        ``run_policy`` result in grid order) and ``aggregate`` (per policy/case/load: mean,
        ``ci95`` half-width, std and n of each metric and timing figure).
    """
    validate_grid(policies, cases, loads, seeds, requests, env_overrides)
    items = grid_items(policies, cases, loads, seeds, requests, env_overrides, imports)
    ex = executor or SerialExecutor()
    t0 = time.perf_counter()
    runs = ex.map_ordered(run_item, items, progress=progress)
    wall = time.perf_counter() - t0
    return {
        "grid": {
            "policies": list(policies),
            "cases": list(cases),
            "loads": [float(x) for x in loads],
            "seeds": [int(s) for s in seeds],
            "requests": requests,
            "env_overrides": dict(env_overrides or {}),
        },
        "executor": {"name": ex.name, "workers": ex.workers},
        "wall_s": round(wall, 3),
        "runs": runs,
        "aggregate": aggregate(runs),
    }


@dataclass(frozen=True)
class GapItem:
    """One (case, load, seed) window for the offline bound; picklable."""

    policies: tuple[str, ...]
    case: str
    load: float
    seed: int
    requests: int
    time_limit_s: float
    """HiGHS limit of the window's MILP (s)."""
    env_overrides: dict[str, Any] = field(default_factory=dict)
    imports: tuple[str, ...] = ()


def run_gap_item(item: GapItem) -> dict[str, Any]:
    """Worker entry point: :func:`window_gap` on one window."""
    from pcnalloc.baselines.offline import window_gap

    for mod in item.imports:
        importlib.import_module(mod)
    cfg = SweepItem("", item.case, item.load, item.seed, 1, item.env_overrides).env_config()
    res = window_gap(
        list(item.policies), cfg, [item.seed], item.requests, time_limit_s=item.time_limit_s
    )
    return res | {"case": item.case, "load": item.load}


def bound_sweep(
    policies: Sequence[str],
    cases: Sequence[str],
    loads: Sequence[float],
    seeds: Sequence[int],
    requests: int,
    executor: Executor | None = None,
    *,
    time_limit_s: float,
    env_overrides: dict[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """The offline hindsight bound on the first ``requests`` new requests of every
    (case, load, seed) episode (grid events off) and each policy's gap to it.

    ``time_limit_s`` (HiGHS seconds per window) has no default here: callers pass the evaluate
    stage's ``bound_time_limit_s`` (:class:`pcnalloc.pipeline.config.EvaluateStage`), where
    the one default is written.

    Returns:
        ``{"requests", "windows": [window_gap results], "aggregate": [...]}`` where the
        aggregate holds, per (policy, case, load), the mean and CI of the gap
        ``1 − value / upper_bound`` and of the value, and whether every window was certified
        (the policy saw the bound's requests; the model covers pre-emption).
    """
    imp = policy_imports(policies)
    items = [
        GapItem(tuple(policies), c, float(x), int(s), requests, time_limit_s,
                dict(env_overrides or {}), imp)
        for c in cases
        for x in loads
        for s in seeds
    ]  # fmt: skip
    ex = executor or SerialExecutor()
    windows = ex.map_ordered(run_gap_item, items, progress=progress)
    agg = []
    for c in cases:
        for x in loads:
            rows = [
                r | {"status": b["status"]}
                for w in windows
                if w["case"] == c and w["load"] == float(x)
                for r, b in ((r, _bound_of(w, r)) for r in w["policies"])
            ]
            for p in map(display_name, policies):  # results name policies without paths
                rs = [r for r in rows if r["policy"] == p]
                agg.append(
                    {
                        "policy": p,
                        "case": c,
                        "load": float(x),
                        "gap": mean_ci([r["gap"] for r in rs]),
                        "value": mean_ci([r["value"] for r in rs]),
                        "upper_bound": mean_ci([r["upper_bound"] for r in rs]),
                        "certified": all(r["certified"] for r in rs),
                        "preempted": int(sum(r["preempted"] for r in rs)),
                        "bound_status": sorted({r["status"] for r in rs}),
                    }
                )
    return {"requests": requests, "windows": windows, "aggregate": agg}


def _bound_of(window: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    return next(b for b in window["bounds"] if b["k_paths"] == row["k_paths"])
