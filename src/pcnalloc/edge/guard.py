"""Alias of :mod:`pcnalloc.rules.guard` (moved there), so old imports keep working."""

import sys

from pcnalloc.rules import guard as _moved

sys.modules[__name__] = _moved
