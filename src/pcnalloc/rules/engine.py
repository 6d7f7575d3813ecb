"""Rule engine: compile a :class:`RuleSet` once into vectorised numpy checks over all actions.

Per request, the rules in scope and every request-level leaf of their predicates are constant,
so the engine folds them once per (class, emergency, region) into a *plan*: a short list of
callables, one per rule, each writing a boolean row over the A = K·L + 1 actions. A check is
then a handful of numpy ufunc calls on (A,) arrays; no Python loop runs over actions.
:class:`TableChecker` judges the same plans in one compiled call over the candidate kernel's
field tables (:mod:`pcnalloc.rules.program`), for the edge's hot path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pcnalloc.errors import choices
from pcnalloc.rules.predicates import PY_OPS, Node, RowFn, eval_at, row_fn, why
from pcnalloc.rules.priorities import DynamicPriorities
from pcnalloc.rules.program import (
    NotCompilable,
    Program,
    ProgramRun,
    _run,
    compile_plan,
)
from pcnalloc.rules.schema import (
    ACTION_FIELDS,
    CLASS,
    REQUEST_FIELDS,
    SLICE,
    SLICE_NAMES,
    ZONE,
    ZONE_NAMES,
    Rule,
    RuleError,
    RuleSet,
)


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What the engine needs to know about the request being decided.

    Attributes:
        cls: class index into the catalog.
        region: region index of the originating site (-1 = unknown: region-scoped rules skip).
        emergency: a grid emergency is active in that region.
    """

    cls: int
    region: int = -1
    emergency: bool = False

    @classmethod
    def from_env(cls, env: Any) -> RequestContext:
        """Read the current request of a :class:`~pcnalloc.envs.PowerCommEnv` (duck-typed)."""
        req = env.current_request
        region = int(env.net.site_region[req.src])
        return cls(int(req.cls), region, bool(env.emergency_R[region] > 0))


@dataclass(frozen=True, slots=True)
class _Plan:
    priority: int
    path_rows: tuple[tuple[int, RowFn], ...]
    reject_rows: tuple[tuple[int, Node], ...]
    soft_rows: tuple[tuple[int, RowFn], ...]
    folded: dict[str, Node]
    path_nodes: tuple[tuple[int, Node], ...] = ()
    soft_nodes: tuple[tuple[int, Node], ...] = ()


class Verdict:
    """The engine's judgement of every action of one request.

    ``forbidden_A`` is computed eagerly (it is the action mask); the per-rule matrix and the
    soft penalties are built on first access, so a plain mask query stays cheap.

    Attributes:
        forbidden_A: bool (A,), the action breaks some critical or hard rule.
        violations_AR: bool (A, R), per action and critical/hard rule (:attr:`rule_ids`).
        soft_AS: float (A, S), 1.0 where a soft rule (:attr:`soft_ids`) fires.
        soft_penalty_A: float (A,), Σ weight over the soft rules that fire.
        rule_ids, soft_ids: column names.
        priority: effective priority of the request (after emergency rules).
    """

    __slots__ = (
        "_ctx",
        "_engine",
        "_fields",
        "_plan",
        "_reject_hits",
        "_s_SA",
        "_v_RA",
        "forbidden_A",
    )

    def __init__(
        self,
        engine: RuleEngine,
        plan: _Plan,
        fields: Mapping[str, np.ndarray],
        ctx: RequestContext,
        reject_hits: list[int],
        forbidden_A: np.ndarray,
    ) -> None:
        self._engine, self._plan, self._fields, self._ctx = engine, plan, fields, ctx
        self._reject_hits = reject_hits
        self._v_RA: np.ndarray | None = None
        self._s_SA: np.ndarray | None = None
        self.forbidden_A = forbidden_A

    @property
    def violations_AR(self) -> np.ndarray:
        if self._v_RA is None:
            v_RA = np.zeros((len(self._engine.rule_ids), self.forbidden_A.shape[0]), dtype=bool)
            for j, fn in self._plan.path_rows:
                fn(self._fields, v_RA[j])
            v_RA[:, -1] = False
            v_RA[self._reject_hits, -1] = True
            self._v_RA = v_RA
        return self._v_RA.T

    @property
    def soft_AS(self) -> np.ndarray:
        if self._s_SA is None:
            A = self.forbidden_A.shape[0]
            s_SA = np.zeros((len(self._engine.soft_ids), A))
            for j, fn in self._plan.soft_rows:
                fn(self._fields, s_SA[j])
            s_SA[:, -1] = 0.0
            self._s_SA = s_SA
        return self._s_SA.T

    @property
    def soft_penalty_A(self) -> np.ndarray:
        return self.soft_AS @ self._engine._weights_S

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return self._engine.rule_ids

    @property
    def soft_ids(self) -> tuple[str, ...]:
        return self._engine.soft_ids

    @property
    def priority(self) -> int:
        return self._plan.priority

    @property
    def mask_A(self) -> np.ndarray:
        """int8 (A,), 1 = allowed (the environment's ``action_mask`` convention)."""
        return (~self.forbidden_A).astype(np.int8)

    def violated(self, action: int) -> list[str]:
        """Ids of the critical/hard rules ``action`` breaks."""
        return [self.rule_ids[j] for j in np.flatnonzero(self.violations_AR[action])]

    def explain(self, action: int, *, soft: bool = True) -> list[tuple[str, str]]:
        """``(rule_id, reason)`` for each rule ``action`` breaks (soft ones too if ``soft``)."""
        eng = self._engine
        ids = [(eng.rule_ids[j], eng._hard[j]) for j in np.flatnonzero(self.violations_AR[action])]
        if soft:
            ids += [(eng.soft_ids[j], eng._soft[j]) for j in np.flatnonzero(self.soft_AS[action])]
        return _reasons(self._plan, self._fields, action, self.forbidden_A, ids)


