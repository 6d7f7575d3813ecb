"""Alias of :mod:`pcnalloc.rules.engine` (moved there), so old imports keep working."""

import sys

from pcnalloc.rules import engine as _moved

sys.modules[__name__] = _moved
