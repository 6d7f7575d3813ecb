"""Queue dynamics: the device data queue (7)-(8), queuing delay (12)-(13) and the Lyapunov
virtual queue of the long-term queuing-delay constraint (16)."""

from __future__ import annotations

import numpy as np


def throughput(
    backlog: np.ndarray, arrival: np.ndarray, slot_s: float, rate: np.ndarray
) -> np.ndarray:
    """D = min(L + A, τ·Σ_j y_ij R_ij), eq. (8); ``rate`` is Σ_j y_ij R_ij (bit/s)."""
    return np.minimum(backlog + arrival, slot_s * rate)


def data_queue(backlog: np.ndarray, arrival: np.ndarray, served: np.ndarray) -> np.ndarray:
    """L(t+1) = L(t) + A(t) − D(t), eq. (7)."""
    return np.maximum(backlog + arrival - served, 0.0)


def transmission_delay(
    backlog: np.ndarray, arrival: np.ndarray, slot_s: float, rate: np.ndarray
) -> np.ndarray:
    """τ_i = min(τ, (L + A) / Σ_j y_ij R_ij), eq. (9); 0 with nothing to send, τ with no rate."""
    load = backlog + arrival
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(rate > 0, load / np.where(rate > 0, rate, 1.0), slot_s)
    return np.where(load > 0, np.minimum(slot_s, d), 0.0)


def queuing_delay(backlog: np.ndarray, mean_arrival: np.ndarray) -> np.ndarray:
    """τ^que = L / Â, eq. (12); 0 where nothing has arrived yet."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(
            mean_arrival > 0, backlog / np.where(mean_arrival > 0, mean_arrival, 1.0), 0.0
        )


def virtual_queue(o: np.ndarray, tau_que: np.ndarray, tau_max: float) -> np.ndarray:
    """O(t+1) = max(O(t) + τ^que(t) − τ^que_max, 0), eq. (16)."""
    return np.maximum(o + tau_que - tau_max, 0.0)