def _reasons(
    plan: _Plan,
    fields: Mapping[str, np.ndarray],
    action: int,
    forbidden_A: np.ndarray,
    ids: list[tuple[str, Rule]],
) -> list[tuple[str, str]]:
    """``(rule_id, reason)`` for each ``(rule_id, rule)`` of ``ids`` at ``action``."""
    out = []
    for rid, rule in ids:
        detail = why(plan.folded.get(rid), fields, action, forbidden_A)
        out.append(
            (rid, f"[{rule.severity}] {rule.description}" + (f" ({detail})" if detail else ""))
        )
    return out


class RuleEngine:
    """Compiled rule set for one service catalog.

    Args:
        ruleset: validated rules (:meth:`RuleSet.load`).
        catalog: the service catalog (class names, zones, bounds, grant levels).

    Raises:
        RuleError: a rule names an unknown class or parameter.
    """

    def __init__(self, ruleset: RuleSet, catalog: Any) -> None:
        self.ruleset = ruleset
        self.catalog = catalog
        self.params = dict(ruleset.params)
        active = ruleset.active_rules
        self._hard = [r for r in active if r.severity != "soft"]
        self._soft = [r for r in active if r.severity == "soft"]
        self.rule_ids = tuple(r.id for r in self._hard)
        self.soft_ids = tuple(r.id for r in self._soft)
        self.severity_R = tuple(r.severity for r in self._hard)
        self._weights_S = np.array([r.weight for r in self._soft], dtype=float)
        self.priorities = DynamicPriorities(catalog, ruleset.emergency_priorities)
        self.critical_priority = int(self.params.get("critical_priority", 1))
        self._region_dependent = any(_mentions_region(r) for r in active)
        self._plans: dict[tuple[int, bool, int], _Plan] = {}
        # Reused (R, A) buffers: check() is not re-entrant across threads (one engine per
        # decision thread), and verdicts never alias them.
        self._scratch: dict[int, tuple[np.ndarray, list[np.ndarray]]] = {}
        names = set(catalog.names)
        for r in active:
            for c in r.scope.get("classes", ()):
                if c not in names:
                    raise RuleError(
                        f"rule {r.id!r}: scope.classes: unknown class {c!r}; "
                        f"accepted: {choices(catalog.names)}"
                    )
        # Compile every class once up front so a bad reference fails at load, not mid-run.
        for c in range(catalog.n_classes):
            for em in (False, True):
                self._plan(c, em, -1)

    @property
    def sha256(self) -> str:
        return self.ruleset.sha256

    # -------------------------------------------------------------------- checking
    def check(self, fields: Mapping[str, np.ndarray], ctx: RequestContext) -> Verdict:
        """Judge every action of one request.

        Args:
            fields: per-action arrays of shape (A,) named as in
                :data:`pcnalloc.envs.features.FIELDS` (``Evaluation.fields``).
            ctx: the request's class, region and emergency state.
        """
        region = ctx.region if self._region_dependent else -1
        plan = self._plans.get((ctx.cls, ctx.emergency, region))
        if plan is None:
            plan = self._plan(ctx.cls, ctx.emergency, region)
        A = fields["is_reject"].shape[0]
        scratch = self._scratch.get(A)
        if scratch is None:
            buf = np.zeros((len(self._hard), A), dtype=bool)
            scratch = self._scratch[A] = (buf, [buf[j] for j in range(len(self._hard))])
        buf, rows = scratch
        buf.fill(False)
        try:
            for j, fn in plan.path_rows:
                fn(fields, rows[j])
        except KeyError as err:
            raise RuleError(
                f"field {err.args[0]!r} missing from the evaluation; provided: "
                f"{', '.join(sorted(fields))}"
            ) from None
        forbidden = np.logical_or.reduce(buf, axis=0)
        forbidden[-1] = False  # path rules never judge the reject action
        hits: list[int] = []
        if plan.reject_rows:
            admissible = not forbidden[:-1].all()
            for j, node in plan.reject_rows:
                if eval_at(node, fields, A - 1, admissible):
                    hits.append(j)
                    forbidden[-1] = True
        return Verdict(self, plan, fields, ctx, hits, forbidden)

    def effective_priority(self, ctx: RequestContext) -> int:
        return self.priorities.effective_priority(ctx.cls, ctx.emergency)

    # -------------------------------------------------------------------- compiling
    def _plan(self, cls: int, emergency: bool, region: int) -> _Plan:
        cat = self.catalog
        prio = self.priorities.effective_priority(cls, emergency)
        req = {
            "class": cat.names[cls],
            "zone": ZONE_NAMES[int(cat.zone_C[cls])],
            "priority": prio,
            "protected": bool(cat.protected_C[cls]),
            "emergency": bool(emergency),
            "region": region,
        }
        path_rows: list[Any] = []
        reject_rows: list[Any] = []
        soft_rows: list[Any] = []
        path_nodes: list[Any] = []
        soft_nodes: list[Any] = []
        folded: dict[Any, Any] = {}
        for rules, out, nodes in (
            (self._hard, None, path_nodes),
            (self._soft, soft_rows, soft_nodes),
        ):
            for j, r in enumerate(rules):
                if not _in_scope(r, req, region):
                    continue
                node = self._fold(r, r.violates, req, cls)
                folded[r.id] = node
                if node == ("const", False):
                    continue
                if r.applies_to == "reject":
                    if out is None:
                        reject_rows.append((j, node))
                    continue
                (path_rows if out is None else out).append((j, row_fn(node)))
                nodes.append((j, node))
        plan = _Plan(
            prio,
            tuple(path_rows),
            tuple(reject_rows),
            tuple(soft_rows),
            folded,
            tuple(path_nodes),
            tuple(soft_nodes),
        )
        self._plans[(cls, bool(emergency), region)] = plan
        return plan

    def _fold(self, rule: Rule, node: dict, req: dict, cls: int) -> Node:
        if "not" in node:
            sub = self._fold(rule, node["not"], req, cls)
            return ("const", not sub[1]) if sub[0] == "const" else ("not", sub)
        for kind in ("all", "any"):
            if kind in node:
                kids = [self._fold(rule, c, req, cls) for c in node[kind]]
                absorbing = kind == "any"  # any: a True child decides; all: a False one
                if ("const", absorbing) in kids:
                    return ("const", absorbing)
                kids = [k for k in kids if k[0] != "const"]
                if not kids:
                    return ("const", not absorbing)
                return kids[0] if len(kids) == 1 else (kind, tuple(kids))
        f, op = node["field"], node["op"]
        value = self._resolve(rule, node["value"], cls, f)
        if f in REQUEST_FIELDS:
            return ("const", bool(PY_OPS[op](req[f], value)))
        # Fields the evaluation may leave out, with the value that then holds by construction.
        default = int(self.catalog.slice_C[cls]) if f == "slice" else None
        return ("leaf", f, op, value, default)

    def _resolve(self, rule: Rule, v: Any, cls: int, f: str) -> Any:
        cat = self.catalog
        ftype = {**ACTION_FIELDS, **REQUEST_FIELDS}.get(f)
        if isinstance(v, dict):
            if "param" in v:
                if v["param"] not in self.params:
                    raise RuleError(
                        f"rule {rule.id!r}: unknown param {v['param']!r}; "
                        f"accepted: {choices(self.params)}"
                    )
                return float(self.params[v["param"]])
            if "per_class" in v:
                for name in v["per_class"]:
                    if name not in cat.names:
                        raise RuleError(
                            f"rule {rule.id!r}: per_class: unknown class {name!r}; "
                            f"accepted: {choices(cat.names)}"
                        )
                name = cat.names[cls]
                return self._resolve(rule, v["per_class"].get(name, v["default"]), cls, f)
            attr = v["class"]
            levels = cat.grant_CL[cls]
            return {
                "min_grant": lambda: float(levels[levels > 0].min()),
                "max_latency_ms": lambda: float(cat.max_latency_ms_C[cls]),
                "bandwidth_kbps": lambda: float(cat.bandwidth_kbps_C[cls]),
                "priority": lambda: float(self.priorities.base_C[cls]),
                "slice": lambda: int(cat.slice_C[cls]),
                "zone": lambda: ZONE_NAMES[int(cat.zone_C[cls])],
                "protected": lambda: bool(cat.protected_C[cls]),
            }[attr]()
        if isinstance(v, list):
            return tuple(self._resolve(rule, x, cls, f) for x in v)
        if ftype == SLICE and isinstance(v, str):
            return SLICE_NAMES.index(v)
        if ftype == CLASS and v not in cat.names:
            raise RuleError(
                f"rule {rule.id!r}: unknown class {v!r}; accepted: {choices(cat.names)}"
            )
        if ftype == ZONE:
            return v
        return v


