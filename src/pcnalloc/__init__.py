"""pcnalloc: secure, distributed resource allocation for power communication networks."""

from pcnalloc.errors import PcnallocError

__all__ = ["PcnallocError", "__version__"]
__version__ = "0.1.0"
