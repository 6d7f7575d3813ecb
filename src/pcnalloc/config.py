"""Frozen, validated configuration objects for every stage; YAML in, clear errors out.

Each field carries a description with its unit; the CLI and docs read these, so a default is
written exactly once (here). Every object rejects unknown keys so a typo fails loudly.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pcnalloc.errors import ConfigError, choices

SLICES: tuple[str, ...] = ("rt", "nrt", "mgmt")
"""Isolated capacity pools: Zone I (real-time control), Zone II (non-control production),
Zones III+IV (management network), after China's secondary-security zoning rules."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_M = TypeVar("_M", bound=BaseModel)


class NetworkConfig(_Frozen):
    """How a grid case becomes a communication network (DESIGN §2)."""

    case: str = Field("case30", description="pandapower case name, MATPOWER .m file or JSON graph")
    slice_shares: dict[str, float] = Field(
        default_factory=lambda: {"rt": 0.2, "nrt": 0.2, "mgmt": 0.6},
        description="share of each link's capacity given to each slice pool (sums to 1)",
    )
    ohm_per_km: float = Field(
        0.4, gt=0, description="HV overhead reactance used to estimate length"
    )
    min_length_km: float = Field(1.0, gt=0, description="lower clamp of estimated link length (km)")
    max_length_km: float = Field(
        400.0, gt=0, description="upper clamp of estimated link length (km)"
    )
    propagation_us_per_km: float = Field(5.0, gt=0, description="fiber propagation delay (µs/km)")
    switching_delay_ms: float = Field(0.05, ge=0, description="per-hop switching delay (ms)")
    queue_q0_ms: float = Field(0.1, ge=0, description="queueing term scale q0 in q0·u/(1−u) (ms)")
    util_cap: float = Field(0.99, gt=0, lt=1, description="utilisation cap in the queueing term")
    sites_per_region: int = Field(20, ge=2, description="target region size for Louvain regions")
    region_seed: int = Field(0, description="seed of the Louvain community detection")
    path_cache: int | None = Field(
        None,
        ge=1,
        le=64,
        description="shortest paths cached per site pair (None = k_paths; more paths keep "
        "alternatives ready after fiber cuts, fewer build faster)",
    )

    @field_validator("slice_shares")
    @classmethod
    def _shares(cls, v: dict[str, float]) -> dict[str, float]:
        if set(v) != set(SLICES):
            raise ValueError(f"slice_shares keys must be exactly {list(SLICES)}, got {sorted(v)}")
        if any(x <= 0 for x in v.values()) or abs(sum(v.values()) - 1.0) > 1e-6:
            raise ValueError(f"slice_shares must be positive and sum to 1, got {v}")
        return v


class EventsConfig(_Frozen):
    """Grid faults and fiber cuts (DESIGN §3). Rates are per hour of simulated time.

    The defaults describe a stressed operating day (storms), so that an episode of a thousand
    requests — a few minutes of simulated time — sees emergencies and cuts; a calm day is
    about ``faults_per_hour: 0.01`` and ``fiber_cuts_per_hour: 0.005``.
    """

    faults_per_hour: float = Field(6.0, ge=0, description="grid faults (emergencies) per hour")
    emergency_minutes: float = Field(5.0, gt=0, description="length of an emergency window (min)")
    burst_rate_per_s: float = Field(
        0.5, ge=0, description="extra request rate from the faulted neighbourhood (1/s)"
    )
    burst_hops: int = Field(2, ge=0, description="sites within this many hops of the fault burst")
    fiber_cuts_per_hour: float = Field(3.0, ge=0, description="fiber cuts per hour")
    repair_minutes: float = Field(30.0, gt=0, description="mean repair time of a cut link (min)")