class TableChecker:
    """A :class:`RuleEngine`'s check compiled per plan, over field tables, into reused buffers.

    Args:
        engine: the compiled rules.
        where: field name → (table, row) of the tables :meth:`check` receives (the candidate
            kernel's, :data:`pcnalloc.envs.layout.FIELD_WHERE`).
        n_actions: A.

    Attributes:
        out: the buffers of the last check (:class:`~pcnalloc.rules.program.ProgramRun`).

    Not re-entrant (one checker per decision thread), like the engine's own scratch buffers.
    """

    def __init__(
        self, engine: RuleEngine, where: dict[str, tuple[int, int]], n_actions: int
    ) -> None:
        self.engine, self.where = engine, where
        self.out = ProgramRun(len(engine.rule_ids), len(engine.soft_ids), n_actions)
        self._progs: dict[tuple[int, bool, int], tuple[_Plan, Program | None]] = {}
        # Per context object (contexts are immutable and the edge agent shares one per
        # distinct context): the plan's priority and its program's arrays, so a check is one
        # dict lookup and one compiled call. The entry holds the context, so its id is not
        # reused while cached.
        self._by_ctx: dict[int, tuple[RequestContext, int, Any]] = {}

    def _program(self, ctx: RequestContext) -> tuple[_Plan, Program | None]:
        eng = self.engine
        key = (ctx.cls, bool(ctx.emergency), ctx.region if eng._region_dependent else -1)
        got = self._progs.get(key)
        if got is None:
            plan = eng._plans.get(key) or eng._plan(*key)
            try:
                prog: Program | None = compile_plan(
                    plan.path_nodes, plan.reject_rows, plan.soft_nodes, self.where
                )
            except NotCompilable:
                prog = None
            got = self._progs[key] = (plan, prog)
        return got

    def check(
        self, tables: tuple[np.ndarray, ...], mask_A: np.ndarray, ctx: RequestContext, fields: Any
    ) -> int:
        """Judge every action into :attr:`out`; returns the request's effective priority.

        ``out.blocked_A`` also holds the physical mask ``mask_A`` (int8, 1 = carriable; the
        reject action is always carriable). A plan the program cannot express is judged by
        the engine's dict path on ``fields`` (same results).
        """
        got = self._by_ctx.get(id(ctx))
        if got is None or got[0] is not ctx:
            plan, prog = self._program(ctx)
            code = (prog.code, prog.values, prog.rules) if prog is not None else None
            if len(self._by_ctx) >= 4096:
                self._by_ctx.clear()
            got = self._by_ctx[id(ctx)] = (ctx, plan.priority, code)
        code = got[2]
        out = self.out
        if code is not None:
            fb, fi, ff = tables
            _run(code[0], code[1], code[2], fb, fi, ff, mask_A, out.out_NA, out.soft_SA)
            return got[1]
        plan, _ = self._program(ctx)
        v = self.engine.check(fields, ctx)
        out.forbidden_A[:] = v.forbidden_A
        out.viol_RA[:] = v.violations_AR.T
        out.soft_SA[:] = v.soft_AS.T
        np.logical_or(v.forbidden_A, mask_A == 0, out=out.blocked_A)
        out.blocked_A[-1] = v.forbidden_A[-1]
        return plan.priority

    def explain(
        self, fields: Any, ctx: RequestContext, action: int, rules: list[int]
    ) -> list[tuple[str, str]]:
        """``verdict(fields, ctx).explain(action, soft=False)`` for the last check, given the
        indices of the critical/hard rules ``action`` breaks (``out.viol_RA[:, action]``),
        without building the verdict."""
        plan, _ = self._program(ctx)
        eng = self.engine
        ids = [(eng.rule_ids[j], eng._hard[j]) for j in rules]
        return _reasons(plan, fields, action, self.out.forbidden_A, ids)

    def verdict(self, fields: Any, ctx: RequestContext, *, copy: bool = True) -> Verdict:
        """The last check as a :class:`Verdict` (its arrays copied out of the buffers, unless
        ``copy`` is False: then it is valid only until the next check)."""
        plan, _ = self._program(ctx)
        out = self.out
        hits = [int(j) for j in np.flatnonzero(out.viol_RA[:, -1])]
        cp = np.copy if copy else np.asarray
        v = Verdict(self.engine, plan, fields, ctx, hits, cp(out.forbidden_A))
        v._v_RA = cp(out.viol_RA)
        v._s_SA = cp(out.soft_SA)
        return v


