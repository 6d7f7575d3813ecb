"""Gymnasium registration of the package's environments, by entry-point string (no imports)."""

from __future__ import annotations

from typing import Any

ENVS: dict[str, str] = {
    "pcnalloc/PowerComm-v0": "pcnalloc.evaluate.episode:make_env",
    "pcnalloc/PowerComm-flat-v0": "pcnalloc.evaluate.episode:make_env",
    "pcnalloc/Access-v0": "pcnalloc.access.env:AccessEnv",
}
"""Environment id → entry point: the PowerComm ids are a ``PowerCommEnv`` wrapped so that the
last step's ``info`` carries the episode's metrics (:mod:`pcnalloc.evaluate.episode`);
``Access-v0`` is the access layer's epoch-level PLC/5G mode decision."""

ENV_KWARGS: dict[str, dict[str, Any]] = {
    "pcnalloc/PowerComm-flat-v0": {"observation": "flat"},
}
"""Default keyword arguments of each id (``gymnasium.make`` keywords override them): the
flat id observes a ``Box`` for MLP policies."""


def register_envs() -> None:
    """Register every id of :data:`ENVS` that Gymnasium does not know yet (idempotent)."""
    from gymnasium.envs.registration import register, registry

    for env_id, entry_point in ENVS.items():
        if env_id not in registry:
            register(id=env_id, entry_point=entry_point, kwargs=dict(ENV_KWARGS.get(env_id, {})))
