"""The Policy protocol and its optional capabilities, declared in one place.

Every decision maker (heuristics, teacher, students, edge agent, SB3 models, the rule
guard) is a :class:`Policy`. A few can do more, and say so by implementing one of the
capability protocols below; callers ask through :func:`bind`, :func:`summary_of`,
:func:`scores_of` and :func:`preference_order_of` instead of probing attribute names:

- :class:`EnvBound`: reads the env it acts in beyond the observation (the rule guard reads
  ``env.current_evaluation``; the edge agent its live state) — ``bind_env(env)`` is called
  before the episode.
- :class:`Scoring`: scores every action (Q-values, logits) — used by the rule guard to pick
  the best allowed action and by the library to store soft targets.
- :class:`Ordered`: a fixed preference order over the non-reject actions (first-fit
  heuristics) — the guard's ranking for policies without scores.
- :class:`Summarising`: reports its own counters after an episode (interceptions).
- :class:`Maskable`: restricts its own choice to valid actions unless told not to.

The protocols are ``runtime_checkable``: a policy needs no base class, only the methods.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Policy(Protocol):
    """Chooses one action per request.

    Attributes:
        name: registry name used in reports (``ksp-ff``, ``teacher`` …).
        observation: which observation mode it reads: ``compact`` (request, candidates,
            action_mask, compact vector) or ``full`` (adds graph and history).
        env_overrides: EnvConfig fields this policy needs (e.g. ``{"k_paths": 16}``); the
            runner applies them, so a policy is always evaluated on an env it understands.
        model_bytes: size of the decision model (0 for heuristics).
    """

    name: str
    observation: str
    env_overrides: dict[str, Any]
    model_bytes: int

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode; seeds any internal randomness."""

    def act(self, obs: dict[str, np.ndarray]) -> int:
        """Return an action index in ``[0, K·L]`` (the last index rejects)."""
        ...


@runtime_checkable
class EnvBound(Protocol):
    """A policy that reads the env it acts in (call :func:`bind` before the episode)."""

    def bind_env(self, env: Any) -> None: ...


@runtime_checkable
class Scoring(Protocol):
    """A policy that scores every action, (A,) with higher = preferred."""

    def scores(self, obs: dict[str, np.ndarray]) -> np.ndarray: ...


@runtime_checkable
class Ordered(Protocol):
    """A policy with a fixed preference order over the non-reject actions."""

    @property
    def preference_order(self) -> np.ndarray: ...


@runtime_checkable
class Summarising(Protocol):
    """A policy that reports its own per-episode counters (e.g. interceptions)."""

    def summary(self) -> dict[str, Any]: ...


@runtime_checkable
class Maskable(Protocol):
    """A policy that can act by the best valid action (``masked``) or propose freely.

    The rule guard switches the masking off so that it sees, and counts, every invalid
    proposal itself.
    """

    masked: bool


def bind(policy: Any, env: Any) -> None:
    """Attach ``env`` to a policy that reads it; a no-op for every other policy."""
    if isinstance(policy, EnvBound):
        policy.bind_env(env)


def summary_of(policy: Any) -> dict[str, Any] | None:
    """The policy's own episode summary, or None when it keeps none."""
    return policy.summary() if isinstance(policy, Summarising) else None


def scores_of(policy: Any, obs: dict[str, np.ndarray]) -> np.ndarray | None:
    """The policy's action scores (A,) as floats, or None when it does not score actions."""
    return np.asarray(policy.scores(obs), dtype=float) if isinstance(policy, Scoring) else None


def preference_order_of(policy: Any) -> np.ndarray | None:
    """The policy's fixed action order, or None when it has none."""
    return np.asarray(policy.preference_order) if isinstance(policy, Ordered) else None
