"""Alias of :mod:`pcnalloc.rules.schema` (moved there), so old imports keep working."""

import sys

from pcnalloc.rules import schema as _moved

sys.modules[__name__] = _moved
