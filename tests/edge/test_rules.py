"""Rule files: loading, merging, validation errors, and each default rule on hand-built fields."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pcnalloc.envs.features import FIELDS
from pcnalloc.rules.engine import RequestContext, RuleEngine, build_engine
from pcnalloc.rules.schema import ACTION_FIELDS, RuleError, RuleSet

A = 13


def ctx_for(catalog, name: str, emergency: bool = False, region: int = 0) -> RequestContext:
    return RequestContext(catalog.index(name), region, emergency)


def test_default_set_loads_and_hash_is_stable() -> None:
    a, b = RuleSet.load(), RuleSet.load()
    assert a.sha256 == b.sha256 and len(a.sha256) == 64
    ids = {r.id for r in a.rules}
    assert {
        "slice_isolation",
        "latency_bound",
        "capacity",
        "protection_1plus1",
        "trust_zone_1_2",
        "min_grant",
        "route_present",
        "no_reject_critical",
    } <= ids
    assert a.params["critical_latency_margin"] == 1.0  # default reproduces the env mask


def test_every_env_field_is_known() -> None:
    assert set(FIELDS) <= set(ACTION_FIELDS)


def test_benign_request_allows_full_grants(engine, catalog, make_fields) -> None:
    v = engine.check(make_fields(), ctx_for(catalog, "scada"))
    # slots 0 (1.0) allowed; slot 1 is 0.5 < scada min 1.0; slot 2 has grant 0; a critical
    # class may not be rejected while an action admits it
    assert v.forbidden_A.tolist() == [False, True, True] * 4 + [True]
    assert v.violated(1) == ["min_grant"] and v.violated(2) == ["min_grant"]


@pytest.mark.parametrize(
    ("rule", "cls", "field", "value"),
    [
        ("route_present", "office", "present", False),
        ("capacity", "office", "fits_with_preemption", False),
        ("latency_bound", "office", "latency_ms", 500.5),
        ("latency_margin_critical", "scada", "latency_over_bound", 1.01),
        ("protection_1plus1", "teleprotection", "has_backup", False),
        ("trust_zone_1_2", "metering", "min_trust", 0.4),
        ("slice_isolation", "scada", "slice", 2),
    ],
)
def test_each_default_rule_fires_on_action_zero(
    engine, catalog, make_fields, rule, cls, field, value
) -> None:
    base = make_fields()
    arr = base.get(field, np.full(A, int(catalog.slice_C[catalog.index(cls)])))
    arr = np.array(arr, copy=True)
    arr[0] = value
    v = engine.check({**base, field: arr}, ctx_for(catalog, cls))
    assert v.forbidden_A[0]
    assert rule in v.violated(0)
    assert not v.forbidden_A[3], "only the edited action is affected"
    assert any(rid == rule for rid, _ in v.explain(0))


@pytest.mark.parametrize(
    ("cls", "field", "value"),
    [
        ("office", "has_backup", False),  # not a protected class
        ("office", "min_trust", 0.1),  # Zone IV: the trust rule is scoped to I/II
        ("metering", "latency_over_bound", 0.99),  # within bound
        ("metering", "grant", 0.5),  # metering's minimum level is 0.5
    ],
)
def test_rules_stay_silent_out_of_scope(engine, catalog, make_fields, cls, field, value) -> None:
    f = make_fields()
    arr = f[field].copy()
    arr[0] = value
    v = engine.check({**f, field: arr}, ctx_for(catalog, cls))
    assert not v.forbidden_A[0], v.explain(0)


def test_missing_slice_field_is_structural(engine, catalog, make_fields) -> None:
    f = make_fields()
    assert "slice" not in f
    v = engine.check(f, ctx_for(catalog, "scada"))
    assert "slice_isolation" not in v.violated(0)


def test_reject_rule_priority0(engine, catalog, make_fields) -> None:
    ctx = ctx_for(catalog, "teleprotection")
    v = engine.check(make_fields(), ctx)
    assert v.forbidden_A[-1] and v.violated(A - 1) == ["no_reject_critical"]
    # nothing admissible → rejecting is allowed
    blocked = make_fields(fits_with_preemption=np.append(np.zeros(A - 1, bool), True))
    v = engine.check(blocked, ctx)
    assert v.forbidden_A.tolist() == [True] * (A - 1) + [False]
    # every critical class (priority ≤ 1) is covered, not only priority 0
    assert engine.check(make_fields(), ctx_for(catalog, "scada")).violated(A - 1) == [
        "no_reject_critical"
    ]
    # a non-critical class may be rejected
    assert not engine.check(make_fields(), ctx_for(catalog, "metering")).forbidden_A[-1]


def test_soft_rules_penalise_never_forbid(engine, catalog, make_fields) -> None:
    f = make_fields()
    f["needs_preemption"] = f["needs_preemption"].copy()
    f["needs_preemption"][0] = True
    f["util_after"] = f["util_after"].copy()
    f["util_after"][3] = 0.95
    v = engine.check(f, ctx_for(catalog, "office"))
    assert not v.forbidden_A[0] and not v.forbidden_A[3]
    assert v.soft_penalty_A[0] == pytest.approx(1.0)
    assert v.soft_penalty_A[3] == pytest.approx(0.5)
    assert v.soft_penalty_A[6] == 0.0 and v.soft_penalty_A[-1] == 0.0


def test_user_file_tightens_extends_and_disables_soft(tmp_path: Path, catalog, make_fields) -> None:
    p = tmp_path / "user.yaml"
    p.write_text(
        "params: {critical_latency_margin: 0.9}\n"
        "rules:\n"
        "  - {id: soft_load_balance, severity: soft, enabled: false,"
        "     violates: {field: util_after, op: gt, value: 0.8}}\n"
        "  - id: short_paths\n"
        "    severity: hard\n"
        "    scope: {classes: [office], emergency: active}\n"
        "    violates: {all: [{field: hops, op: gt, value: 3}, {not: {field: present, op: eq,"
        " value: false}}]}\n"
    )
    rs = RuleSet.load(p)
    assert rs.sha256 != RuleSet.load().sha256
    eng = RuleEngine(rs, catalog)
    assert "soft_load_balance" not in eng.rule_ids and "short_paths" in eng.rule_ids
    assert "capacity" in eng.rule_ids
    f = make_fields()
    f["latency_over_bound"] = f["latency_over_bound"].copy()
    f["latency_over_bound"][0] = 0.95
    f["util_after"] = np.full(A, 0.95)
    f["hops"] = f["hops"].copy()
    f["hops"][3] = 5
    v = eng.check(f, ctx_for(catalog, "scada"))
    assert v.violated(0) == ["latency_margin_critical"]  # the 0.9 margin
    assert not v.forbidden_A[3] and v.soft_penalty_A[3] == 0.0  # soft balance rule off
    office = eng.check(f, ctx_for(catalog, "office", emergency=True))
    assert office.violated(3) == ["short_paths"]
    assert not eng.check(f, ctx_for(catalog, "office", emergency=False)).forbidden_A[3]


def test_region_scoped_rule(tmp_path: Path, catalog, make_fields) -> None:
    p = tmp_path / "r.yaml"
    p.write_text(
        "rules:\n  - {id: r1, severity: critical, scope: {regions: [2]},"
        " violates: {field: hops, op: ge, value: 2}}\n"
    )
    eng = RuleEngine(RuleSet.load(p), catalog)
    f = make_fields()
    assert eng.check(f, ctx_for(catalog, "office", region=2)).violated(0) == ["r1"]
    assert not eng.check(f, ctx_for(catalog, "office", region=1)).forbidden_A[0]


BAD_FILES = {
    "bad_yaml": ("rules: [ {id: x", "malformed YAML"),
    "unknown_field": (
        "rules:\n  - {id: r_field, severity: hard, violates: {field: latncy, op: gt, value: 1}}",
        "rule 'r_field'.*unknown field 'latncy'.*latency_ms",
    ),
    "unknown_op": (
        "rules:\n  - {id: r_op, severity: hard, violates: {field: hops, op: gte, value: 1}}",
        "rule 'r_op'.*op 'gte'.*accepted: lt, le, gt, ge, eq, ne, in",
    ),
    "wrong_value_type": (
        "rules:\n  - {id: r_val, severity: hard, violates: {field: has_backup, op: eq, value: 3}}",
        "rule 'r_val'.*expected true or false, got 3",
    ),
    "duplicate_id": (
        "rules:\n  - {id: dup, severity: soft, violates: {field: hops, op: gt, value: 1}}\n"
        "  - {id: dup, severity: soft, violates: {field: hops, op: gt, value: 2}}",
        "rule 'dup': duplicate id",
    ),
    "bad_severity": (
        "rules:\n  - {id: r_sev, severity: fatal, violates: {field: hops, op: gt, value: 1}}",
        "rule 'r_sev'.*severity 'fatal'.*critical, hard, soft",
    ),
    "bool_op_on_bool": (
        "rules:\n  - {id: r_lt, severity: hard, violates: {field: fits, op: lt, value: true}}",
        "rule 'r_lt'.*op 'lt' not valid for bool field 'fits'",
    ),
    "unknown_key": (
        "rules:\n  - {id: r_key, severity: hard, when: 1,"
        " violates: {field: hops, op: gt, value: 1}}",
        "rule 'r_key'.*unknown key 'when'",
    ),
    "bad_zone": (
        "rules:\n  - {id: r_zone, severity: hard, scope: {zones: [V]},"
        " violates: {field: hops, op: gt, value: 1}}",
        "rule 'r_zone'.*unknown value 'V'.*I, II, III, IV",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_malformed_rule_files_raise_rule_error(tmp_path: Path, case: str) -> None:
    text, pattern = BAD_FILES[case]
    p = tmp_path / f"{case}.yaml"
    p.write_text(text)
    with pytest.raises(RuleError, match=pattern):
        RuleSet.load(p)


def test_unknown_class_and_param_fail_at_engine_build(tmp_path: Path, catalog) -> None:
    p = tmp_path / "c.yaml"
    p.write_text(
        "rules:\n  - {id: r_cls, severity: hard, scope: {classes: [telepathy]},"
        " violates: {field: hops, op: gt, value: 1}}\n"
    )
    with pytest.raises(RuleError, match=r"rule 'r_cls'.*unknown class 'telepathy'.*scada"):
        build_engine(p, catalog)
    p.write_text(
        "rules:\n  - {id: r_par, severity: hard,"
        " violates: {field: hops, op: gt, value: {param: nope}}}\n"
    )
    with pytest.raises(RuleError, match=r"rule 'r_par'.*unknown param 'nope'"):
        build_engine(p, catalog)
    with pytest.raises(RuleError, match="unknown rule parameter"):
        build_engine(None, catalog, trust=0.3)


def test_missing_file_and_missing_field(tmp_path: Path, engine, catalog, make_fields) -> None:
    with pytest.raises(RuleError, match="does not exist"):
        RuleSet.load(tmp_path / "nope.yaml")
    f = make_fields()
    del f["min_trust"]
    with pytest.raises(RuleError, match="'min_trust' missing"):
        engine.check(f, ctx_for(catalog, "scada"))
