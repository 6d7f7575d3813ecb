"""Impulsive PLC noise: alpha-stable electromagnetic interference, eq. (4).

``scipy.stats.levy_stable`` uses the same S1 parameterisation as eq. (4) (index ν, skew η,
scale θ, location μ). Its sampler is cheap but its set-up is not, so the draws for a whole
epoch (T0 × J1) come in one call from the model's seeded Generator.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import levy_stable

from pcnalloc.access.config import EmiConfig


def emi_locations(cfg: EmiConfig, n_subchannels: int, rng: np.random.Generator) -> np.ndarray:
    """Location μ_j of each PLC subchannel, uniform in ``cfg.location``."""
    lo, hi = cfg.location
    return rng.uniform(lo, hi, size=n_subchannels)


def draw_emi(
    cfg: EmiConfig, locations: np.ndarray, slots: int, rng: np.random.Generator
) -> np.ndarray:
    """EMI power per slot and PLC subchannel, ``(slots, J1)``, in units of N_0 (≥ 0).

    A stable variate can be negative; the noise power is its magnitude.
    """
    if locations.size == 0 or slots == 0:
        return np.zeros((slots, locations.size))
    x = levy_stable.rvs(
        cfg.index,
        cfg.skew,
        loc=locations[None, :],
        scale=cfg.scale,
        size=(slots, locations.size),
        random_state=rng,
    )
    return np.abs(np.asarray(x, dtype=float))
