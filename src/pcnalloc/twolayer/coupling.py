"""Coupling of the access layer to the backbone: delivered access traffic → backbone requests.

What the devices of a distribution substation deliver over PLC or 5G in an epoch is what the
backbone must carry on from that substation's site to the control center. The coupling is
optional and has three documented steps:

1. :func:`delivered_traffic` plays an access policy and sums the bits each substation's
   devices delivered per epoch, per service class (each device is a metering, AMI or
   distribution-automation device, drawn once per seed with :attr:`CouplingConfig.classes`)
   and per medium (PLC, 5G): a :class:`DeliveredTraffic`.
2. :func:`to_requests` turns it into backbone :class:`~pcnalloc.traffic.generator.Request`
   objects of the matching catalog classes at the substation's backbone site
   (:func:`substation_sites`), towards the primary control center. A request reserves its
   class's catalog rate, so the volume is kept exact through the holding time: the B bits
   of one (epoch, substation, class) become n = ⌈B / (rate·epoch)⌉ flows of B / (n·rate)
   seconds each, started evenly over the epoch (so the carried rate follows the delivered
   one). :func:`check_conservation` proves Σ rate·holding = delivered bits per
   (substation, class) and raises :class:`CouplingError` otherwise.
3. :class:`CoupledBackboneEnv` is the backbone env (``PowerCommEnv``) with those requests
   scheduled as extra arrivals after ``reset`` (times relative to the episode start), next
   to its own traffic; :attr:`CoupledBackboneEnv.ledger` records what the backbone was
   offered and carried of them. :func:`run_coupled` runs both layers for one seed.

The backbone case need not be the access grid: a substation bus that is a bus of the
backbone case maps to its site; otherwise (e.g. ``mv_oberrhein`` under ``case30``) the
substations are spread over the backbone's lowest-voltage sites (not a control center) in
order, or placed by :attr:`CouplingConfig.sites`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from pcnalloc.access.config import AccessConfig
from pcnalloc.access.model import G5, AccessModel
from pcnalloc.access.policy import AccessPolicy
from pcnalloc.access.simulate import run_access
from pcnalloc.errors import ConfigError

COUPLED_CLASSES: tuple[str, ...] = ("metering", "ami_iot", "distribution_automation")
"""Backbone catalog classes access devices feed (DESIGN §3 names)."""


class CouplingError(ConfigError):
    """A coupling whose requests do not carry the delivered volume, or a bad mapping."""


class CouplingConfig(BaseModel):
    """How delivered access traffic becomes backbone requests."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    classes: dict[str, float] = Field(
        default_factory=lambda: {"metering": 0.5, "ami_iot": 0.35, "distribution_automation": 0.15},
        description="share of the devices of each backbone class (drawn per seed)",
    )
    sites: dict[int, int] | None = Field(
        None, description="access substation bus → backbone site index (None: automatic)"
    )
    max_flows_per_epoch: int = Field(
        64, ge=1, description="cap on the flows one (epoch, substation, class) becomes"
    )

    @field_validator("classes")
    @classmethod
    def _shares(cls, v: dict[str, float]) -> dict[str, float]:
        if not v or any((not math.isfinite(x)) or x < 0 for x in v.values()):
            raise ValueError("classes needs shares ≥ 0 for at least one class")
        if sum(v.values()) <= 0:
            raise ValueError("classes needs a positive share for some class")
        return v


@dataclass
class DeliveredTraffic:
    """What each substation's devices delivered per epoch.

    Attributes:
        epoch_s: epoch length T0·τ (s).
        substations: access-grid bus of each substation, (S,).
        classes: backbone class names, (C,).
        bits: delivered bits, (V, S, C); ``bits_by_mode`` splits it by PLC/5G, (V, S, C, 2).
        device_substation, device_class: indices per device, (I,).
        access: the access run's summary (``run_access`` without traces).
        access_arrived_bits: what the devices collected over the episode (delivered plus
            what is still queued at the end: the data queues conserve bits).
    """

    epoch_s: float
    substations: np.ndarray
    classes: tuple[str, ...]
    bits: np.ndarray
    bits_by_mode: np.ndarray
    device_substation: np.ndarray
    device_class: np.ndarray
    access: dict[str, Any] = field(default_factory=dict)
    access_arrived_bits: float = 0.0

    @property
    def total_bits(self) -> float:
        return float(self.bits.sum())

    def summary(self) -> dict[str, Any]:
        """JSON-able totals per substation and class (Mbit) and per medium."""
        return {
            "epoch_s": self.epoch_s,
            "substations": [int(s) for s in self.substations],
            "classes": list(self.classes),
            "mbit_per_substation_class": (self.bits.sum(axis=0) / 1e6).round(6).tolist(),
            "mbit_plc": float(self.bits_by_mode[..., 0].sum() / 1e6),
            "mbit_5g": float(self.bits_by_mode[..., 1].sum() / 1e6),
            "mbit_total": self.total_bits / 1e6,
        }


