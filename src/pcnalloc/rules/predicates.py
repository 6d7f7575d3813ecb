"""Folded rule predicates: vectorised row writers over all actions, scalar checks, reasons.

A rule's predicate, folded for one request by :class:`~pcnalloc.rules.engine.RuleEngine`, is a
:data:`Node`: ``("const", b)``, ``("leaf", field, op, value, default)``, ``("not", node)`` or
``("all" | "any", children)``. :func:`row_fn` turns it into a writer of a boolean row over the
A actions (a handful of numpy ufunc calls), :func:`eval_at` checks it at one action and
:func:`why` names the leaves that make it true there.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from pcnalloc.rules.fields import SLICE_NAMES

_NP_OPS = {
    "lt": np.less,
    "le": np.less_equal,
    "gt": np.greater,
    "ge": np.greater_equal,
    "eq": np.equal,
    "ne": np.not_equal,
}
PY_OPS = {
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
    "eq": operator.eq,
    "ne": operator.ne,
    "in": lambda a, b: a in b,
}
"""Scalar comparison per rule op (request-level leaves and single-action checks)."""
_SYM = {"lt": "<", "le": "≤", "gt": ">", "ge": "≥", "eq": "=", "ne": "≠", "in": "∈"}

Node = tuple  # folded predicate: ("const", b) | ("leaf", field, op, value) | (kind, children)
Fields = Mapping[str, np.ndarray]
"""Per-action arrays of shape (A,) by field name (``Evaluation.fields``)."""
RowFn = Callable[[Fields, np.ndarray], object]
"""Fills its row (the verdict per action) in place; what it returns is ignored."""


def _getter(f: str, default: Any) -> Callable[[Fields], Any]:
    if default is None:
        return lambda fs: fs[f]
    return lambda fs: fs[f] if f in fs else default


def _value_at(node: Node, fields: Fields, a: int, admissible: bool) -> Any:
    _, f, _op, _v, d = node
    if f == "admissible_exists":
        return admissible
    if f not in fields and d is not None:
        return d
    return fields[f][a].item()


def _expr(node: Node) -> Callable[[Fields], np.ndarray]:
    kind = node[0]
    if kind == "leaf":
        _, f, op, v, d = node
        get = _getter(f, d)
        if op == "in":
            vals = np.array(v)
            return lambda fs: np.isin(get(fs), vals)
        fn = _NP_OPS[op]
        return lambda fs: fn(get(fs), v)
    if kind == "not":
        sub = _expr(node[1])
        return lambda fs: np.logical_not(sub(fs))
    subs = [_expr(k) for k in node[1]]
    red = np.logical_and if kind == "all" else np.logical_or
    # pairwise, so a child that is a scalar (a field the evaluation omits, at its default)
    # broadcasts; ``red.reduce`` over a list would try to stack it with the arrays
    return lambda fs: functools.reduce(red, [s(fs) for s in subs])


def row_fn(node: Node) -> RowFn:
    """A writer ``fn(fields, row)`` for the top of a folded predicate (one ufunc when a leaf)."""
    kind = node[0]
    if kind == "const":
        return lambda fs, row: row.fill(True)
    if kind == "leaf" and node[4] is not None:
        # The evaluation may omit the field; then its default holds for every action.
        _, f, op, v, d = node
        e = _expr(node)
        if PY_OPS[op](d, v):
            return lambda fs, row: np.copyto(row, e(fs)) if f in fs else row.fill(True)
        return lambda fs, row: np.copyto(row, e(fs)) if f in fs else None
    if kind == "leaf":
        _, f, op, v, _d = node
        if op in ("eq", "ne") and isinstance(v, bool):
            if (op == "eq") == v:
                return lambda fs, row: np.copyto(row, fs[f])
            return lambda fs, row: np.logical_not(fs[f], out=row)
        if op == "in":
            vals = np.array(v)
            return lambda fs, row: np.copyto(row, np.isin(fs[f], vals))
        fn = _NP_OPS[op]
        return lambda fs, row: fn(fs[f], v, out=row)
    if kind in ("all", "any") and len(node[1]) == 2:
        a, b = _expr(node[1][0]), _expr(node[1][1])
        red = np.logical_and if kind == "all" else np.logical_or
        return lambda fs, row: red(a(fs), b(fs), out=row)
    e = _expr(node)
    return lambda fs, row: np.copyto(row, e(fs))


def eval_at(node: Node, fields: Fields, a: int, admissible: bool) -> bool:
    """Whether ``node`` holds at action ``a`` (``admissible``: some path action is allowed)."""
    kind = node[0]
    if kind == "const":
        return bool(node[1])
    if kind == "leaf":
        return bool(PY_OPS[node[2]](_value_at(node, fields, a, admissible), node[3]))
    if kind == "not":
        return not eval_at(node[1], fields, a, admissible)
    vals = (eval_at(k, fields, a, admissible) for k in node[1])
    return all(vals) if kind == "all" else any(vals)


def why(node: Node | None, fields: Fields, a: int, forbidden_A: np.ndarray) -> str:
    """Human-readable leaves that make ``node`` true at action ``a``."""
    if node is None:
        return ""
    admissible = not forbidden_A[:-1].all()
    kind = node[0]
    if kind == "const":
        return "holds for every action of this request"
    if kind == "leaf":
        _, f, op, v, _d = node
        x = _value_at(node, fields, a, admissible)
        xs = f"{x:.4g}" if isinstance(x, float) else str(x)
        vs = f"{v:.4g}" if isinstance(v, float) else str(v)
        if f == "slice":
            xs, vs = SLICE_NAMES[int(x)], SLICE_NAMES[int(v)] if isinstance(v, int) else vs
        return f"{f}={xs} {_SYM[op]} {vs}"
    if kind == "not":
        return f"not ({why(node[1], fields, a, forbidden_A)})"
    hits = [why(k, fields, a, forbidden_A) for k in node[1] if eval_at(k, fields, a, admissible)]
    return " and ".join(hits) if kind == "all" else "; ".join(hits)
