"""Settings of the distributed stage: regional agents, the gap sweep and the trust scenarios.

One object per verb, read by ``pcnalloc distributed gap`` (:class:`GapConfig`) and
``pcnalloc distributed trust`` (:class:`TrustRun`, composing :class:`TrustScenario`), whose
options take their defaults and help texts from these fields. The module imports no
environment, grid or torch code, so the command line reads it at start.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import Field

from pcnalloc.config import EnvConfig, _Frozen, env_config
from pcnalloc.core.limits import EPISODES_MAX, REQUESTS_MAX, SEED_MAX, SEEDS_MAX
from pcnalloc.distributed.trust import TrustConfig

Seed = Annotated[int, Field(ge=0, le=SEED_MAX)]
Share = Annotated[float, Field(ge=0, le=1)]
Staleness = Annotated[float, Field(ge=0, allow_inf_nan=False)]

RATES: dict[str, int] = {"low": 20, "high": 400}
"""Named request rates: decisions (hence at most that many feedbacks) per slot (the low and
high rates of BC-DRL Fig. 5(a))."""


def rate_name(requests_per_slot: int) -> str:
    """The name of a request rate (``400`` → ``"high"``), or the number as text."""
    return next((k for k, v in RATES.items() if v == requests_per_slot), str(requests_per_slot))


class RegionConfig(_Frozen):
    """How regional agents share state."""

    staleness_s: float = Field(
        0.0, ge=0, description="seconds of simulated time between summaries of other regions"
    )
    learn_from_refusal: bool = Field(
        True, description="a refusal carries the owner's current usage of the refused links"
    )


class GapConfig(_Frozen):
    """Regional agents against the same policy run centrally, over a staleness sweep.

    Every seed plays one centralised episode and one regional episode per staleness value
    (:func:`pcnalloc.distributed.regions.distributed_gap`).
    """

    case: str = Field("case30", description="grid case name or file")
    policy: str = Field("ksp-ff", description="policy spec of every region (ksp-ff, teacher@DIR …)")
    staleness_s: tuple[Staleness, ...] = Field(
        (0.0, 1.0, 10.0, 60.0),
        min_length=1,
        description="staleness values swept (s of simulated time between summaries)",
    )
    seeds: tuple[Seed, ...] = Field(
        (0, 1, 2), min_length=1, max_length=SEEDS_MAX, description="episode seeds"
    )
    requests: int = Field(2000, ge=1, le=REQUESTS_MAX, description="decisions per episode")
    load: float = Field(1.0, gt=0, allow_inf_nan=False, description="offered load ρ (> 0)")

    def env_config(self) -> EnvConfig:
        """The environment config every episode runs on."""
        return env_config(network={"case": self.case}, traffic={"load": self.load})


class TrustScenario(_Frozen):
    """One trust scenario: network, attackers, feedback and slotting.

    The defaults are those of ``pcnalloc distributed trust``: 10 % untruthful feedback next
    to the malicious sites, at the high request rate (400 decisions per slot). Until both
    read this object the class said 0 % and 200, values no command ever ran.
    """

    case: str = Field("case30", description="grid case name or file")
    load: float = Field(1.0, gt=0, description="offered load ρ")
    policy: str = Field("ksp-ff", description="policy spec that decides the requests")
    malicious_sites: int | list[str] = Field(
        2,
        description="number of malicious sites drawn (seeded) among non-control-center sites "
        "with ≥ 2 links, or their site names",
    )
    drop_share: float = Field(
        0.8, ge=0, le=1, description="share of relayed flows a malicious site drops"
    )
    malicious_feedback_share: float = Field(
        0.1, ge=0, le=1, description="share of feedbacks that are untruthful"
    )
    feedback_probability: float = Field(
        1.0, ge=0, le=1, description="probability that a served user sends feedback"
    )
    include_endpoints: bool = Field(
        False, description="also attribute a flow's feedback to its two endpoint sites"
    )
    requests_per_slot: int = Field(
        RATES["high"], ge=1, le=REQUESTS_MAX, description="decisions per reputation slot"
    )
    slots: int = Field(30, ge=1, le=EPISODES_MAX, description="slots to simulate")
    trust_threshold: float | None = Field(
        None, ge=0, le=1, description="isolation threshold (None = EnvConfig.trust_threshold)"
    )
    trust: TrustConfig = Field(default_factory=TrustConfig, description="reputation parameters")
    seed: int = Field(
        0, ge=0, le=SEED_MAX, description="one seed for the env, attackers and feedback"
    )

    def env_config(self) -> EnvConfig:
        """The environment config the scenario runs on."""
        over: dict[str, Any] = {
            "network": {"case": self.case},
            "traffic": {"load": self.load},
            "episode_requests": self.requests_per_slot * self.slots,
        }
        if self.trust_threshold is not None:
            over["trust_threshold"] = self.trust_threshold
        return env_config(**over)


TrustScenarioKind = Literal["malicious-sites", "false-feedback", "all"]
TRUST_SCENARIOS: tuple[str, ...] = get_args(TrustScenarioKind)


class TrustRun(_Frozen):
    """``pcnalloc distributed trust``: which scenarios to play, on which base scenario.

    The malicious-sites scenario plays ``base`` as it is; the false-feedback sweep plays it
    without attackers at every share × named rate × seed (BC-DRL Fig. 5(a)).
    """

    scenario: TrustScenarioKind = Field(
        "all", description="scenarios to play: malicious-sites, false-feedback or all"
    )
    base: TrustScenario = Field(
        default_factory=TrustScenario, description="the scenario (the sweep's base)"
    )
    shares: tuple[Share, ...] = Field(
        (0.0, 0.1, 0.2, 0.3, 0.4, 0.45, 0.5),
        min_length=1,
        description="false-feedback shares swept (false-feedback scenario)",
    )
    seeds: tuple[Seed, ...] = Field(
        (0, 1), min_length=1, max_length=SEEDS_MAX, description="seeds of the false-feedback sweep"
    )


__all__ = [
    "RATES",
    "TRUST_SCENARIOS",
    "GapConfig",
    "RegionConfig",
    "TrustRun",
    "TrustScenario",
    "rate_name",
]
