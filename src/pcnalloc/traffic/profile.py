"""Daily modulation of arrival rates (mean 1 over a day)."""

from __future__ import annotations

import numpy as np

from pcnalloc.errors import ConfigError

_HOURS = np.arange(0.0, 24.0, 0.25)


def _two_peak(h: np.ndarray) -> np.ndarray:
    # Utility traffic follows the load curve: a morning peak (≈10:00) and a higher evening
    # peak (≈19:00) over a night-time base of about half the mean.
    d1 = np.minimum(np.abs(h - 10.0), 24 - np.abs(h - 10.0))
    d2 = np.minimum(np.abs(h - 19.0), 24 - np.abs(h - 19.0))
    return 0.5 + 0.6 * np.exp(-0.5 * (d1 / 2.0) ** 2) + 0.8 * np.exp(-0.5 * (d2 / 2.0) ** 2)


class DailyProfile:
    """Piecewise-linear multiplier f(t) over the day, normalised so its daily mean is 1.

    Args:
        kind: ``two_peak`` (documented default), ``flat``, or ``simbench`` (mean of SimBench's
            bundled real load profiles; needs the ``data`` extra).
    """

    def __init__(self, kind: str = "two_peak") -> None:
        if kind == "flat":
            values = np.ones_like(_HOURS)
        elif kind == "two_peak":
            values = _two_peak(_HOURS)
        elif kind == "simbench":
            values = _simbench_profile()
        else:
            raise ConfigError(f"unknown profile {kind!r}; accepted: two_peak, flat, simbench")
        self.kind = kind
        self.values = values / values.mean()
        self.peak = float(self.values.max())

        # Per-minute lookup table of the piecewise-linear profile (fast scalar evaluation).
        minutes = np.arange(24 * 60 + 1) / 60.0
        self._table = np.interp(
            minutes, np.append(_HOURS, 24.0), np.append(self.values, self.values[0])
        ).tolist()

    def __call__(self, t_s: float) -> float:
        m = (t_s / 60.0) % 1440.0
        i = int(m)
        frac = m - i
        return self._table[i] * (1.0 - frac) + self._table[i + 1] * frac


def _simbench_profile() -> np.ndarray:
    try:
        import simbench as sb
    except ImportError:
        raise ConfigError(
            "profile 'simbench' needs the optional extra: pip install 'pcnalloc[data]'"
        ) from None
    net = sb.get_simbench_net("1-MV-rural--0-sw")
    prof = net.profiles["load"]
    cols = [c for c in prof.columns if c.endswith("_pload")]
    series = prof[cols].mean(axis=1).to_numpy(dtype=float)
    per_day = 96  # 15-minute resolution
    days = series[: len(series) // per_day * per_day].reshape(-1, per_day)
    return days.mean(axis=0)
