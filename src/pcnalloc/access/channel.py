"""Subchannel gains g_ij(t) = |H_ij(t)|² / (N_EMI_j(t) + N_0), eq. (3), and their SINR.

The paper gives powers and noise but no gains, so the gains follow a documented model
calibrated on the default grid (docs/access.md): 5G has log-distance path loss to a base
station at the substation with Rayleigh block fading per slot; PLC has a coupling loss plus a
frequency-dependent cable loss along the feeder, log-normal fading per slot, and the
alpha-stable EMI of :mod:`pcnalloc.access.noise` on top of N_0.
"""

from __future__ import annotations

import numpy as np

from pcnalloc.access.config import AccessConfig
from pcnalloc.access.noise import draw_emi, emi_locations
from pcnalloc.access.rates import db_to_lin, dbm_to_w, sinr_gap


class ChannelModel:
    """Mean losses of every (device, subchannel) pair and per-epoch draws of their SINR.

    Args:
        cfg: access parameters.
        plc_km: feeder length of each device (km).
        g5_km: distance of each device to its base station (km).
        rng: generator for the static draws (EMI locations).
    """

    def __init__(
        self, cfg: AccessConfig, plc_km: np.ndarray, g5_km: np.ndarray, rng: np.random.Generator
    ) -> None:
        ch = cfg.channel
        self.cfg = cfg
        self.j1, self.j2 = cfg.plc_subchannels, cfg.g5_subchannels
        lo, hi = ch.plc_band_mhz
        freq = np.linspace(lo, hi, self.j1) if self.j1 > 1 else np.full(self.j1, (lo + hi) / 2)
        plc_db = ch.plc_loss_db + np.outer(
            plc_km, ch.plc_loss_db_per_km + ch.plc_loss_db_per_km_mhz * freq
        )
        d = np.maximum(g5_km, ch.g5_min_km)
        g5_db = ch.g5_loss_db_at_1km + 10.0 * ch.g5_exponent * np.log10(d)
        self.loss_db = np.concatenate([plc_db, np.repeat(g5_db[:, None], self.j2, axis=1)], axis=1)
        self.gap = sinr_gap(cfg.target_ber)
        self.p_w = dbm_to_w(cfg.tx_power_dbm)
        self.n0_w = dbm_to_w(cfg.noise_dbm)
        self.emi_mu = emi_locations(cfg.emi, self.j1, rng)
        self.is_plc = np.arange(self.j1 + self.j2) < self.j1

    def mean_sinr(self) -> np.ndarray:
        """SINR (linear) without fading, EMI at its location μ, ``(I, J)``."""
        noise = np.concatenate([self.n0_w * (1.0 + self.emi_mu), np.full(self.j2, self.n0_w)])
        return self.p_w * db_to_lin(-self.loss_db) / (noise[None, :] * self.gap)

    def draw(self, slots: int, rng: np.random.Generator) -> np.ndarray:
        """SINR (linear) of every pair in each of ``slots`` slots, ``(slots, I, J)``."""
        n_dev = self.loss_db.shape[0]
        fade_db = np.empty((slots, n_dev, self.j1 + self.j2))
        fade_db[:, :, : self.j1] = rng.normal(
            0.0, self.cfg.channel.plc_shadow_db, (slots, n_dev, self.j1)
        )
        ray = rng.exponential(1.0, (slots, n_dev, self.j2))
        fade_db[:, :, self.j1 :] = 10.0 * np.log10(np.maximum(ray, 1e-12))
        h2 = db_to_lin(fade_db - self.loss_db[None])
        emi = draw_emi(self.cfg.emi, self.emi_mu, slots, rng)
        noise = np.empty((slots, self.j1 + self.j2))
        noise[:, : self.j1] = self.n0_w * (1.0 + emi)
        noise[:, self.j1 :] = self.n0_w
        return self.p_w * h2 / (noise[:, None, :] * self.gap)