def build_engine(rules_path: str | Path | None, catalog: Any, **params: Any) -> RuleEngine:
    """Load the default rules merged with ``rules_path`` and compile them for ``catalog``.

    Args:
        rules_path: a user rule file, or None for the packaged default set.
        catalog: the service catalog the environment uses.
        **params: rule-set parameters to override (e.g. ``trust_threshold=cfg.trust_threshold``).
    """
    rs = RuleSet.load(rules_path)
    if rules_path is None:
        # The packaged rules name the packaged classes; with a replacement catalog only the
        # rules about classes it still has apply. A user rule file is checked strictly.
        rs = rs.for_classes(catalog.names)
    if params:
        rs = rs.with_params(**params)
    return RuleEngine(rs, catalog)


# ---------------------------------------------------------------------------- helpers
def _in_scope(r: Rule, req: dict, region: int) -> bool:
    s = r.scope
    if "classes" in s and req["class"] not in s["classes"]:
        return False
    if "zones" in s and req["zone"] not in s["zones"]:
        return False
    if "regions" in s and region not in s["regions"]:
        return False
    em = s.get("emergency", "any")
    if em != "any" and (em == "active") != req["emergency"]:
        return False
    if "priority_min" in s and req["priority"] < s["priority_min"]:
        return False
    return not ("priority_max" in s and req["priority"] > s["priority_max"])


def _mentions_region(r: Rule) -> bool:
    def walk(n: Any) -> bool:
        if isinstance(n, dict):
            return n.get("field") == "region" or any(walk(x) for x in n.values())
        return isinstance(n, list) and any(walk(x) for x in n)

    return "regions" in r.scope or walk(r.violates)
