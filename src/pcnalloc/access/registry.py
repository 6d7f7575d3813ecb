"""Access policies by name, and by ``KIND@ARG`` for kinds registered from higher layers.

Learned mode policies (``teacher@PATH``, ``student@PATH``, ``learned@FOLDER``) live in
:mod:`pcnalloc.twolayer.learned`, above the distillation stage this layer may not import;
the module registers its kinds here with :func:`register_access_kind` when imported, and
:func:`make_access_policy` imports it by name on first use (the same plugin pattern as the
backbone's policy registry).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from pcnalloc.access.baselines import FireworksPolicy, RaomPolicy
from pcnalloc.access.policies import FixedModePolicy, GreedyPolicy, MatchingPolicy
from pcnalloc.access.policy import AccessPolicy
from pcnalloc.errors import UnknownPolicyError

POLICIES: dict[str, Callable[[], AccessPolicy]] = {
    "matching": MatchingPolicy,
    "raf": FireworksPolicy,
    "raom": RaomPolicy,
    "all-plc": lambda: FixedModePolicy(0),
    "all-5g": lambda: FixedModePolicy(1),
    "greedy": GreedyPolicy,
}

_KINDS: dict[str, Callable[[str], AccessPolicy]] = {}
"""``KIND`` of a ``KIND@ARG`` spec → factory taking the whole spec."""
_PLUGINS: dict[str, str] = {
    "teacher": "pcnalloc.twolayer.learned",
    "student": "pcnalloc.twolayer.learned",
    "learned": "pcnalloc.twolayer.learned",
    "edge": "pcnalloc.twolayer.artifact",  # edge@ARTIFACT::PUBLIC_KEY, ONNX Runtime only
}
"""Kinds whose module registers them on import."""


def register_access_kind(kind: str, factory: Callable[[str], AccessPolicy]) -> None:
    """Make ``KIND@ARG`` specs build through ``factory(spec)``."""
    _KINDS[kind] = factory


def make_access_policy(name: str) -> AccessPolicy:
    """A fresh policy by registry name, or by ``KIND@ARG`` (``teacher@PATH``,
    ``student@PATH``, ``learned@FOLDER``; those need torch; ``edge@ARTIFACT::PUBLIC_KEY``,
    the signed ONNX student, needs onnxruntime only).

    Raises:
        UnknownPolicyError: naming the accepted names.
        AccessConfigError: a learned spec whose checkpoint is missing or foreign.
    """
    kind, at, _ = name.partition("@")
    if at:
        if kind not in _KINDS and kind in _PLUGINS:
            importlib.import_module(_PLUGINS[kind])
        if kind in _KINDS:
            return _KINDS[kind](name)
    if name not in POLICIES:
        raise UnknownPolicyError(name, [*POLICIES, *(f"{k}@PATH" for k in _PLUGINS)])
    return POLICIES[name]()
