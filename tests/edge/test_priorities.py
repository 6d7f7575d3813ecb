"""Emergency priorities apply while a region's fault window is open and revert after."""

from __future__ import annotations

import numpy as np
import pytest

from pcnalloc.rules.engine import RequestContext
from pcnalloc.rules.priorities import DynamicPriorities, PriorityRuleError, RegionEmergencies
from pcnalloc.rules.schema import PriorityRule, RuleSet


def test_apply_and_revert(engine, catalog) -> None:
    pr = engine.priorities
    base = catalog.priority_C.copy()
    assert pr.effective_priority("pmu_wams", False) == 1
    assert pr.effective_priority("pmu_wams", True) == 0
    assert pr.effective_priority("metering", True) == 1
    assert pr.effective_priority("office", True) == 7
    assert pr.effective_priority("scada", True) == 1  # unchanged class
    assert np.array_equal(pr.priorities_C(False), base)
    assert {c for c, *_ in pr.changes()} == {"pmu_wams", "metering", "office", "video_surveillance"}
    reg = RegionEmergencies(pr, n_regions=3)
    t = reg.update(np.array([0, 2, 0]))
    assert [(x.region, x.applied) for x in t] == [(1, True)]
    assert reg.priority("pmu_wams", 1) == 0 and reg.priority("pmu_wams", 0) == 1
    assert reg.update(np.array([0, 1, 0])) == []  # still active (one window left)
    t = reg.update(np.array([0, 0, 0]))
    assert [(x.region, x.applied) for x in t] == [(1, False)]
    assert reg.priority("pmu_wams", 1) == 1  # reverted
    assert np.array_equal(catalog.priority_C, base), "the catalog itself is never mutated"


def test_engine_scopes_follow_effective_priority(engine, catalog, make_fields) -> None:
    f = make_fields()
    pmu = catalog.index("pmu_wams")
    calm = engine.check(f, RequestContext(pmu, 0, False))
    storm = engine.check(f, RequestContext(pmu, 0, True))
    assert calm.priority == 1 and storm.priority == 0
    reject = len(f["grant"]) - 1
    # PMU is critical (priority ≤ 1) either way: it may not be rejected while admissible
    assert calm.violated(reject) == storm.violated(reject) == ["no_reject_critical"]
    # metering becomes critical only in an emergency (fault records, priority 3 → 1)
    met = catalog.index("metering")
    assert not engine.check(f, RequestContext(met, 0, False)).forbidden_A[-1]
    assert engine.check(f, RequestContext(met, 0, True)).violated(reject) == ["no_reject_critical"]


def test_bad_priority_rules(catalog) -> None:
    with pytest.raises(PriorityRuleError, match="unknown class 'nope'"):
        DynamicPriorities(catalog, [PriorityRule("x", "", ("nope",), 0)])
    with pytest.raises(PriorityRuleError, match="already changed"):
        DynamicPriorities(
            catalog, [PriorityRule("a", "", ("office",), 7), PriorityRule("b", "", ("office",), 5)]
        )


def test_user_file_can_switch_an_emergency_rule_off(tmp_path, catalog) -> None:
    p = tmp_path / "p.yaml"
    p.write_text(
        "emergency_priorities:\n  - {id: emergency_pmu_up, classes: [pmu_wams],"
        " priority: 0, enabled: false}\n"
    )
    pr = DynamicPriorities(catalog, RuleSet.load(p).emergency_priorities)
    assert pr.effective_priority("pmu_wams", True) == 1
    assert pr.effective_priority("office", True) == 7
