"""Envs of different K share one path cache: after a fiber cut each gets its own K cut routes,
whatever ran before it in the process (a cut-route key without K made results order-dependent)."""

from __future__ import annotations

from pcnalloc.baselines.registry import make_policy
from pcnalloc.config import env_config
from pcnalloc.evaluate.runner import run_policy


def _value(spec: str, cfg) -> float:
    return run_policy(make_policy(spec), cfg, seed=205, requests=1000)["metrics"][
        "weighted_value_ratio"
    ]


def test_cut_routes_do_not_depend_on_what_ran_before(monkeypatch) -> None:
    monkeypatch.setenv("PCNALLOC_CACHE_DIR", "off")
    from pcnalloc.network import paths

    monkeypatch.setattr(paths, "_SHARED", {})  # a fresh process
    cfg = env_config(
        network={"case": "case30", "path_cache": 16},
        traffic={"load": 1.0, "scenario": "fiber-cut"},
        episode_requests=1000,
    )
    first = _value("cspf-pe:16", cfg)
    monkeypatch.setattr(paths, "_SHARED", {})
    _value("cspf-pe:4", cfg)  # fills the shared cache's cut routes with K = 4
    assert _value("cspf-pe:16", cfg) == first
