"""Alias of :mod:`pcnalloc.rules.fields` (moved there), so old imports keep working."""

import sys

from pcnalloc.rules import fields as _moved

sys.modules[__name__] = _moved
