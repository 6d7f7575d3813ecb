"""Gymnasium environment of the power communication network, and its registration."""

from gymnasium.envs.registration import register, registry

from pcnalloc.envs.power_comm import OUTCOMES, PowerCommEnv

ENV_ID = "pcnalloc/PowerComm-v0"

if ENV_ID not in registry:
    register(id=ENV_ID, entry_point="pcnalloc.envs.power_comm:PowerCommEnv")
if "pcnalloc/Access-v0" not in registry:
    register(id="pcnalloc/Access-v0", entry_point="pcnalloc.access.env:AccessEnv")

__all__ = ["ENV_ID", "OUTCOMES", "PowerCommEnv"]
