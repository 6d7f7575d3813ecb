"""The ``--set KEY.PATH=VALUE`` option every verb with ``--config`` takes (one definition).

The checking lives in :mod:`pcnalloc.core.overrides`, imported by the verbs when they run, so
the CLI's start-up does not load pydantic.
"""

from __future__ import annotations

from typing import Annotated

import typer

SET_HELP = (
    "override one config field, KEY.PATH=VALUE (VALUE is YAML; repeatable; applied after "
    "the file and the other flags, before validation)"
)

SetOption = Annotated[
    list[str] | None, typer.Option("--set", help=SET_HELP, metavar="KEY.PATH=VALUE")
]
"""Repeatable dotted overrides (``--set traffic.events.faults_per_hour=0``)."""
