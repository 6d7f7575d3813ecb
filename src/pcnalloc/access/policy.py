"""The access-layer policy protocol, the two helpers every policy shares, and the registry."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from pcnalloc.access.model import AccessModel, SlotView


@runtime_checkable
class AccessPolicy(Protocol):
    """Decides modes once per epoch and subchannels once per slot.

    Attributes:
        name: registry name used in reports (``matching``, ``raf`` …).
    """

    name: str

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode; seeds any internal randomness."""

    def modes(self, model: AccessModel) -> np.ndarray | None:
        """Modes of the next epoch, ``(I,)`` of 0 (PLC) / 1 (5G); None picks per slot."""
        ...

    def allocate(self, view: SlotView) -> np.ndarray:
        """``holder[j]``: device on subchannel j, −1 idle, ``(J,)``."""
        ...


def cap_modes(want: np.ndarray, score: np.ndarray, capacity: tuple[int, int]) -> np.ndarray:
    """Keep each device's wanted mode while places last (highest ``score`` first); the
    rest take the other mode (C3, C4)."""
    caps = [int(capacity[0]), int(capacity[1])]
    out = np.empty_like(want)
    for i in np.argsort(-score, kind="stable"):
        m = int(want[i]) if caps[int(want[i])] > 0 else 1 - int(want[i])
        out[i] = m
        caps[m] -= 1
    return out


def need_demand(view: SlotView) -> np.ndarray:
    """Subchannels each device wants this slot: q_m, or 0 with an empty queue."""
    return np.where(view.backlog + view.arrival > 0, view.quota, 0)
