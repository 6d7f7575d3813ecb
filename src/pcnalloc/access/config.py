"""Frozen, validated parameters of the access layer; the packaged default follows the paper.

The defaults live in ``pcnalloc/data/access_default.yaml`` (Table 2 and §4 of the PLC/5G
paper); the fields below that the paper does not give (channel gains, arrivals, bidding
coefficients) carry their own documented defaults. Every object rejects unknown keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pcnalloc.access.errors import AccessConfigError
from pcnalloc.core.limits import COUNT_MAX, EPOCHS_MAX


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EmiConfig(_Frozen):
    """Alpha-stable electromagnetic interference on PLC subchannels, eq. (4), in units of N_0."""

    index: float = Field(1.4, gt=0, le=2, description="characteristic index ν ∈ (0, 2]")
    skew: float = Field(-0.791, ge=-1, le=1, description="skewness η ∈ [-1, 1]")
    scale: float = Field(1e-4, gt=0, description="scale θ (> 0)")
    location: tuple[float, float] = Field(
        (1.2, 2.6), description="range of the location μ, one value per PLC subchannel"
    )

    @model_validator(mode="after")
    def _range(self) -> EmiConfig:
        lo, hi = self.location
        if lo > hi:
            raise ValueError(f"emi.location must be [low, high] with low ≤ high, got {[lo, hi]}")
        return self


class ChannelConfig(_Frozen):
    """Path loss and fading (not given by the paper; calibrated so SINRs straddle SINR_min)."""

    g5_loss_db_at_1km: float = Field(44.0, description="5G path loss at 1 km from the site (dB)")
    g5_exponent: float = Field(2.5, gt=0, description="5G path-loss exponent")
    g5_min_km: float = Field(0.05, gt=0, description="distance floor of the 5G path loss (km)")
    plc_loss_db: float = Field(48.0, description="PLC coupling loss (dB)")
    plc_loss_db_per_km: float = Field(1.0, ge=0, description="PLC cable loss (dB/km)")
    plc_loss_db_per_km_mhz: float = Field(
        2.0, ge=0, description="frequency-dependent PLC cable loss (dB/km/MHz)"
    )
    plc_band_mhz: tuple[float, float] = Field(
        (0.1, 0.5), description="band spanned by the PLC subchannels (MHz, narrowband MV PLC)"
    )
    plc_shadow_db: float = Field(3.0, ge=0, description="per-slot log-normal PLC fading σ (dB)")


class ArrivalConfig(_Frozen):
    """Data each device collects per slot, A_i(t) (not given by the paper)."""

    mean_kbit: tuple[float, float] = Field(
        (20.0, 100.0), description="per-device mean arrival per slot, uniform in this range (kbit)"
    )
    burstiness: float = Field(
        0.5, ge=0, description="coefficient of variation of the per-slot gamma arrivals"
    )


class BiddingConfig(_Frozen):
    """Coefficients of the I-to-2 bidding matching, eqs. (20)-(21)."""

    beta_plc: float = Field(0.2, gt=0, description="bidding price coefficient β^PLC")
    beta_5g: float = Field(0.2, gt=0, description="bidding price coefficient β^5G")
    max_rounds: int = Field(
        1000, ge=1, le=COUNT_MAX, description="bidding rounds before the capped fallback"
    )


class AccessConfig(_Frozen):
    """Everything one access-layer scenario needs; see docs/access.md for each choice."""

    grid: str = Field("mv_oberrhein", description="grid whose distribution buses host devices")
    devices: int = Field(100, ge=1, description="number of IoT devices I")
    plc_subchannels: int = Field(100, ge=0, le=COUNT_MAX, description="PLC subchannels J1")
    g5_subchannels: int = Field(28, ge=0, le=COUNT_MAX, description="5G subchannels J2")
    quota: int = Field(10, ge=1, description="subchannels per device per slot q_m")
    epochs: int = Field(10, ge=1, le=EPOCHS_MAX, description="epochs V")
    slots_per_epoch: int = Field(10, ge=1, le=EPOCHS_MAX, description="slots per epoch T0")
    slot_s: float = Field(1.0, gt=0, description="slot duration τ (s)")
    symbol_rate: float = Field(14000.0, gt=0, description="OFDM symbol rate N_s (symbols/s)")
    max_bits_per_symbol: int = Field(8, ge=1, description="R_max (bits/symbol)")
    tx_power_dbm: float = Field(-17.0, description="transmit power per subchannel P (dBm)")
    noise_dbm: float = Field(-114.0, description="Gaussian noise N_0 (dBm)")
    target_ber: float = Field(1e-7, gt=0, lt=1, description="target bit error rate P_e")
    sinr_min_db: float = Field(12.3, description="reliability bound SINR_min (dB)")
    cost_per_gbit: float = Field(0.4, ge=0, description="5G traffic cost e^5G ($/Gbit)")
    alpha: float = Field(200.0, ge=0, description="weight α of the traffic cost")
    rho: float = Field(1.0, description="initial preference value ρ")
    queue_delay_max_s: float = Field(
        2.0, gt=0, description="long-term queuing-delay bound τ^que_max (s)"
    )
    propose_to_need: bool = Field(
        True,
        description="a device proposes only to as many subchannels as its backlog needs this "
        "slot (at most q_m); False proposes to q_m as in Algorithm 2",
    )
    emi: EmiConfig = Field(default_factory=EmiConfig)
    channel: ChannelConfig = Field(default_factory=ChannelConfig)
    arrivals: ArrivalConfig = Field(default_factory=ArrivalConfig)
    bidding: BiddingConfig = Field(default_factory=BiddingConfig)

    @property
    def subchannels(self) -> int:
        """J = J1 + J2."""
        return self.plc_subchannels + self.g5_subchannels

    @property
    def slots(self) -> int:
        """T = V·T0."""
        return self.epochs * self.slots_per_epoch

    @model_validator(mode="after")
    def _feasible(self) -> AccessConfig:
        if self.subchannels < 1:
            raise ValueError("plc_subchannels + g5_subchannels must be at least 1")
        if self.quota > self.subchannels:
            raise ValueError(
                f"quota {self.quota} is above the {self.subchannels} subchannels; "
                f"accepted: 1..{self.subchannels}"
            )
        if self.devices > self.subchannels:
            raise ValueError(
                f"devices {self.devices} exceed J1 + J2 = {self.subchannels} mode places "
                f"(C3, C4); accepted: 1..{self.subchannels}"
            )
        lo, hi = self.arrivals.mean_kbit
        if lo < 0 or hi < lo:
            raise ValueError(
                f"arrivals.mean_kbit must be [low, high] with 0 ≤ low ≤ high, got {[lo, hi]}"
            )
        return self


def _format(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "<root>"
        msg = str(e["msg"]).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" + ("" if loc == "<root>" else f" (got {e.get('input')!r})"))
    return "invalid access config: " + "; ".join(parts)


@lru_cache(maxsize=1)
def _packaged() -> dict[str, Any]:
    text = resources.files("pcnalloc.data").joinpath("access_default.yaml").read_text()
    return dict(yaml.safe_load(text))


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def access_config(overrides: dict[str, Any] | None = None, **kw: Any) -> AccessConfig:
    """The packaged default with nested ``overrides`` (a mapping, e.g. from YAML) and keywords.

    Raises:
        AccessConfigError: one line naming each bad field and what is accepted.
    """
    data = _merge(_packaged(), overrides or {})
    data = _merge(data, kw)
    try:
        return AccessConfig.model_validate(data)
    except ValidationError as err:
        raise AccessConfigError(_format(err)) from None


def load_access_config(
    path: str | Path | None, *, sets: Sequence[str] = (), **kw: Any
) -> AccessConfig:
    """Read a YAML file of overrides (or none) over the packaged default.

    The dotted ``sets`` (``--set KEY.PATH=VALUE``, see :mod:`pcnalloc.core.overrides`) merge
    over the file and the keywords.
    """
    from pcnalloc.config import read_yaml
    from pcnalloc.core.overrides import parse_sets

    data = read_yaml(path) if path is not None else {}
    return access_config(_merge(_merge(data, kw), parse_sets(sets, AccessConfig)))
