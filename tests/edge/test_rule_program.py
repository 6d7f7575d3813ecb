"""The compiled rule program judges exactly as the engine's dict path, and the guard agrees.

Compared on live states of a stressed case30 episode and on random field tables, for every
class × emergency state and a user rule file that uses every predicate form (``in``,
``not``, ``all``/``any``, ``slice`` with its default, ``admissible_exists`` on the reject
action). Planted fault: a program with one comparison flipped is caught.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pcnalloc.envs import PowerCommEnv
from pcnalloc.envs.features import ActionFields, Evaluation, field_tables
from pcnalloc.envs.layout import FIELD_COLUMNS, FIELD_WHERE, FIELDS
from pcnalloc.rules.engine import RequestContext, RuleEngine, TableChecker, build_engine
from pcnalloc.rules.guard import Guard
from pcnalloc.rules.program import CMP_CODES, OP_LEAF, Program

USER_RULES = """
version: 1
rules:
  - id: u_hops_in
    severity: hard
    violates: {field: hops, op: in, value: [5, 7, 9]}
  - id: u_combo
    severity: hard
    violates:
      any:
        - all:
            - {field: util_after, op: gt, value: 0.7}
            - {not: {field: has_backup, op: eq, value: true}}
        - {field: min_trust, op: lt, value: 0.3}
        - {field: slice, op: eq, value: mgmt}
  - id: u_reject_if_admissible
    severity: hard
    applies_to: reject
    scope: {classes: [scada]}
    violates: {field: admissible_exists, op: eq, value: true}
  - id: u_soft_long
    severity: soft
    weight: 0.3
    violates:
      any: [{field: latency_over_bound, op: ge, value: 0.5}, {field: hops, op: ge, value: 4}]
"""


def _engines(catalog: Any, tmp_path: Path) -> list[RuleEngine]:
    p = tmp_path / "user.yaml"
    p.write_text(USER_RULES)
    return [build_engine(None, catalog), build_engine(p, catalog)]


def _contexts(catalog: Any) -> list[RequestContext]:
    return [
        RequestContext(c, r, em)
        for c in range(catalog.n_classes)
        for em in (False, True)
        for r in (-1, 0)
    ]


def _assert_same(chk: TableChecker, ev: Any, ctx: RequestContext, where: str) -> None:
    v = chk.engine.check(ev.fields, ctx)
    chk.check(ev.tables, ev.mask_A, ctx, ev.fields)
    out = chk.out
    np.testing.assert_array_equal(out.forbidden_A, v.forbidden_A, err_msg=where)
    np.testing.assert_array_equal(out.viol_RA.T, v.violations_AR, err_msg=where)
    np.testing.assert_array_equal(out.soft_SA.T, v.soft_AS, err_msg=where)
    outside = ev.mask_A == 0
    outside[-1] = False
    np.testing.assert_array_equal(out.blocked_A, v.forbidden_A | outside, err_msg=where)
    w = chk.verdict(ev.fields, ctx)
    np.testing.assert_array_equal(w.soft_penalty_A, v.soft_penalty_A, err_msg=where)
    assert w.priority == v.priority


def _random_evaluation(rng: np.random.Generator, A: int) -> Evaluation:
    """An evaluation whose field tables hold random values of the right dtype."""
    tables = field_tables(A)
    for name, dtype in FIELD_COLUMNS:
        t, row = FIELD_WHERE[name]
        if dtype == "bool":
            tables[t][row] = rng.random(A) < 0.5
        elif dtype == "int64":
            tables[t][row] = rng.integers(0, 10, A)
        else:
            tables[t][row] = rng.choice([0.0, 0.25, 0.3, 0.5, 0.7, 0.8, 1.0, 1.2], A)
    tables[0][FIELD_WHERE["is_reject"][1]] = np.arange(A) == A - 1
    ev = object.__new__(Evaluation)
    ev.tables = tables
    ev.mask_A = (rng.random(A) < 0.8).astype(np.int8)
    ev.__dict__["fields"] = ActionFields(ev)
    return ev


def test_program_equals_dict_path_on_random_tables(catalog: Any, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    A = 13
    for eng in _engines(catalog, tmp_path):
        chk = TableChecker(eng, FIELD_WHERE, A)
        for ctx in _contexts(catalog):
            for i in range(6):
                _assert_same(chk, _random_evaluation(rng, A), ctx, f"{ctx} #{i}")
        assert chk._progs and all(p is not None for _, p in chk._progs.values())


def test_program_equals_dict_path_on_live_states(
    make_config: Any, case_network: Any, catalog: Any, tmp_path: Path
) -> None:
    env = PowerCommEnv(make_config("case30", events="stress"), network=case_network("case30"))
    checkers = [
        TableChecker(e, FIELD_WHERE, env.cfg.n_actions) for e in _engines(env.catalog, tmp_path)
    ]
    guards = [Guard(c.engine) for c in checkers]
    obs, _ = env.reset(seed=4)
    rng = np.random.default_rng(1)
    for step in range(150):
        ev, ctx = env.current_evaluation, RequestContext.from_env(env)
        assert set(ev.fields) == set(FIELDS)
        for chk, guard in zip(checkers, guards, strict=True):
            _assert_same(chk, ev, ctx, f"step {step}")
            scores = rng.normal(size=env.cfg.n_actions)
            for proposal in (int(scores.argmax()), int(rng.integers(env.cfg.n_actions))):
                want = guard.decide(proposal, scores, ev.fields, ctx, physical_mask_A=ev.mask_A)
                assert guard.decide_tables(proposal, scores, chk, ev, ctx) == want
        obs, *_ = env.step(int(np.flatnonzero(obs["action_mask"])[0]))


def test_planted_flipped_comparison_is_caught(catalog: Any, tmp_path: Path) -> None:
    eng = _engines(catalog, tmp_path)[1]
    chk = TableChecker(eng, FIELD_WHERE, 13)
    ctx = RequestContext(0)
    plan, prog = chk._program(ctx)
    assert prog is not None
    code = prog.code.copy()
    i = int(np.flatnonzero((code[:, 0] == OP_LEAF) & (code[:, 1] == 2))[0])  # a float leaf
    negation = {"lt": "ge", "le": "gt", "gt": "le", "ge": "lt", "eq": "ne", "ne": "eq"}
    name = next(k for k, c in CMP_CODES.items() if c == code[i, 3])
    code[i, 3] = CMP_CODES[negation[name]]
    chk._progs[(0, False, -1)] = (plan, Program(code, prog.values, prog.rules))
    rng = np.random.default_rng(2)
    with pytest.raises(AssertionError):
        for i in range(50):
            _assert_same(chk, _random_evaluation(rng, 13), ctx, f"#{i}")
