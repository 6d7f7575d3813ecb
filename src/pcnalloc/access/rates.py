"""OFDM rates with the SINR gap, eqs. (1), (2), (5)."""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri

from pcnalloc.access.errors import AccessConfigError


def db_to_lin(db: np.ndarray | float) -> np.ndarray:
    """10^(dB/10)."""
    return np.power(10.0, np.asarray(db, dtype=float) / 10.0)


def lin_to_db(x: np.ndarray | float) -> np.ndarray:
    """10·log10(x) (−inf at 0)."""
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(np.asarray(x, dtype=float))


def dbm_to_w(dbm: float) -> float:
    """Power in W from dBm."""
    return float(10.0 ** ((dbm - 30.0) / 10.0))


def sinr_gap(target_ber: float) -> float:
    """Γ ≈ [Q⁻¹(P_e/4)]² / 2, eq. (2) (linear, not dB).

    Raises:
        AccessConfigError: ``target_ber`` outside (0, 1).
    """
    if not 0.0 < target_ber < 1.0:
        raise AccessConfigError(f"target_ber {target_ber!r} is invalid; accepted: 0 < P_e < 1")
    q_inv = -ndtri(target_ber / 4.0)  # Q⁻¹(p) = −Φ⁻¹(p)
    return float(q_inv * q_inv / 2.0)


def sinr(power_w: float | np.ndarray, gain: np.ndarray, gap: float) -> np.ndarray:
    """SINR = P·g / Γ, eq. (5); ``gain`` is |H|² / (N_EMI + N_0) in 1/W."""
    return np.asarray(power_w, dtype=float) * np.asarray(gain, dtype=float) / gap


def ofdm_rate(sinr_lin: np.ndarray | float, symbol_rate: float, max_bits: int) -> np.ndarray:
    """R = N_s · min(R_max, ⌊log2(1 + SINR)⌋) in bit/s, eq. (1).

    Raises:
        AccessConfigError: a negative SINR, symbol rate or bit cap.
    """
    s = np.asarray(sinr_lin, dtype=float)
    if symbol_rate <= 0 or max_bits < 0:
        raise AccessConfigError(
            f"symbol_rate {symbol_rate!r} / max_bits {max_bits!r} invalid; accepted: N_s > 0, "
            "R_max ≥ 0"
        )
    if np.any(s < 0):
        raise AccessConfigError("negative SINR in the rate formula; accepted: SINR ≥ 0")
    bits = np.floor(np.log2(1.0 + s) + 1e-12)
    return symbol_rate * np.minimum(float(max_bits), bits)
