"""Folded rule predicates compiled to a flat postfix program and judged in one compiled call.

The engine's dict path (:func:`pcnalloc.rules.predicates.row_fn`) runs a few numpy ufuncs per
rule; at the edge, where the whole decision has tens of microseconds, that Python glue is
most of the rule check. Here a request's plan (its rules folded for one class, emergency
state and region) becomes a postfix program over the field *tables* the candidate kernel
writes (one matrix per dtype: bool, int64, float64, rows named by the caller's field map), and
:func:`run_program` evaluates every critical/hard rule on every action, the reject rules with
``admissible_exists``, the soft rules, and the physical mask in one pass. The results equal the
dict path's (``Verdict.forbidden_A``, ``violations_AR``, ``soft_AS``; tested on live states).

Written here rather than taken from a library: the predicates are the project's own small
language (:mod:`pcnalloc.rules.schema`), and what matters is that one call does everything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from pcnalloc.rules.predicates import PY_OPS, Node

OP_CONST, OP_LEAF, OP_NOT, OP_ALL, OP_ANY = range(5)
CMP_CODES = {"lt": 0, "le": 1, "gt": 2, "ge": 3, "eq": 4, "ne": 5}
ADMISSIBLE = 3
"""Pseudo table of ``admissible_exists`` (only in rules on the reject action)."""


class NotCompilable(Exception):
    """A folded predicate the program cannot express (the dict path is used instead)."""


@dataclass(frozen=True)
class Program:
    """A plan's rules as postfix code.

    Attributes:
        code: int64 (N, 4): (op, table, row, cmp-or-arity) per instruction.
        values: float64 (N,): the constant a leaf compares with (or a CONST's truth).
        rules: int64 (P + Q + S, 4): (section, rule column, start, stop) of each rule;
            section 0 = critical/hard path rule, 1 = rule on the reject action, 2 = soft rule
            (column in the soft ids), in that order.
    """

    code: np.ndarray
    values: np.ndarray
    rules: np.ndarray


def compile_plan(  # noqa: C901 - one branch per predicate kind, a dispatch table in effect
    path_rows: Sequence[tuple[int, Node]],
    reject_rows: Sequence[tuple[int, Node]],
    soft_rows: Sequence[tuple[int, Node]],
    where: Mapping[str, tuple[int, int]],
) -> Program:
    """Compile folded rule nodes into a :class:`Program`.

    Args:
        path_rows, reject_rows, soft_rows: ``(column, folded node)`` per rule.
        where: field name → (table, row) of the tables the program will read; a field not in
            it takes its leaf's default (as in the dict path), or makes the plan
            :class:`NotCompilable`.

    Raises:
        NotCompilable: a leaf compares with something that is not a number or bool, or a
            field without a default is not in ``where``.
    """
    code: list[tuple[int, int, int, int]] = []
    values: list[float] = []

    def emit(op: int, t: int = 0, r: int = 0, c: int = 0, v: float = 0.0) -> None:
        code.append((op, t, r, c))
        values.append(v)

    def leaf(f: str, op: str, v: Any) -> None:
        if isinstance(v, (bool, int, float, np.integer, np.floating)):
            emit(OP_LEAF, *loc(f), CMP_CODES[op], float(v))
        else:
            raise NotCompilable(f"leaf {f} {op} {v!r}")

    def loc(f: str) -> tuple[int, int]:
        if f == "admissible_exists":
            return ADMISSIBLE, 0
        if f not in where:
            raise NotCompilable(f"field {f!r} is not in the tables")
        return where[f]

    def walk(node: Node) -> None:
        kind = node[0]
        if kind == "const":
            emit(OP_CONST, v=1.0 if node[1] else 0.0)
        elif kind == "leaf":
            _, f, op, v, d = node
            if f not in where and f != "admissible_exists":
                if d is None:
                    raise NotCompilable(f"field {f!r} is not in the tables")
                emit(OP_CONST, v=1.0 if PY_OPS[op](d, v) else 0.0)
            elif op == "in":
                vals = list(v)
                for x in vals:
                    leaf(f, "eq", x)
                emit(OP_ANY, c=len(vals))
            else:
                leaf(f, op, v)
        elif kind == "not":
            walk(node[1])
            emit(OP_NOT)
        else:
            for k in node[1]:
                walk(k)
            emit(OP_ALL if kind == "all" else OP_ANY, c=len(node[1]))

    rules = []
    for sec, rows in enumerate((path_rows, reject_rows, soft_rows)):
        for j, node in rows:
            start = len(code)
            walk(node)
            rules.append((sec, j, start, len(code)))
    return Program(
        np.array(code, dtype=np.int64).reshape(-1, 4),
        np.array(values, dtype=np.float64),
        np.array(rules, dtype=np.int64).reshape(-1, 4),
    )


@njit(cache=True, nogil=True)
def _eval(code, values, start, stop, fb, fi, ff, a, admissible, stack):  # pragma: no cover
    sp = 0
    for i in range(start, stop):
        op = code[i, 0]
        if op == OP_CONST:
            stack[sp] = values[i] != 0.0
            sp += 1
        elif op == OP_LEAF:
            t, r, c, v = code[i, 1], code[i, 2], code[i, 3], values[i]
            if t == 0:
                x = 1.0 if fb[r, a] else 0.0
            elif t == 1:
                x = float(fi[r, a])
            elif t == 2:
                x = ff[r, a]
            else:
                x = 1.0 if admissible else 0.0
            if c == 0:
                res = x < v
            elif c == 1:
                res = x <= v
            elif c == 2:
                res = x > v
            elif c == 3:
                res = x >= v
            elif c == 4:
                res = x == v
            else:
                res = x != v
            stack[sp] = res
            sp += 1
        elif op == OP_NOT:
            stack[sp - 1] = not stack[sp - 1]
        else:
            n = code[i, 3]
            if n == 0:
                stack[sp] = op == OP_ALL
                sp += 1
                continue
            acc = stack[sp - n]
            for k in range(sp - n + 1, sp):
                acc = (acc and stack[k]) if op == OP_ALL else (acc or stack[k])
            sp -= n
            stack[sp] = acc
            sp += 1
    return stack[0]


@njit(cache=True, nogil=True)
def _run(code, values, rules, fb, fi, ff, mask_A, out_NA, soft_SA):  # pragma: no cover
    """Rows 0..R-1 of ``out_NA``: rule × action; row R: forbidden; row R + 1: blocked."""
    A = out_NA.shape[1]
    R = out_NA.shape[0] - 2
    stack = np.empty(max(code.shape[0], 1), dtype=np.bool_)
    out_NA[:, :] = False
    soft_SA[:, :] = 0.0
    admissible = False
    done_path = False
    for q in range(rules.shape[0]):
        sec, j, s0, s1 = rules[q, 0], rules[q, 1], rules[q, 2], rules[q, 3]
        if sec != 0 and not done_path:
            done_path = True
            for a in range(A - 1):
                if not out_NA[R, a]:
                    admissible = True
                    break
        if sec == 0:
            for a in range(A - 1):
                if _eval(code, values, s0, s1, fb, fi, ff, a, False, stack):
                    out_NA[j, a] = True
                    out_NA[R, a] = True
        elif sec == 1:
            if _eval(code, values, s0, s1, fb, fi, ff, A - 1, admissible, stack):
                out_NA[j, A - 1] = True
                out_NA[R, A - 1] = True
        else:
            for a in range(A - 1):
                if _eval(code, values, s0, s1, fb, fi, ff, a, False, stack):
                    soft_SA[j, a] = 1.0
    for a in range(A - 1):
        out_NA[R + 1, a] = out_NA[R, a] or mask_A[a] == 0
    out_NA[R + 1, A - 1] = out_NA[R, A - 1]


class ProgramRun:
    """Reusable output buffers of :func:`run_program` for A actions.

    Attributes:
        viol_RA: bool (R, A), critical/hard rule × action (reject column: reject rules).
        forbidden_A: bool (A,), some critical/hard rule forbids the action.
        blocked_A: bool (A,), forbidden or outside the physical mask (reject: rules only).
        soft_SA: float (S, A), 1.0 where a soft rule fires (reject column 0).
    """

    def __init__(self, n_rules: int, n_soft: int, A: int) -> None:
        self.out_NA = np.zeros((n_rules + 2, A), dtype=np.bool_)
        self.viol_RA = self.out_NA[:n_rules]
        self.forbidden_A = self.out_NA[n_rules]
        self.blocked_A = self.out_NA[n_rules + 1]
        self.soft_SA = np.zeros((n_soft, A))


def run_program(
    prog: Program, tables: Sequence[np.ndarray], mask_A: np.ndarray, out: ProgramRun
) -> ProgramRun:
    """Judge every action: fills ``out`` (see :class:`ProgramRun`)."""
    fb, fi, ff = tables
    _run(prog.code, prog.values, prog.rules, fb, fi, ff, mask_A, out.out_NA, out.soft_SA)
    return out


NOTES = ("allowed", "reranked", "substituted", "preemption", "rejected-no-admissible")
"""How :func:`choose` picked the action (index = the code it returns)."""


@njit(cache=True, nogil=True)
def _best(ranked_A, ok_A):  # pragma: no cover - compiled
    """First index of the highest ``ranked_A`` among ``ok_A`` (all −inf: the first ok one),
    as ``argmax(where(ok, ranked, -inf))`` with the guard's fallback; −1 if none is ok."""
    idx = -1
    best = -np.inf
    for a in range(ranked_A.shape[0]):
        if ok_A[a]:
            if idx == -1:
                idx = a
            if ranked_A[a] > best:
                best = ranked_A[a]
                idx = a
    return idx


@njit(cache=True, nogil=True)
def choose(ranked_A, blocked_A, pre_A, proposal, critical):  # pragma: no cover - compiled
    """The guard's substitution rule (:meth:`pcnalloc.rules.guard.Guard.decide`) in one call.

    Args:
        ranked_A: float (A,), scores minus soft penalties (NaN = unusable, ranks last).
        blocked_A: bool (A,), forbidden by a rule or outside the physical mask.
        pre_A: bool (A,), the action needs pre-emption.
        proposal: the policy's action.
        critical: the request is a critical service (admit before rejecting).

    Returns:
        (action, index into :data:`NOTES`).
    """
    A = ranked_A.shape[0]
    reject = A - 1
    r = ranked_A.copy()
    for a in range(A):
        if np.isnan(r[a]):
            r[a] = -np.inf
    allowed = ~blocked_A
    if not blocked_A[proposal]:  # rerank_soft
        action = _best(r, allowed)
        return action, 0 if action == proposal else 1
    if critical:
        plain = allowed & ~pre_A
        plain[reject] = False
        if plain.any():
            return _best(r, plain), 2
        admit_pre = allowed & pre_A
        admit_pre[reject] = False
        if admit_pre.any():
            return _best(r, admit_pre), 3
        return reject, 4
    if allowed.any():
        return _best(r, allowed), 2
    return reject, 4
