"""Alias of :mod:`pcnalloc.rules.predicates` (moved there), so old imports keep working."""

import sys

from pcnalloc.rules import predicates as _moved

sys.modules[__name__] = _moved
