"""The Policy protocol every decision maker implements (heuristics, teacher, students, edge)."""

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
