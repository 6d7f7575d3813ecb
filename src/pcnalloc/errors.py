"""Typed exceptions whose messages name the bad value and what is accepted."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class PcnallocError(Exception):
    """Base class of every error pcnalloc raises on bad input; the CLI prints it in one line."""


def _choices(accepted: Iterable[object], limit: int = 12) -> str:
    items = [str(a) for a in accepted]
    head = ", ".join(items[:limit])
    return head + (f", … ({len(items)} in all)" if len(items) > limit else "")


class UnknownCaseError(PcnallocError):
    """A grid case name or file that cannot be loaded."""

    def __init__(self, name: str, accepted: Iterable[str]) -> None:
        super().__init__(
            f"unknown grid case {name!r}; accepted: {_choices(accepted)}, "
            "a MATPOWER .m file, a pandapower .json file or a pcnalloc graph .json file"
        )
        self.name = name


class ConfigError(PcnallocError):
    """A configuration value or file that fails validation."""


class OutputPathError(ConfigError):
    """An output path that cannot be used as asked: it exists (and ``--overwrite`` was not
    given), it is a folder where a file is expected or the reverse, or a parent is a file."""


class CatalogError(ConfigError):
    """A malformed service catalog."""


class NetworkError(PcnallocError):
    """A grid that cannot be turned into a usable communication network."""


class ActionError(PcnallocError):
    """An action outside the environment's action space."""

    def __init__(self, action: object, n_actions: int) -> None:
        super().__init__(
            f"action {action!r} is out of range; accepted: integers 0..{n_actions - 1}"
        )
        self.action = action


class UnknownPolicyError(PcnallocError):
    """A policy name that is not registered."""

    def __init__(self, name: str, accepted: Iterable[str]) -> None:
        super().__init__(f"unknown policy {name!r}; accepted: {_choices(accepted)}")
        self.name = name


def choices(accepted: Iterable[object]) -> str:
    """Format a list of accepted values for an error message."""
    return _choices(accepted)


EXTRA_OF_MODULE: dict[str, str] = {
    "torch": "full",
    "torch_geometric": "full",
    "pandapower": "full",
    "pandas": "full",
    "pettingzoo": "full",
    "matplotlib": "full",
    "pyarrow": "full",
    "onnx": "full",
    "matpowercaseframes": "full",
    "fastapi": "edge",
    "starlette": "edge",
    "uvicorn": "edge",
    "prometheus_client": "edge",
    "fastapi_offline": "edge",
    "ray": "distributed",
    "simbench": "data",
    "stable_baselines3": "sb3",
    "sb3_contrib": "sb3",
    "tensorboard": "tensorboard",
}
"""Top-level module → the ``pcnalloc[EXTRA]`` that installs it (pyproject's extras)."""


class MissingExtraError(ConfigError):
    """An optional dependency group that is not installed: one line naming the extra."""

    def __init__(self, extra: str, what: str, module: str | None = None) -> None:
        needs = f"{module!r}, an optional dependency" if module else "the optional dependencies"
        super().__init__(f"{what} needs {needs}: install pcnalloc[{extra}]")
        self.extra = extra
        self.module = module


def missing_extra(err: BaseException, what: str) -> MissingExtraError | None:
    """The :class:`MissingExtraError` for an import of an optional package that failed, or
    None when ``err`` is not such an import (another module, or not an import error)."""
    name = getattr(err, "name", None) if isinstance(err, ImportError) else None
    top = str(name or "").split(".")[0]
    extra = EXTRA_OF_MODULE.get(top)
    return None if extra is None else MissingExtraError(extra, what, top)


def require(module: str, what: str) -> Any:
    """Import an optional ``module`` (dotted), or raise the one-line :class:`MissingExtraError`
    naming the extra that installs it (from :data:`EXTRA_OF_MODULE`)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        found = missing_extra(err, what)
        if found is None:
            raise
        raise found from None
