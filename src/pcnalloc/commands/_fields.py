"""Option defaults and help texts read from a stage's config fields (each written once there).

A list field is given on the command line as comma-separated text; these helpers write a
field's default in that form, which the verb's own parser reads back to the same values.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import groupby

from pydantic import BaseModel


def field_help(model: type[BaseModel], name: str, how: str | None = None) -> str:
    """The field's description, then ``how`` it is written on the command line if given."""
    text = str(model.model_fields[name].description)
    return f"{text}; {how}" if how else text


def list_text(values: Iterable[object]) -> str:
    """``("ksp-ff", "llp")`` → ``"ksp-ff,llp"``; numbers as ``%g`` (``1.0`` → ``"1"``)."""
    return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def seeds_text(seeds: Iterable[int]) -> str:
    """Seeds in the form ``parse_seeds`` reads, runs as ranges: ``(0, 1, 2, 9)`` → ``"0-2,9"``."""
    parts = []
    for _, group in groupby(enumerate(seeds), key=lambda t: t[1] - t[0]):  # a run: same offset
        run = [s for _, s in group]
        parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(parts)
