"""Gymnasium environment of the power communication network, and its registration."""

from gymnasium.envs.registration import register, registry

from pcnalloc.envs.power_comm import OUTCOMES, PowerCommEnv
from pcnalloc.registration import register_envs

ENV_ID = "pcnalloc/PowerComm-v0"
FLAT_ENV_ID = "pcnalloc/PowerComm-flat-v0"

register_envs()
if "pcnalloc/Access-v0" not in registry:
    register(id="pcnalloc/Access-v0", entry_point="pcnalloc.access.env:AccessEnv")

__all__ = ["ENV_ID", "FLAT_ENV_ID", "OUTCOMES", "PowerCommEnv"]
