"""pcnalloc: secure, distributed resource allocation for power communication networks.

Importing the package is cheap (no torch, no pandapower): it registers the Gymnasium ids by
entry-point string, so ``import pcnalloc; gymnasium.make("pcnalloc/PowerComm-v0")`` works and
the environment module is only imported when an environment is made.
"""

from importlib.metadata import PackageNotFoundError, version

from pcnalloc.errors import PcnallocError
from pcnalloc.registration import register_envs

try:
    __version__ = version("pcnalloc")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

register_envs()

__all__ = ["PcnallocError", "__version__"]
