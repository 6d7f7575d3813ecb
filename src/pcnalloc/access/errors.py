"""Typed errors of the access layer (bad parameters, unusable grids, infeasible instances)."""

from __future__ import annotations

from pcnalloc.errors import ConfigError


class AccessConfigError(ConfigError):
    """Access-layer parameters that cannot describe a feasible system.

    Raised for a quota above the number of subchannels, negative rates or counts, more devices
    than the two modes can hold, or a reliability bound no device can ever meet.
    """


class UnreachableSinrError(AccessConfigError):
    """``sinr_min_db`` is above the best SINR any device reaches on any subchannel."""

    def __init__(self, sinr_min_db: float, best_db: float) -> None:
        super().__init__(
            f"sinr_min_db {sinr_min_db:g} dB is unreachable: the best mean SINR of any device "
            f"on any subchannel is {best_db:.1f} dB; accepted: sinr_min_db below {best_db:.1f}"
        )
        self.sinr_min_db = sinr_min_db
        self.best_db = best_db