# ---------------------------------------------------------------------------- scenarios
class Scenario(_Frozen):
    """One scenario family (all counts are per episode); see :mod:`pcnalloc.traffic.scenarios`."""

    name: str = Field(description="family name")
    description: str = Field("", description="what the family is about")
    faults: int = Field(0, ge=0, le=100, description="grid faults scheduled in every episode")
    fiber_cuts: int = Field(0, ge=0, le=100, description="fiber cuts scheduled in every episode")
    cut_target: Literal["busy", "busiest", "random"] = Field(
        "busy",
        description="busy: a random live link among the busiest_share carrying most flows "
        "(the very busiest excluded); busiest: the link carrying most flows; random: any",
    )
    busy_share: float = Field(
        0.3, gt=0, le=1, description="share of live links, by flow count, that count as busy"
    )
    window: tuple[float, float] = Field(
        (0.05, 0.7),
        description="events fall uniformly in this fraction of the episode's expected span",
    )
    events: dict[str, float] = Field(
        default_factory=dict,
        description="overrides of TrafficConfig.events (e.g. burst_rate_per_s, per-hour rates)",
    )
    burst_weights: dict[str, float] | None = Field(
        None, description="class → share of burst requests (None = the catalog's weights)"
    )

    @field_validator("window")
    @classmethod
    def _window(cls, v: tuple[float, float]) -> tuple[float, float]:
        lo, hi = v
        if not 0.0 <= lo < hi <= 1.0:
            raise ValueError(f"window must satisfy 0 ≤ lo < hi ≤ 1, got {list(v)}")
        return v


def _packaged_dir() -> Any:
    return resources.files("pcnalloc") / "data" / "scenarios"


def list_scenarios() -> list[str]:
    """Names of the packaged scenario families."""
    return sorted(
        p.name.removesuffix(".yaml") for p in _packaged_dir().iterdir() if p.name.endswith(".yaml")
    )


def load_scenario(name_or_path: str) -> Scenario:
    """A packaged family by name, or a user YAML file by path.

    Raises:
        ConfigError: an unknown name, an unreadable file or a bad field (named).
    """
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        if not p.is_file():
            raise ConfigError(f"scenario file {name_or_path!r} does not exist")
        text_src: Any = p
        where = str(p)
    else:
        if name_or_path not in list_scenarios():
            raise ConfigError(
                f"unknown scenario {name_or_path!r}; accepted: {choices(list_scenarios())} "
                "or a scenario .yaml file"
            )
        text_src = _packaged_dir() / f"{name_or_path}.yaml"
        where = f"packaged scenario {name_or_path!r}"
    try:
        data = yaml.safe_load(text_src.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"unreadable scenario {where}: {err}".replace("\n", " ")) from None
    if not isinstance(data, dict):
        raise ConfigError(f"scenario {where} must hold a mapping")
    try:
        return Scenario.model_validate(data)
    except ValidationError as err:
        bad = "; ".join(
            f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']} (got {e.get('input')!r})"
            for e in err.errors()
        )
        raise ConfigError(f"invalid scenario {where}: {bad}") from None


class TrafficConfig(_Frozen):
    """Offered traffic (DESIGN §3)."""

    catalog: str | None = Field(None, description="service catalog YAML; None = packaged default")
    load: float = Field(1.0, gt=0, le=10, description="offered load ρ at the bottleneck link")
    profile: Literal["two_peak", "flat", "simbench"] = Field(
        "two_peak", description="daily modulation of arrival rates"
    )
    start_hour: float = Field(8.0, ge=0, lt=24, description="time of day at the episode start (h)")
    primary_cc_share: float = Field(
        0.7, ge=0, le=1, description="share of control-center traffic to the primary center"
    )
    warm_start: bool = Field(
        True, description="start episodes from the stationary M/G/∞ flow population"
    )
    events: EventsConfig = Field(default_factory=EventsConfig)
    scenario: str | None = Field(
        None,
        description="scenario family (normal, storm, fiber-cut, mixed) or a scenario YAML file "
        "whose events are scheduled inside every episode; None = the per-hour event rates only",
    )

    @field_validator("scenario")
    @classmethod
    def _scenario(cls, v: str | None) -> str | None:
        if v is not None:
            load_scenario(v)  # unknown names and bad files fail here, before any work
        return v

    @field_validator("load")
    @classmethod
    def _load(cls, v: float) -> float:
        if v <= 0:
            raise ValueError(f"load must be > 0, got {v}")
        return v


