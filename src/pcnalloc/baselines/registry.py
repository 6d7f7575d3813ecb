"""Name → policy factory, shared by the CLI, the evaluation runner and later stages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pcnalloc.baselines.base import Policy
from pcnalloc.baselines.heuristics import FirstFit, LeastLoaded, RandomValid
from pcnalloc.errors import ConfigError, UnknownPolicyError

_FACTORIES: dict[str, Callable[..., Policy]] = {
    "random": lambda k=4, **kw: RandomValid(k_paths=k, name="random", **kw),
    "sp-ff": lambda k=1, **kw: FirstFit(k_paths=1, name="sp-ff", **kw),
    "ksp-ff": lambda k=4, **kw: FirstFit(k_paths=k, name="ksp-ff", **kw),
    "llp": lambda k=4, **kw: LeastLoaded(k_paths=k, name="llp", **kw),
    "cspf-pe": lambda k=16, **kw: FirstFit(k_paths=k, preempt=True, name="cspf-pe", **kw),
}


def register_policy(name: str, factory: Callable[..., Policy]) -> None:
    """Add a policy factory (teacher, students) under ``name``."""
    _FACTORIES[name] = factory


def policy_names() -> list[str]:
    return sorted(_FACTORIES)


def make_policy(spec: str, **kwargs: Any) -> Policy:
    """Build a policy from ``name`` or ``name:K`` (e.g. ``ksp-ff:16``); a ``+rules`` suffix
    puts it behind the rule engine (``student+rules``), which intercepts forbidden proposals.

    Raises:
        UnknownPolicyError: for a name that is not registered.
        ConfigError: for a K outside 1..16.
    """
    if spec.endswith("+rules"):
        from pcnalloc.edge.guard import GuardedPolicy

        guarded = GuardedPolicy(make_policy(spec[: -len("+rules")], **kwargs))
        guarded.name = spec
        return guarded
    name, _, k = spec.partition(":")
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
    policy = _FACTORIES[name](**kwargs)
    policy.name = spec
    return policy
