"""Name → policy factory, shared by the CLI, the evaluation runner and later stages.

A policy spec is ``NAME[:K][@ARG][+rules]``:

- ``NAME`` a registered policy (heuristics here; ``teacher``, ``student``, ``edge`` … register
  themselves when their module is imported, which :func:`make_policy` does on demand);
- ``:K`` the number of candidate paths for heuristics (``ksp-ff:16``);
- ``@ARG`` the factory's first argument — the checkpoint or artifact a learned policy loads
  (``teacher@out/run/teacher``; ``edge@ARTIFACT::PUBLIC_KEY``), so a spec stays one
  picklable string for any executor; for heuristics, tuned parameters as
  ``key=value,…`` (``trunk:8@reserve=0.1,protect_from=2``, ``lcr@beta=0.05,gamma=2``), which
  stay in the policy's display name so reports name the tuned parameters; ``sb3@PATH.zip``
  loads a saved Stable-Baselines3 / sb3-contrib model (reported as ``sb3@STEM``);
- ``+rules`` puts the policy behind the rule engine, which intercepts forbidden proposals.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pcnalloc.baselines.admission import LeastCostRouting, TrunkReservation, ValuePreemption
from pcnalloc.baselines.base import Policy
from pcnalloc.baselines.heuristics import FirstFit, LeastLoaded, RandomValid
from pcnalloc.errors import ConfigError, UnknownPolicyError

_FACTORIES: dict[str, Callable[..., Policy]] = {
    "random": lambda k=4, **kw: RandomValid(k_paths=k, name="random", **kw),
    "sp-ff": lambda k=1, **kw: FirstFit(k_paths=1, name="sp-ff", **kw),
    "ksp-ff": lambda k=4, **kw: FirstFit(k_paths=k, name="ksp-ff", **kw),
    "llp": lambda k=4, **kw: LeastLoaded(k_paths=k, name="llp", **kw),
    "cspf-pe": lambda k=16, **kw: FirstFit(k_paths=k, preempt=True, name="cspf-pe", **kw),
    "trunk": lambda arg="", k=16, **kw: TrunkReservation(
        k_paths=k,
        name="trunk",
        **_params(arg, "trunk", {"reserve": float, "protect_from": int}),
        **kw,
    ),
    "lcr": lambda arg="", k=16, **kw: LeastCostRouting(
        k_paths=k,
        name="lcr",
        **_params(arg, "lcr", {"beta": float, "gamma": float, "critical_priority": int}),
        **kw,
    ),
    "cspf-pv": lambda arg="", k=16, **kw: ValuePreemption(
        k_paths=k, name="cspf-pv", **_params(arg, "cspf-pv", {"ratio": float}), **kw
    ),
}


def _sb3(arg: str = "", **kwargs: Any) -> Policy:
    """``sb3@PATH.zip``: imported here, so SB3 and torch load only when it is asked for."""
    from pcnalloc.baselines.sb3 import make_sb3

    return make_sb3(arg, **kwargs)


_FACTORIES["sb3"] = _sb3
_PARAMETRISED = ("trunk", "lcr", "cspf-pv")
"""Heuristics whose ``@ARG`` is ``key=value,…`` parameters (kept in the display name)."""


def _params(arg: str, name: str, accepted: dict[str, type]) -> dict[str, Any]:
    """Parse ``key=value,…`` for policy ``name``; ConfigError names a bad key or value."""
    out: dict[str, Any] = {}
    for part in (p.strip() for p in arg.split(",") if p.strip()):
        key, eq, val = part.partition("=")
        if not eq or key not in accepted:
            raise ConfigError(
                f"policy {name!r}: bad parameter {part!r}; accepted: "
                + ", ".join(f"{k}=<{t.__name__}>" for k, t in accepted.items())
            )
        try:
            x = accepted[key](val)
        except ValueError:
            raise ConfigError(
                f"policy {name!r}: {key}={val!r} is not a {accepted[key].__name__}"
            ) from None
        if (isinstance(x, float) and not np.isfinite(x)) or (isinstance(x, (int, float)) and x < 0):
            raise ConfigError(f"policy {name!r}: {key}={val!r} must be a finite number ≥ 0")
        out[key] = x
    return out


_PLUGINS: dict[str, str] = {
    "teacher": "pcnalloc.teacher",
    "student": "pcnalloc.distill",
    "student-masked": "pcnalloc.distill",
    "edge": "pcnalloc.edge.agent",
}
"""Policies whose modules register them on import (imported lazily: torch is heavy)."""


def register_policy(name: str, factory: Callable[..., Policy]) -> None:
    """Add a policy factory (teacher, students) under ``name``."""
    _FACTORIES[name] = factory


def policy_names() -> list[str]:
    """Every registered policy name, the plug-in ones included, sorted."""
    return sorted(set(_FACTORIES) | set(_PLUGINS))


def display_name(spec: str) -> str:
    """The spec without a path ``@ARG`` (reports name policies, not file paths); tuned
    heuristic parameters (``trunk@reserve=0.1``) are kept."""
    base, plus, rest = spec.partition("+")
    head, _, arg = base.partition("@")
    if head.partition(":")[0] in _PARAMETRISED and arg:
        return base + plus + rest
    if head == "sb3" and arg:  # two saved models stay apart in reports, by file name
        return f"sb3@{Path(arg).stem}" + plus + rest
    return head + plus + rest


def make_policy(spec: str, **kwargs: Any) -> Policy:
    """Build a policy from a spec (see the module docstring).

    Raises:
        UnknownPolicyError: for a name that is not registered.
        ConfigError: for a K outside 1..16.
    """
    if spec.endswith("+rules"):
        from pcnalloc.core.policy import Maskable
        from pcnalloc.rules.guard import GuardedPolicy

        inner = make_policy(spec[: -len("+rules")], **kwargs)
        if isinstance(inner, Maskable) and inner.masked:
            inner.masked = False  # the rule layer intercepts (and counts) invalid proposals
        guarded = GuardedPolicy(inner)
        guarded.name = display_name(spec)
        return guarded
    head, _, arg = spec.partition("@")
    name, _, k = head.partition(":")
    if name not in _FACTORIES and name in _PLUGINS:
        importlib.import_module(_PLUGINS[name])
    if name not in _FACTORIES:
        raise UnknownPolicyError(spec, policy_names())
    if k:
        try:
            kk = int(k)
        except ValueError:
            raise ConfigError(f"policy {spec!r}: K must be an integer, got {k!r}") from None
        if not 1 <= kk <= 16:
            raise ConfigError(f"policy {spec!r}: K must be in 1..16, got {kk}")
        kwargs["k"] = kk
    policy = _FACTORIES[name](arg, **kwargs) if arg else _FACTORIES[name](**kwargs)
    policy.name = display_name(spec)
    return policy
