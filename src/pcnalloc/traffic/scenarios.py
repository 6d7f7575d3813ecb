"""Scenario families: grid events scheduled inside every episode (DESIGN §3).

Per-hour event rates almost never fire inside a 1000-request episode (a few minutes of
simulated time), so evaluation and training run on named families whose events are placed
*inside each episode's window*: a fixed number of grid faults and fiber cuts per episode, at
times drawn uniformly from a fraction of the episode's expected span and at places drawn from
the env's own seeded generator. Packaged families (``pcnalloc/data/scenarios/*.yaml``):

- ``normal``: a calm day; no scheduled events and near-zero background event rates.
- ``storm``: several grid faults, each opening an emergency window whose neighbourhood sends
  bursts of PMU, fault-record and inspection-video requests.
- ``fiber-cut``: cuts of the busiest links (most flows), with restoration requests for the
  interrupted flows and 1+1 switch-over for protected ones.
- ``mixed``: faults and cuts together.

A user passes a family by name or a YAML file of the same schema (:class:`Scenario`).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pcnalloc.errors import ConfigError, choices


class Scenario(BaseModel):
    """One scenario family (all counts are per episode)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

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
