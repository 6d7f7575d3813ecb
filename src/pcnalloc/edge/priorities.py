"""Alias of :mod:`pcnalloc.rules.priorities` (moved there), so old imports keep working."""

import sys

from pcnalloc.rules import priorities as _moved

sys.modules[__name__] = _moved