def device_classes(n: int, cfg: CouplingConfig, seed: int) -> tuple[tuple[str, ...], np.ndarray]:
    """Class names (with positive share) and each device's class index, drawn per seed."""
    names = tuple(k for k, v in cfg.classes.items() if v > 0)
    p = np.array([cfg.classes[k] for k in names], dtype=float)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xC0C1]))
    return names, rng.choice(len(names), size=n, p=p / p.sum())


def delivered_traffic(
    policy: AccessPolicy, cfg: AccessConfig, seed: int = 0, coupling: CouplingConfig | None = None
) -> DeliveredTraffic:
    """Play ``policy`` for one access episode and sum the delivered bits (step 1)."""
    coupling = coupling or CouplingConfig()
    probe = AccessModel(cfg, seed)
    subs, dev_sub = np.unique(probe.substation, return_inverse=True)
    names, dev_cls = device_classes(cfg.devices, coupling, seed)
    bits = np.zeros((cfg.epochs, subs.size, len(names), 2))
    t0 = cfg.slots_per_epoch
    arrived = [0.0]

    def on_slot(model: AccessModel, view: Any, holder: np.ndarray, res: Any) -> None:
        used = holder >= 0
        if (model.modes >= 0).all():
            via_5g = model.modes == G5
        else:  # per-slot modes (RAF): the medium of the subchannels each device holds
            via_5g = np.zeros(model.n, bool)
            via_5g[holder[used & ~view.is_plc]] = True
        v = (model.t - 1) // t0
        np.add.at(bits[v], (dev_sub, dev_cls, via_5g.astype(np.int64)), res.served)
        arrived[0] += float(view.arrival.sum())

    run = run_access(policy, cfg, seed=seed, on_slot=on_slot)
    return DeliveredTraffic(
        epoch_s=t0 * cfg.slot_s,
        substations=subs,
        classes=names,
        bits=bits.sum(axis=3),
        bits_by_mode=bits,
        device_substation=dev_sub,
        device_class=dev_cls,
        access={k: v for k, v in run.items() if k != "trace"},
        access_arrived_bits=arrived[0],
    )


def substation_sites(
    substations: Sequence[int] | np.ndarray, net: Any, coupling: CouplingConfig | None = None
) -> np.ndarray:
    """Backbone site of each access substation (see the module docstring).

    Raises:
        CouplingError: an explicit mapping that misses a substation or names no site.
    """
    coupling = coupling or CouplingConfig()
    subs = [int(s) for s in substations]
    if coupling.sites is not None:
        missing = [s for s in subs if s not in coupling.sites]
        bad = [v for v in coupling.sites.values() if not 0 <= int(v) < net.n_sites]
        if missing or bad:
            raise CouplingError(
                f"coupling.sites: substations {missing} have no site, sites {bad} are not in "
                f"0..{net.n_sites - 1}; accepted: a site index for each of {subs}"
            )
        return np.array([int(coupling.sites[s]) for s in subs], dtype=np.int64)
    bus_site = {int(b): i for i, buses in enumerate(net.site_buses) for b in buses}
    if all(s in bus_site for s in subs):
        return np.array([bus_site[s] for s in subs], dtype=np.int64)
    ccs = set(int(c) for c in net.control_centers)
    order = sorted(
        (i for i in range(net.n_sites) if i not in ccs), key=lambda i: (net.site_kv[i], i)
    )
    if not order:
        raise CouplingError("the backbone has no site besides its control centers")
    return np.array([order[k % len(order)] for k in range(len(subs))], dtype=np.int64)


