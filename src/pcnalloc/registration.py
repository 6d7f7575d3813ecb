"""Gymnasium registration of the package's environments, by entry-point string (no imports)."""

from __future__ import annotations

ENVS: dict[str, str] = {
    "pcnalloc/PowerComm-v0": "pcnalloc.envs.power_comm:PowerCommEnv",
}
"""Environment id → ``module:Class`` entry point."""


def register_envs() -> None:
    """Register every id of :data:`ENVS` that Gymnasium does not know yet (idempotent)."""
    from gymnasium.envs.registration import register, registry

    for env_id, entry_point in ENVS.items():
        if env_id not in registry:
            register(id=env_id, entry_point=entry_point)
