"""Alias of :mod:`pcnalloc.export.compile` (moved there), so old imports keep working."""

import sys

from pcnalloc.export import compile as _moved

sys.modules[__name__] = _moved
