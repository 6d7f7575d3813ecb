"""Dynamic class priorities: emergency rules raise or lower classes while a fault is active.

The catalog priority of a class is its RSVP-TE setup and hold priority (0 = highest). While a
grid emergency is active in a request's region, the rule set's ``emergency_priorities``
replace it (e.g. PMU streams and fault records up, office traffic first to be pre-empted);
when the emergency window closes the catalog priority applies again. The mapping is a pure
function of (class, emergency active), so "restore" needs no undo log;
:class:`RegionEmergencies` tracks per-region windows and reports apply/revert transitions
for the audit log.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pcnalloc.errors import PcnallocError, choices


class PriorityRuleError(PcnallocError):
    """An emergency priority rule that names an unknown class or conflicts with another."""


class DynamicPriorities:
    """Base and emergency priority of every class.

    Args:
        catalog: the service catalog (``names``, ``priority_C``).
        rules: :class:`~pcnalloc.rules.schema.PriorityRule` records (disabled ones are skipped).

    Attributes:
        base_C: int (C,), catalog priorities.
        emergency_C: int (C,), priorities while an emergency is active in the region.
        changed_by: class name → id of the rule that changes it.
    """

    def __init__(self, catalog: Any, rules: Iterable[Any] = ()) -> None:
        self.names = list(catalog.names)
        self.base_C = np.asarray(catalog.priority_C, dtype=np.int64).copy()
        self.emergency_C = self.base_C.copy()
        self.changed_by: dict[str, str] = {}
        for r in rules:
            if not r.enabled:
                continue
            for name in r.classes:
                if name not in self.names:
                    raise PriorityRuleError(
                        f"emergency priority {r.id!r}: unknown class {name!r}; "
                        f"accepted: {choices(self.names)}"
                    )
                if name in self.changed_by:
                    raise PriorityRuleError(
                        f"emergency priority {r.id!r}: class {name!r} is already changed by "
                        f"{self.changed_by[name]!r}; one rule per class"
                    )
                self.emergency_C[self.names.index(name)] = r.priority
                self.changed_by[name] = r.id
        self._table = (tuple(int(p) for p in self.base_C), tuple(int(p) for p in self.emergency_C))

    def effective_priority(self, cls: int | str, emergency_active: bool) -> int:
        """Setup/hold priority of ``cls`` (index or name) given the region's emergency state."""
        c = self.names.index(cls) if isinstance(cls, str) else cls
        return self._table[bool(emergency_active)][c]

    def priorities_C(self, emergency_active: bool) -> np.ndarray:
        """The priorities of every class, int (C,) (a copy)."""
        return (self.emergency_C if emergency_active else self.base_C).copy()

    def changes(self) -> list[tuple[str, int, int, str]]:
        """``(class, base, emergency, rule_id)`` for each class an emergency changes."""
        return [
            (n, int(self.base_C[i]), int(self.emergency_C[i]), self.changed_by[n])
            for i, n in enumerate(self.names)
            if n in self.changed_by
        ]


@dataclass(frozen=True, slots=True)
class PriorityTransition:
    """Emergency priorities were applied in (``applied``) or reverted from a region."""

    region: int
    applied: bool
    changes: tuple[tuple[str, int, int, str], ...]


class RegionEmergencies:
    """Per-region emergency state and the priority transitions it causes.

    Feed it the environment's ``emergency_R`` counts (open fault windows per region) after
    each step; it returns the regions whose priorities were applied or reverted.
    """

    def __init__(self, priorities: DynamicPriorities, n_regions: int) -> None:
        self.priorities = priorities
        self.active_R = np.zeros(n_regions, dtype=bool)

    def update(self, emergency_R: np.ndarray) -> list[PriorityTransition]:
        now = np.asarray(emergency_R) > 0
        flipped = np.flatnonzero(now != self.active_R)
        self.active_R = now.copy()
        ch = tuple(self.priorities.changes())
        return [PriorityTransition(int(r), bool(now[r]), ch) for r in flipped]

    def priority(self, cls: int | str, region: int) -> int:
        """Effective priority of ``cls`` for a request from ``region``."""
        return self.priorities.effective_priority(cls, bool(self.active_R[region]))
