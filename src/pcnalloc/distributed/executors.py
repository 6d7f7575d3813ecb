"""Alias of :mod:`pcnalloc.core.executors` (moved there), so old imports keep working."""

import sys

from pcnalloc.core import executors as _moved

sys.modules[__name__] = _moved