def to_requests(
    traffic: DeliveredTraffic,
    catalog: Any,
    sites: np.ndarray,
    control_centers: tuple[int, int],
    coupling: CouplingConfig | None = None,
) -> list[Any]:
    """Backbone requests carrying exactly the delivered bits (step 2); ``time_s`` is relative
    to the backbone episode's start, ``id`` is set by the env when it shows them.

    Raises:
        CatalogError: a coupled class that the backbone catalog lacks.
    """
    from pcnalloc.traffic.generator import KIND_NEW, Request

    coupling = coupling or CouplingConfig()
    cls_idx = [catalog.index(c) for c in traffic.classes]
    out: list[Request] = []
    cc1, cc2 = (int(c) for c in control_centers)
    v_n, s_n, c_n = traffic.bits.shape
    for v in range(v_n):
        for s in range(s_n):
            src = int(sites[s])
            dst = cc1 if src != cc1 else cc2
            for c in range(c_n):
                b = float(traffic.bits[v, s, c])
                if b <= 0:
                    continue
                rate = float(catalog.bandwidth_kbps_C[cls_idx[c]]) * 1e3
                hold = b / rate
                n = min(coupling.max_flows_per_epoch, max(1, math.ceil(hold / traffic.epoch_s)))
                for k in range(n):
                    out.append(
                        Request(
                            id=-1,
                            time_s=(v + (k + 0.5) / n) * traffic.epoch_s,
                            cls=cls_idx[c],
                            src=src,
                            dst=dst,
                            holding_s=hold / n,
                            kind=KIND_NEW,
                        )
                    )
    out.sort(key=lambda r: r.time_s)
    return out


def offered_bits(requests: Sequence[Any], catalog: Any) -> float:
    """Σ catalog rate × holding time of ``requests`` (bits)."""
    rate = np.asarray(catalog.bandwidth_kbps_C, dtype=float) * 1e3
    return float(sum(rate[r.cls] * r.holding_s for r in requests))


def check_conservation(
    traffic: DeliveredTraffic,
    requests: Sequence[Any],
    catalog: Any,
    sites: np.ndarray,
    rtol: float = 1e-9,
) -> dict[str, float]:
    """Offered backbone volume per (site, class) equals the delivered access bits.

    Returns ``{"delivered_bits", "offered_bits", "max_rel_error"}``.

    Raises:
        CouplingError: naming the first (site, class) whose volumes differ beyond ``rtol``.
    """
    rate = np.asarray(catalog.bandwidth_kbps_C, dtype=float) * 1e3
    want: dict[tuple[int, int], float] = {}
    for s, site in enumerate(sites):
        for c, name in enumerate(traffic.classes):
            key = (int(site), catalog.index(name))
            want[key] = want.get(key, 0.0) + float(traffic.bits[:, s, c].sum())
    got: dict[tuple[int, int], float] = {}
    for r in requests:
        key = (int(r.src), int(r.cls))
        got[key] = got.get(key, 0.0) + rate[r.cls] * r.holding_s
    worst = 0.0
    for key in sorted(set(want) | set(got)):
        a, b = want.get(key, 0.0), got.get(key, 0.0)
        err = abs(a - b) / max(abs(a), 1.0)
        worst = max(worst, err)
        if err > rtol:
            raise CouplingError(
                f"backbone requests at site {key[0]} class {catalog.names[key[1]]!r} offer "
                f"{b:.6g} bit but the access layer delivered {a:.6g} bit there"
            )
    return {
        "delivered_bits": traffic.total_bits,
        "offered_bits": float(sum(got.values())),
        "max_rel_error": worst,
    }


def _coupled_env_class() -> type:
    from pcnalloc.envs.power_comm import PowerCommEnv

    class CoupledBackboneEnv(PowerCommEnv):
        """``PowerCommEnv`` with access-derived requests as extra scheduled arrivals.

        Only the env's public interface is used: the requests are queued after each
        ``reset`` with :meth:`PowerCommEnv.schedule_external` and told apart on show by
        :attr:`PowerCommEnv.current_is_external` (``tests/access/test_coupling_public_api.py``
        keeps it so).

        Args:
            config: backbone env config (as for ``PowerCommEnv``).
            requests: from :func:`to_requests`; their ``time_s`` counts from ``reset`` (the
                time of the episode's first request).
            **kw: ``PowerCommEnv`` keywords (observation, network, catalog).

        Attributes:
            ledger: per episode, what the backbone was offered and carried of the access
                requests: ``shown``, ``offered_bits``, ``carried_bits`` (rate × grant ×
                holding of accepted ones) and per class ``offered``/``accepted`` counts.
        """

        def __init__(self, config: Any = None, *, requests: Sequence[Any] = (), **kw: Any):
            super().__init__(config, **kw)
            self.access_requests = list(requests)
            self.ledger: dict[str, Any] = {}

        def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
            obs, info = super().reset(seed=seed, options=options)
            n_c = self.catalog.n_classes
            self.ledger = {
                "scheduled": len(self.access_requests),
                "shown": 0,
                "offered_bits": 0.0,
                "carried_bits": 0.0,
                "offered_per_class": [0] * n_c,
                "accepted_per_class": [0] * n_c,
            }
            self.schedule_external(self.access_requests)
            return obs, info

        @property
        def current_is_access(self) -> bool:
            """True when the request on show came from the access layer."""
            return bool(self.current_is_external)

        def step(self, action: Any):
            req = self.current_request if self.current_is_external else None
            out = super().step(action)
            if req is not None:
                info = out[4]
                led = self.ledger
                rate = float(self.catalog.bandwidth_kbps_C[req.cls]) * 1e3
                led["shown"] += 1
                led["offered_bits"] += rate * req.holding_s
                led["offered_per_class"][req.cls] += 1
                if info["outcome"] == "accepted":
                    led["carried_bits"] += rate * float(info["grant"]) * req.holding_s
                    led["accepted_per_class"][req.cls] += 1
            return out

    return CoupledBackboneEnv


