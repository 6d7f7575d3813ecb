"""The access layer: PLC/5G dual-mode last mile of distribution-grid devices (DESIGN §11).

Devices with data queues choose PLC or 5G per epoch (I-to-2 bidding matching) and get
subchannels per slot (many-to-many deferred acceptance); the objective is transmission delay
plus α·traffic cost, the long-term queuing delay a Lyapunov virtual queue.
"""

from pcnalloc.access.config import AccessConfig, access_config, load_access_config
from pcnalloc.access.errors import AccessConfigError, UnreachableSinrError
from pcnalloc.access.model import G5, PLC, AccessModel, SlotView
from pcnalloc.access.registry import POLICIES, make_access_policy
from pcnalloc.access.simulate import run_access

__all__ = [
    "G5",
    "PLC",
    "POLICIES",
    "AccessConfig",
    "AccessConfigError",
    "AccessModel",
    "SlotView",
    "UnreachableSinrError",
    "access_config",
    "load_access_config",
    "make_access_policy",
    "run_access",
]
