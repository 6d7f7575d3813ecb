"""Typed exceptions whose messages name the bad value and what is accepted."""

from __future__ import annotations

from collections.abc import Iterable


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
