"""Per-device features of the epoch-level mode decision (teacher, library and student input).

One row per device: its own queue and channel state plus a few context entries shared by all
devices (means over the devices, the pressure on the 5G places, the device's rank among the
others by 5G advantage). The context makes a per-device network a small set network (a
DeepSets-style, one-round message passing over the fully connected device graph): the mode
decision of a device depends on what the others need, since only J2 of them fit on 5G.
Everything is read from :class:`~pcnalloc.access.model.AccessModel` state that exists at the
start of an epoch, so the same function serves the env observation, the teacher, the library
rows and the edge student.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pcnalloc.access.model import AccessModel

FEATURES: tuple[str, ...] = (
    "log1p_backlog_kbit",
    "log1p_virtual_queue",
    "log1p_queuing_delay_s",
    "plc_rate_over_max",
    "g5_rate_over_max",
    "g5_advantage_over_max",
    "log1p_mean_arrival_kbit",
    "plc_quota_need",
    "g5_quota_need",
    "on_plc_last_epoch",
    "on_5g_last_epoch",
    "gamma_plc",
    "gamma_5g",
    "g5_advantage_rank",
    "devices_over_j2",
    "devices_over_j",
    "mean_log1p_backlog_kbit",
    "mean_log1p_virtual_queue",
    "offered_over_capacity",
)
"""Column names, in order (``N_FEATURES`` wide)."""
N_FEATURES = len(FEATURES)


def _need(arrival_bits: np.ndarray, rate: np.ndarray, quota: int, slot_s: float) -> np.ndarray:
    """Share of the device's quota of subchannels its mean arrivals need (1 if unreachable)."""
    cap = quota * rate * slot_s
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.where(cap > 0, arrival_bits / np.where(cap > 0, cap, 1.0), 1.0)
    return np.minimum(x, 1.0)


def device_features(model: AccessModel) -> np.ndarray:
    """``(I, N_FEATURES)`` float32 features of every device at the start of an epoch."""
    cfg = model.cfg
    n = model.n
    top = max(float(cfg.symbol_rate * cfg.max_bits_per_symbol), 1.0)
    er = model.expected_rate
    arr = np.asarray(model.mean_arrival, dtype=float)
    adv = (er[:, 1] - er[:, 0]) / top
    rank = np.empty(n)
    rank[np.argsort(-adv, kind="stable")] = np.arange(n) / max(n - 1, 1)
    backlog = np.log1p(model.backlog / 1e3)
    vq = np.log1p(model.o)
    cap = (
        cfg.plc_subchannels * (er[:, 0].mean() if n else 0.0)
        + cfg.g5_subchannels * (er[:, 1].mean() if n else 0.0)
    ) * cfg.slot_s
    load = float(arr.sum() / cap) if cap > 0 else 1.0
    prev = model.prev_modes
    f = np.stack(
        [
            backlog,
            vq,
            np.log1p(model.tau_que),
            er[:, 0] / top,
            er[:, 1] / top,
            adv,
            np.log1p(arr / 1e3),
            _need(arr, er[:, 0], cfg.quota, cfg.slot_s),
            _need(arr, er[:, 1], cfg.quota, cfg.slot_s),
            (prev == 0).astype(float),
            (prev == 1).astype(float),
            model.gamma[:, 0],
            model.gamma[:, 1],
            rank,
            np.full(n, n / max(cfg.g5_subchannels, 1)),
            np.full(n, n / cfg.subchannels),
            np.full(n, backlog.mean()),
            np.full(n, vq.mean()),
            np.full(n, min(load, 10.0)),
        ],
        axis=1,
    )
    return f.astype(np.float32)


__all__ = ["FEATURES", "N_FEATURES", "device_features"]