def coupled_env(config: Any, requests: Sequence[Any], **kw: Any) -> Any:
    """A :class:`CoupledBackboneEnv` (class built on first use: the backbone env is imported
    only by callers of the coupling)."""
    return _coupled_env_class()(config, requests=requests, **kw)


def run_coupled(
    access_policy: AccessPolicy,
    access_cfg: AccessConfig,
    backbone_policy: Any,
    backbone_cfg: Any,
    *,
    seed: int = 0,
    coupling: CouplingConfig | None = None,
    max_requests: int = 200_000,
) -> dict[str, Any]:
    """Both layers for one seed: access episode → requests → backbone episode that runs
    until every access request has been decided (or ``max_requests``).

    Returns the access summary, the delivered traffic, the conservation check and the
    backbone ledger plus its overall acceptance.
    """
    from pcnalloc.envs.power_comm import PowerCommEnv
    from pcnalloc.evaluate.runner import env_config_for

    coupling = coupling or CouplingConfig()
    traffic = delivered_traffic(access_policy, access_cfg, seed, coupling)
    cfg = env_config_for(backbone_policy, backbone_cfg, max_requests)
    probe = PowerCommEnv(cfg, observation=backbone_policy.observation)
    sites = substation_sites(traffic.substations, probe.net, coupling)
    reqs = to_requests(traffic, probe.catalog, sites, probe.net.control_centers, coupling)
    check = check_conservation(traffic, reqs, probe.catalog, sites)
    env = coupled_env(cfg, reqs, observation=backbone_policy.observation, network=probe.net)
    if hasattr(backbone_policy, "bind_env"):
        backbone_policy.bind_env(env)
    backbone_policy.reset(seed)
    obs, _ = env.reset(seed=seed)
    steps, accepted = 0, 0
    while env.ledger["shown"] < len(reqs) and steps < max_requests:
        obs, _, _, _, info = env.step(backbone_policy.act(obs))
        steps += 1
        accepted += info["outcome"] == "accepted"
    led = env.ledger
    return {
        "seed": seed,
        "access": traffic.access,
        "delivered": traffic.summary(),
        "sites": {int(s): int(x) for s, x in zip(traffic.substations, sites, strict=True)},
        "requests": len(reqs),
        "conservation": check,
        "backbone": {
            "case": cfg.network.case,
            "policy": getattr(backbone_policy, "name", str(backbone_policy)),
            "decisions": steps,
            "accepted_share_all": accepted / max(steps, 1),
            "access_requests_shown": led["shown"],
            "access_offered_mbit": led["offered_bits"] / 1e6,
            "access_carried_mbit": led["carried_bits"] / 1e6,
            "access_carried_share": led["carried_bits"] / max(led["offered_bits"], 1e-12),
            "per_class": {
                env.catalog.names[c]: {
                    "offered": led["offered_per_class"][c],
                    "accepted": led["accepted_per_class"][c],
                }
                for c in range(env.catalog.n_classes)
                if led["offered_per_class"][c]
            },
        },
    }


__all__ = [
    "COUPLED_CLASSES",
    "CouplingConfig",
    "CouplingError",
    "DeliveredTraffic",
    "check_conservation",
    "coupled_env",
    "delivered_traffic",
    "offered_bits",
    "run_coupled",
    "substation_sites",
    "to_requests",
]
