"""Pre-emption frees enough capacity, only from strictly lower priorities, lowest first."""

from __future__ import annotations

import numpy as np

from pcnalloc.envs.state import NetworkState

RT = 0


def _admit(st: NetworkState, links, prio: int, kbps: int) -> int:
    return st.admit(
        cls=0,
        slice_=RT,
        priority=prio,
        kbps=kbps,
        links=np.array(links),
        backup_links=np.array([], dtype=np.int64),
        end_s=1e9,
        src=0,
        dst=1,
        value=1.0,
        counted=True,
    ).id


def test_plan_frees_enough_and_only_lower_priorities(tiny_net) -> None:
    st = NetworkState(tiny_net)
    cap = int(st.cap_ES1[[0, 1], RT].min())
    links = np.array([0, 1])
    ids = {
        "p0": _admit(st, [0, 1], 0, cap // 4),
        "p2": _admit(st, [0], 2, cap // 4),
        "p5_big": _admit(st, [0, 1], 5, cap // 4),
        "p6": _admit(st, [1], 6, cap // 8),
        "p6_b": _admit(st, [0, 1], 6, cap // 8),
    }
    need = cap // 2
    plan = st.preemption_plan(links, RT, 1, need)
    assert plan is not None and plan
    by_id = {v: k for k, v in ids.items()}
    assert "p0" not in map(by_id.get, plan)
    for fid in plan:
        assert st.flows[fid].priority > 1
    # lowest priority first
    prios = [st.flows[f].priority for f in plan]
    assert prios == sorted(prios, reverse=True)
    for fid in plan:
        st.release(fid)
    free = st.cap_ES1[links, RT] - st.used_ES1[links, RT]
    assert (free >= need).all()
    st.check_invariants()


def test_equal_or_higher_priority_is_never_preempted(tiny_net) -> None:
    st = NetworkState(tiny_net)
    cap = int(st.cap_ES1[2, RT])
    p1 = _admit(st, [2], 1, cap // 2)
    _admit(st, [2], 0, cap - cap // 2)
    assert st.preemption_plan(np.array([2]), RT, 1, 1) is None  # equal or higher only
    assert st.preemption_plan(np.array([2]), RT, 0, cap // 2) == [p1]
    assert st.preemption_plan(np.array([2]), RT, 0, cap // 2 + 1 + cap % 2) is None
    assert st.preemption_plan(np.array([3]), RT, 1, cap) == []  # fits already
