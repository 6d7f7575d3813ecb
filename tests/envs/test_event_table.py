"""The simulator's event kinds: an IntEnum, each kind with exactly one handler."""

from __future__ import annotations

from pcnalloc.envs.power_comm import ARRIVAL, REPAIR, Event, PowerCommEnv


def _unhandled(table: dict) -> set[Event]:
    return set(Event) - set(table)


def test_every_event_kind_has_a_handler() -> None:
    assert _unhandled(PowerCommEnv._ON) == set()
    assert all(callable(h) for h in PowerCommEnv._ON.values())
    planted = {k: v for k, v in PowerCommEnv._ON.items() if k != Event.BURST}
    assert _unhandled(planted) == {Event.BURST}


def test_kinds_keep_their_numbers() -> None:
    """The module aliases are the enum members; the numbering is the one first used."""
    assert [int(e) for e in Event] == list(range(8))
    assert ARRIVAL is Event.ARRIVAL and REPAIR == 6
    assert PowerCommEnv._ON[int(Event.DEPART)] is PowerCommEnv._ON[Event.DEPART]  # int keys too
