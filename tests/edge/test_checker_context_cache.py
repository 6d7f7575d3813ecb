"""TableChecker's per-context cache follows the context; intercepted decisions are shared."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_rule_program import (  # tests/edge is on the path (rootdir mode)
    _assert_same,
    _contexts,
    _engines,
    _random_evaluation,
)

from pcnalloc.envs.layout import FIELD_WHERE
from pcnalloc.rules.engine import TableChecker
from pcnalloc.rules.guard import Guard

A = 13


def test_cached_checks_follow_the_context(catalog: Any, tmp_path: Path) -> None:
    """Every context checked twice (the second time from the cache), interleaved, equals
    the engine's dict path."""
    rng = np.random.default_rng(7)
    for eng in _engines(catalog, tmp_path):
        chk = TableChecker(eng, FIELD_WHERE, A)
        ctxs = _contexts(catalog)
        for rnd in range(2):
            for ctx in ctxs:
                _assert_same(chk, _random_evaluation(rng, A), ctx, f"{ctx} round {rnd}")
        assert len(chk._by_ctx) == len(ctxs)


def test_planted_stale_entry_is_caught(catalog: Any, tmp_path: Path) -> None:
    """Entries holding the first context's program under every context are caught."""
    eng = _engines(catalog, tmp_path)[1]
    chk = TableChecker(eng, FIELD_WHERE, A)
    ctxs = _contexts(catalog)
    chk.check(*_tables(np.random.default_rng(0)), ctxs[0], None)
    _, prio, code = chk._by_ctx[id(ctxs[0])]
    chk._by_ctx.update({id(c): (c, prio, code) for c in ctxs})
    rng = np.random.default_rng(7)
    with pytest.raises(AssertionError):
        for ctx in ctxs:
            for i in range(6):
                _assert_same(chk, _random_evaluation(rng, A), ctx, f"{ctx} #{i}")


def _tables(rng: np.random.Generator) -> tuple[Any, Any]:
    ev = _random_evaluation(rng, A)
    return ev.tables, ev.mask_A


def test_intercepted_decisions_are_shared(catalog: Any, tmp_path: Path) -> None:
    """The same intercepted verdict twice is one Decision object (the audit log reuses its
    encoded text), equal to the dict path's decision."""
    eng = _engines(catalog, tmp_path)[0]
    chk, guard = TableChecker(eng, FIELD_WHERE, A), Guard(eng)
    rng = np.random.default_rng(3)
    hits = 0
    for ctx in _contexts(catalog):
        ev = _random_evaluation(rng, A)
        ev.needs_preempt_A = ev.fields["needs_preemption"]
        scores = rng.normal(size=A)
        chk.check(ev.tables, ev.mask_A, ctx, ev.fields)
        blocked = np.flatnonzero(chk.out.blocked_A[:-1])
        if not blocked.size:
            continue
        p = int(blocked[0])
        d1 = guard.decide_tables(p, scores, chk, ev, ctx)
        d2 = guard.decide_tables(p, scores, chk, ev, ctx)
        assert d1.intercepted and d1 is d2
        assert d1 == guard.decide(p, scores, ev.fields, ctx, physical_mask_A=ev.mask_A)
        hits += 1
    assert hits > 0
