"""Play one access policy over V epochs of T0 slots and summarise the run."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from pcnalloc.access.config import AccessConfig
from pcnalloc.access.model import G5, AccessModel, SlotResult, SlotView
from pcnalloc.access.policy import AccessPolicy


def run_access(
    policy: AccessPolicy,
    cfg: AccessConfig,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    on_slot: Callable[[AccessModel, SlotView, np.ndarray, SlotResult], None] | None = None,
) -> dict[str, Any]:
    """Run ``policy`` on a fresh seeded model; returns metrics, traces and timing (JSON-able).

    ``on_slot(model, view, holder, result)`` is called after every slot (the coupling to the
    backbone reads the delivered bits there, :mod:`pcnalloc.twolayer.coupling`).

    Metrics: ``weighted_sum`` (mean per slot of Σ_i τ_i + α·C_i), ``mean_delay_s``,
    ``traffic_cost`` (Σ C over the run, $), ``share_5g`` (device-slots on 5G),
    ``virtual_queue`` statistics (``max_final_over_T`` → 0 is mean-rate stability) and the
    final data backlogs for the CDF.
    """
    model = AccessModel(cfg, seed)
    policy.reset(seed)
    ws, delay, cost, on5g, oq_mean = [], [], [], [], []
    lat: list[float] = []
    for _v in range(cfg.epochs):
        model.begin_epoch(policy.modes(model))
        for _k in range(cfg.slots_per_epoch):
            view = model.slot_view()
            t0 = time.perf_counter()
            holder = policy.allocate(view)
            lat.append(time.perf_counter() - t0)
            res = model.apply(view, holder)
            if on_slot is not None:
                on_slot(model, view, holder, res)
            ws.append(res.weighted_sum)
            delay.append(float(res.delay.mean()))
            cost.append(float(res.cost.sum()))
            used = holder[holder >= 0]
            g5 = (
                (model.modes == G5)
                if (model.modes >= 0).all()
                else np.isin(np.arange(model.n), used[~view.is_plc[holder >= 0]])
            )
            on5g.append(float(g5.mean()))
            oq_mean.append(float(model.o.mean()))
        model.end_epoch()
        if progress is not None:
            progress(1)
    lat_us = np.asarray(lat) * 1e6
    t = cfg.slots
    return {
        "policy": policy.name,
        "seed": seed,
        "grid": cfg.grid,
        "devices": cfg.devices,
        "metrics": {
            "weighted_sum": float(np.mean(ws)),
            "mean_delay_s": float(np.mean(delay)),
            "traffic_cost": float(np.sum(cost)),
            "weighted_cost": float(cfg.alpha * np.sum(cost) / t),
            "share_5g": float(np.mean(on5g)),
            "mode_switches": int(model.switches),
            "virtual_queue": {
                "mean_final": float(model.o.mean()),
                "median_final": float(np.median(model.o)),
                "max_final_over_T": float(model.o.max() / t),
                "mean_rate_stable": bool(model.o.max() / t < cfg.queue_delay_max_s),
            },
            "backlog_kbit_final": (model.backlog / 1e3).round(3).tolist(),
            "virtual_queue_final": model.o.round(4).tolist(),
        },
        "trace": {"weighted_sum": ws, "mean_virtual_queue": oq_mean},
        "timing": {
            "slot_decision_us_p50": float(np.percentile(lat_us, 50)),
            "slot_decision_us_p99": float(np.percentile(lat_us, 99)),
        },
    }
