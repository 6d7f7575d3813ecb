"""Shared check of the ``*_config_once`` tests: a verb's options are its config's fields.

An option matches its field when the verb's own parser reads the option's default back to
the field's default and its help text starts with the field's description.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer
from pydantic import BaseModel

from pcnalloc.cli import app

Spec = dict[str, tuple[type[BaseModel], str, Callable[[Any], Any] | None]]
"""Option name → (config class, field name, parser of the option's text or None)."""


def split(text: str) -> tuple[str, ...]:
    """Comma-separated names, as the verbs read them."""
    return tuple(p.strip() for p in text.split(",") if p.strip())


def command(*path: str) -> Any:
    """The click command of ``pcnalloc PATH…``."""
    cmd: Any = typer.main.get_command(app)
    for name in path:
        cmd = cmd.commands[name]
    return cmd


def mismatches(cmd: Any, spec: Spec) -> list[str]:
    """Options of ``spec`` whose default or help is not their field's, or that are missing."""
    params = {p.name: p for p in cmd.params}
    bad = []
    for name, (model, field, parse) in spec.items():
        p = params.get(name)
        f = model.model_fields[field]
        if p is None:
            bad.append(name)
            continue
        value = parse(p.default) if parse else p.default
        if value != f.get_default(call_default_factory=True) or not str(p.help).startswith(
            str(f.description)
        ):
            bad.append(name)
    return sorted(bad)


def planted(cmd: Any, name: str, default: Any) -> Any:
    """A context that plants a second ``default`` on option ``name`` and restores it."""
    import contextlib

    @contextlib.contextmanager
    def _plant() -> Any:
        p = next(p for p in cmd.params if p.name == name)
        old, p.default = p.default, default
        try:
            yield
        finally:
            p.default = old

    return _plant()
