"""Parameter sweeps of the paper's figures, with paired confidence intervals over seeds."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import stats

from pcnalloc.access.config import AccessConfig, access_config
from pcnalloc.access.registry import make_access_policy
from pcnalloc.access.simulate import run_access

SWEEPS: dict[str, str] = {
    "devices": "number of devices I",
    "g5_share": "5G share of the J subchannels (%)",
    "sinr_min_db": "SINR_min (dB)",
    "alpha": "cost weight α",
}


def _cfg(base: AccessConfig, key: str, value: float) -> AccessConfig:
    over: dict[str, Any] = base.model_dump()
    if key == "g5_share":
        j = base.subchannels
        over["g5_subchannels"] = round(j * value / 100.0)
        over["plc_subchannels"] = j - over["g5_subchannels"]
    elif key == "devices":
        over["devices"] = int(value)
    else:
        over[key] = float(value)
    return access_config(over)


def paired_ci(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> dict[str, float]:
    """Mean of a − b over paired seeds and its t confidence interval (nan with one seed)."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    m = float(d.mean())
    if d.size < 2:
        return {"mean": m, "lo": float("nan"), "hi": float("nan")}
    h = float(stats.t.ppf(0.5 + level / 2, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size))
    return {"mean": m, "lo": m - h, "hi": m + h}


def sweep(
    base: AccessConfig,
    key: str,
    values: Sequence[float],
    policies: Sequence[str],
    seeds: Sequence[int],
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Run every policy at every value and seed; per-cell means and per-seed metrics."""
    cells: list[dict[str, Any]] = []
    for v in values:
        cfg = _cfg(base, key, v)
        for p in policies:
            runs = [run_access(make_access_policy(p), cfg, seed=s) for s in seeds]
            if progress is not None:
                progress(1)
            ms = [r["metrics"] for r in runs]
            cells.append(
                {
                    "value": v,
                    "policy": p,
                    "weighted_sum": [m["weighted_sum"] for m in ms],
                    "traffic_cost": [m["traffic_cost"] for m in ms],
                    "mean_delay_s": [m["mean_delay_s"] for m in ms],
                    "vq_median": [m["virtual_queue"]["median_final"] for m in ms],
                    "vq_max_over_T": [m["virtual_queue"]["max_final_over_T"] for m in ms],
                    "slot_us_p50": [r["timing"]["slot_decision_us_p50"] for r in runs],
                }
            )
    return {"key": key, "label": SWEEPS[key], "values": list(values), "cells": cells}


def cell(result: dict[str, Any], policy: str, value: float) -> dict[str, Any]:
    """The cell of ``policy`` at ``value``."""
    for c in result["cells"]:
        if c["policy"] == policy and c["value"] == value:
            return c
    raise KeyError((policy, value))