class RewardConfig(_Frozen):
    """Multi-objective reward weights (DESIGN §4)."""

    block_penalty: float = Field(
        0.5, ge=0, description="× value when rejected though valid existed"
    )
    w_res: float = Field(0.002, ge=0, description="per granted Mb/s·hop")
    w_bal: float = Field(2.0, ge=0, description="per unit of max utilisation above balance_knee")
    balance_knee: float = Field(
        0.8, ge=0, le=1, description="utilisation above which w_bal applies"
    )
    w_lat: float = Field(0.2, ge=0, description="per unit of latency/bound")
    invalid_penalty: float = Field(1.0, ge=0, description="× value when a masked action is sent")
    preempt_penalty: float = Field(1.0, ge=0, description="× value of each pre-empted flow")


class EnvConfig(_Frozen):
    """The decision environment (DESIGN §4)."""

    network: NetworkConfig = Field(default_factory=NetworkConfig)
    traffic: TrafficConfig = Field(default_factory=TrafficConfig)
    reward: RewardConfig = Field(default_factory=RewardConfig)
    k_paths: int = Field(4, ge=1, le=16, description="candidate paths K per request")
    candidate_pool: int | None = Field(
        None,
        ge=1,
        le=64,
        description="offer the K shortest of this many shortest routes that can carry the "
        "request now (a valid action, pre-empting or not), filled up with the rest (None or "
        "≤ K = the K shortest routes; pcnalloc.envs.candidates)",
    )
    grant_levels: int = Field(3, ge=1, le=4, description="grant slots L per candidate path")
    history: int = Field(16, ge=1, le=256, description="requests W kept in the history")
    episode_requests: int = Field(1000, ge=1, description="requests per episode (truncation)")
    trust_threshold: float = Field(
        0.5, ge=0, le=1, description="minimum site trust on a Zone I/II path"
    )
    preemption: bool = Field(
        True, description="allow candidates that pre-empt lower-priority flows (RSVP-TE style)"
    )
    rules: str | None = Field(
        None,
        description="rule file merged over the packaged default rules; its critical/hard rules "
        "further restrict the action mask (None = the default rules, which the compiled "
        "candidate kernel enforces directly)",
    )
    emergency_priorities: bool = Field(
        True,
        description="apply the rule set's emergency priorities (setup/hold) to requests from a "
        "region with an active grid emergency",
    )

    @model_validator(mode="after")
    def _cache_covers_k(self) -> EnvConfig:
        pc = self.network.path_cache
        if pc is None or pc < self.route_pool:
            object.__setattr__(
                self, "network", self.network.model_copy(update={"path_cache": self.route_pool})
            )
        return self

    @property
    def route_pool(self) -> int:
        """Routes the K candidates are drawn from: ``candidate_pool`` when it exceeds K."""
        return max(self.k_paths, self.candidate_pool or 0)

    @property
    def n_actions(self) -> int:
        """K·L path/grant actions plus one reject."""
        return self.k_paths * self.grant_levels + 1


def _format_validation(err: ValidationError, where: str) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "<root>"
        parts.append(f"{loc}: {e['msg']} (got {e.get('input')!r})")
    return f"invalid {where}: " + "; ".join(parts)


def build(model: type[_M], data: dict[str, Any], where: str) -> _M:
    """Validate ``data`` into ``model``; raise :class:`ConfigError` naming each bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_validation(err, where)) from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, raising :class:`ConfigError` on a missing or malformed file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} does not exist")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"malformed YAML in {str(p)!r}: {err}".replace("\n", " ")) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{str(p)!r} must hold a mapping, got {type(data).__name__}")
    return data


def env_config(**overrides: Any) -> EnvConfig:
    """Build an :class:`EnvConfig` from nested keyword overrides, with clear errors."""
    return build(EnvConfig, overrides, "environment config")
