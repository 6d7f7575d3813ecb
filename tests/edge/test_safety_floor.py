"""Safety floor: user rule files only tighten; the guard stays inside the physical mask."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pcnalloc.rules.engine import RequestContext, RuleEngine
from pcnalloc.rules.guard import PHYSICAL_MASK, Guard
from pcnalloc.rules.schema import FLOOR_PARAMS, RuleError, RuleSet

A = 13
FLOOR = sorted(RuleSet.packaged().floor)


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "user.yaml"
    p.write_text(text)
    return p


def test_floor_is_every_packaged_critical_and_hard_rule() -> None:
    rs = RuleSet.packaged()
    assert set(rs.floor) == {r.id for r in rs.rules if r.severity in ("critical", "hard")}
    assert {"capacity", "latency_bound", "slice_isolation", "trust_zone_1_2"} <= rs.floor
    assert {"protection_1plus1", "min_grant", "no_reject_critical"} <= rs.floor
    assert set(FLOOR_PARAMS) <= set(rs.params)


@pytest.mark.parametrize("rule_id", FLOOR)
def test_disabling_a_floor_rule_is_refused(tmp_path: Path, rule_id: str) -> None:
    base = RuleSet.packaged().rule(rule_id)
    p = _write(
        tmp_path,
        "rules:\n"
        f"  - id: {rule_id}\n    severity: {base.severity}\n    enabled: false\n"
        f"    applies_to: {base.applies_to}\n    violates: {{field: hops, op: gt, value: 1}}\n",
    )
    with pytest.raises(RuleError, match=f"rule '{rule_id}' belongs to the packaged safety floor"):
        RuleSet.load(p)


def test_replacing_a_floor_predicate_or_scope_or_severity_is_refused(tmp_path: Path) -> None:
    cases = {
        "violates": "  - {id: latency_bound, severity: hard,"
        " violates: {field: latency_ms, op: gt, value: 1000000}}\n",
        "scope": "  - {id: trust_zone_1_2, severity: critical, scope: {zones: [I]},"
        " violates: {field: min_trust, op: lt, value: {param: trust_threshold}}}\n",
        "severity": "  - {id: capacity, severity: soft,"
        " violates: {field: fits_with_preemption, op: eq, value: false}}\n",
    }
    for what, rule in cases.items():
        p = _write(tmp_path, "rules:\n" + rule)
        with pytest.raises(RuleError, match=f"changed: .*{what}"):
            RuleSet.load(p)


def test_restating_or_upgrading_a_floor_rule_is_accepted(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        "rules:\n  - {id: capacity, severity: critical, description: stricter,"
        " violates: {field: fits_with_preemption, op: eq, value: false}}\n",
    )
    assert RuleSet.load(p).rule("capacity").severity == "critical"


@pytest.mark.parametrize(
    ("param", "value"),
    [("trust_threshold", 0.1), ("critical_latency_margin", 1.5), ("critical_priority", 0)],
)
def test_loosening_a_floor_parameter_is_refused(tmp_path: Path, param: str, value: float) -> None:
    p = _write(tmp_path, f"params: {{{param}: {value}}}\n")
    with pytest.raises(RuleError, match=f"parameter '{param}'.*loosens the safety floor"):
        RuleSet.load(p)


def test_tightening_parameters_is_accepted(tmp_path: Path) -> None:
    p = _write(tmp_path, "params: {trust_threshold: 0.8, critical_latency_margin: 0.9}\n")
    rs = RuleSet.load(p)
    assert rs.params["trust_threshold"] == 0.8 and rs.params["critical_latency_margin"] == 0.9


def test_non_finite_parameter_is_refused(tmp_path: Path) -> None:
    p = _write(tmp_path, "params: {util_knee: .nan}\n")
    with pytest.raises(RuleError, match="'util_knee' must be a finite number"):
        RuleSet.load(p)


def test_extends_none_keeps_the_floor(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        "extends: none\nrules:\n  - {id: mine, severity: hard,"
        " violates: {field: hops, op: gt, value: 6}}\n",
    )
    rs = RuleSet.load(p)
    ids = {r.id for r in rs.rules}
    assert set(FLOOR) <= ids and "mine" in ids
    assert not any(r.severity == "soft" for r in rs.rules) and rs.emergency_priorities == ()


def test_guard_stays_inside_the_physical_mask(catalog, make_fields) -> None:
    engine = RuleEngine(RuleSet.packaged(), catalog)
    f = make_fields()
    ctx = RequestContext(catalog.index("office"))
    physical = np.ones(A, bool)
    physical[[0, 3]] = False  # e.g. a link went down after the fields were computed
    scores = -np.arange(A, dtype=float)
    guard = Guard(engine)
    # the rules allow action 0, the network does not: intercepted, next best allowed is 1
    assert not engine.check(f, ctx).forbidden_A[0]
    d = guard.decide(0, scores, f, ctx, physical_mask_A=physical)
    assert d.intercepted and PHYSICAL_MASK in d.rule_ids and physical[d.action]
    # without the mask the same guard would execute the physically impossible action
    assert guard.decide(0, scores, f, ctx).action == 0
    # a substitution never lands outside the physical mask either
    for prop in range(A):
        assert physical[guard.decide(prop, scores, f, ctx, physical_mask_A=physical).action]
