"""The service catalog: QoS classes with zone, priority, bandwidth, latency bound, protection."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pcnalloc.config import SLICES, read_yaml
from pcnalloc.errors import CatalogError, ConfigError

ZONE_SLICE = {"I": "rt", "II": "nrt", "III": "mgmt", "IV": "mgmt"}
"""Security zone → capacity pool (Zones I/II: dispatch data network; III/IV: management)."""

ZONES = ("I", "II", "III", "IV")
ENDPOINTS = ("line_ends", "to_cc", "cc_bidir", "site_pair")


class ServiceClass(BaseModel):
    """One QoS class of the catalog; units in the field names."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    zone: Literal["I", "II", "III", "IV"]
    priority: int = Field(ge=0, le=7)
    value: float = Field(gt=0)
    bandwidth_mbps: float = Field(gt=0)
    max_latency_ms: float = Field(gt=0)
    grant_levels: list[float] = Field(min_length=1, max_length=4)
    protection: Literal["none", "1+1"] = "none"
    endpoints: Literal["line_ends", "to_cc", "cc_bidir", "site_pair"]
    mean_holding_s: float = Field(gt=0)
    load_share: float = Field(ge=0)
    emergency_weight: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _levels(self) -> ServiceClass:
        lv = self.grant_levels
        if any(not 0 < g <= 1 for g in lv) or lv != sorted(lv, reverse=True) or lv[0] != 1.0:
            raise ValueError(f"grant_levels must start at 1.0 and decrease within (0, 1], got {lv}")
        return self


class _CatalogFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    classes: dict[str, ServiceClass] = Field(min_length=1)


@dataclass(frozen=True, eq=False)
class Catalog:
    """Validated service classes plus vectorised per-class arrays (index = class id, C classes).

    Attributes:
        names: class names in file order.
        classes: the validated class records.
        slice_C: pool index of each class.
        bandwidth_kbps_C: requested rate (integer kb/s).
        grant_CL: grant fraction per class and slot (0 where the class has no such level).
        priority_C, value_C, max_latency_ms_C, mean_holding_s_C: per-class arrays.
        protected_C: 1+1 protection flag.
    """

    names: list[str]
    classes: list[ServiceClass]
    slice_C: np.ndarray
    zone_C: np.ndarray
    bandwidth_kbps_C: np.ndarray
    grant_CL: np.ndarray
    priority_C: np.ndarray
    value_C: np.ndarray
    max_latency_ms_C: np.ndarray
    mean_holding_s_C: np.ndarray
    protected_C: np.ndarray
    load_share_C: np.ndarray
    emergency_weight_C: np.ndarray
    source: str

    @property
    def n_classes(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        if name not in self.names:
            raise CatalogError(f"unknown service class {name!r}; accepted: {', '.join(self.names)}")
        return self.names.index(name)


def load_catalog(path: str | Path | None = None, *, max_levels: int = 4) -> Catalog:
    """Load and validate a catalog YAML (None = the packaged default).

    Raises:
        CatalogError: naming the class and field at fault.
    """
    if path is None:
        src = resources.files("pcnalloc") / "data" / "services.yaml"
        with resources.as_file(src) as p:
            raw = read_yaml(p)
        source = "packaged:services.yaml"
    else:
        try:
            raw = read_yaml(path)
        except ConfigError as err:
            raise CatalogError(str(err)) from None
        source = str(path)
    try:
        parsed = _CatalogFile.model_validate(raw)
    except ValidationError as err:
        msgs = [
            f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']} (got {e.get('input')!r})"
            for e in err.errors()
        ]
        raise CatalogError(f"invalid service catalog {source}: " + "; ".join(msgs)) from None
    names = list(parsed.classes)
    cls = [parsed.classes[n] for n in names]
    for s in SLICES:
        shares = [c.load_share for c in cls if ZONE_SLICE[c.zone] == s]
        if shares and sum(shares) <= 0:
            raise CatalogError(f"invalid service catalog {source}: slice {s!r} has zero load_share")
    L = max(max_levels, max(len(c.grant_levels) for c in cls))
    grant = np.zeros((len(cls), L))
    for i, c in enumerate(cls):
        grant[i, : len(c.grant_levels)] = c.grant_levels
    return Catalog(
        names=names,
        classes=cls,
        slice_C=np.array([SLICES.index(ZONE_SLICE[c.zone]) for c in cls], dtype=np.int64),
        zone_C=np.array([ZONES.index(c.zone) for c in cls], dtype=np.int64),
        bandwidth_kbps_C=np.array([round(c.bandwidth_mbps * 1000) for c in cls], dtype=np.int64),
        grant_CL=grant,
        priority_C=np.array([c.priority for c in cls], dtype=np.int64),
        value_C=np.array([c.value for c in cls]),
        max_latency_ms_C=np.array([c.max_latency_ms for c in cls]),
        mean_holding_s_C=np.array([c.mean_holding_s for c in cls]),
        protected_C=np.array([c.protection == "1+1" for c in cls]),
        load_share_C=np.array([c.load_share for c in cls]),
        emergency_weight_C=np.array([c.emergency_weight for c in cls]),
        source=source,
    )
