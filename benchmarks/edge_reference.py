"""The edge decision path as it was before the compiled one (kept to benchmark against).

:class:`ReferenceEdgeAgent` is ``EdgeAgent.decide`` of commit a2696d6, unchanged in what it
computes and how: the env's ``evaluate_request`` (14 fresh arrays and a 41-argument kernel
call), the compact vector assembled from ``ObservationBuilder.request_feats``,
``History.stats`` and ``ObservationBuilder.network_stats``, per-action fields as a lazy
mapping built per decision, the rule engine's dict path and the guard's decision as it was
(:func:`reference_guard_decide`), and the same audit append. ``bench_edge.py`` times it next
to the current agent on the same live states, so before and after come from one run.

:class:`PreviousEdgeAgent` with :class:`GenericAuditLog` is the audited decision just before
the fixed-layout audit encoder (commit 0c7876e), timed as ``previous``.
:class:`RoundStartEdgeAgent` is the audited decision as of commit ec78127, timed as
``round_start`` (and ``round_start_compiled_mlp``).
Never imported by the package.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

from pcnalloc.config import EnvConfig
from pcnalloc.edge.agent import BoundModel, EdgeAgent, LocalState
from pcnalloc.edge.artifact import load_artifact
from pcnalloc.edge.audit import AuditLog
from pcnalloc.envs.features import (
    HARD_RULES,
    Evaluation,
    _edge_features,
    evaluate_request,
    priority_table,
)
from pcnalloc.envs.observation import LIM, ObservationBuilder
from pcnalloc.network.paths import shared_path_cache
from pcnalloc.rules.engine import RequestContext, RuleEngine, build_engine
from pcnalloc.rules.guard import PHYSICAL_MASK, Decision, Guard, _best, allowed_decision
from pcnalloc.rules.program import NOTES, choose, run_program
from pcnalloc.traffic.catalog import load_catalog
from pcnalloc.traffic.generator import KINDS

STAGES = ("features", "model", "rules", "audit")


def _request_static(cat: Any, r: int) -> np.ndarray:
    C = cat.n_classes
    out = np.zeros((C, r), dtype=np.float32)
    out[np.arange(C), np.arange(C)] = 1.0
    out[:, C] = np.log10(cat.bandwidth_kbps_C / 1000.0) / 2.0
    out[:, C + 1] = np.log10(cat.max_latency_ms_C) / 3.0
    out[:, C + 2] = cat.priority_C / 7.0
    out[:, C + 3] = cat.value_C / 10.0
    out[np.arange(C), C + 4 + cat.zone_C] = 1.0
    out[:, C + 8] = cat.protected_C
    return out


@njit(cache=False, nogil=True)
def _util_stats(used_ES: np.ndarray, cap_ES: np.ndarray, out: np.ndarray) -> None:
    E = used_ES.shape[0] - 1
    S = used_ES.shape[1]
    for s in range(S):
        tot = 0.0
        mx = 0.0
        for e in range(E):
            u = used_ES[e, s] / cap_ES[e, s]
            tot += u
            mx = max(mx, u)
        out[s] = tot / E
        out[S + s] = mx


def reference_guard_decide(
    guard: Guard,
    proposal: int,
    scores_A: np.ndarray,
    fields: Any,
    ctx: RequestContext,
    physical_mask_A: np.ndarray,
) -> Decision:
    """``Guard.decide`` as it was (verdict from the engine's dict path)."""
    v = guard.engine.check(fields, ctx)
    forb = v.forbidden_A
    outside = ~np.asarray(physical_mask_A, dtype=bool)
    outside[-1] = False
    forb = forb | outside
    prio = v.priority
    if not forb[proposal] and not guard.rerank_soft:
        return Decision(
            proposal, proposal, False, bool(fields["needs_preemption"][proposal]), priority=prio
        )
    ranked = np.asarray(scores_A, dtype=float) - guard.soft_weight * v.soft_penalty_A
    ranked[np.isnan(ranked)] = -np.inf
    pre = fields["needs_preemption"]
    reject = forb.shape[0] - 1
    allowed = ~forb
    if not forb[proposal]:
        action, note = _best(ranked, allowed), "reranked"
        note = "allowed" if action == proposal else note
    elif prio <= guard.critical_priority:
        plain = allowed.copy()
        plain[reject] = False
        plain &= ~pre
        admit_pre = allowed & pre
        admit_pre[reject] = False
        if plain.any():
            action, note = _best(ranked, plain), "substituted"
        elif admit_pre.any():
            action, note = _best(ranked, admit_pre), "preemption"
        else:
            action, note = reject, "rejected-no-admissible"
    elif allowed.any():
        action, note = _best(ranked, allowed), "substituted"
    else:
        action, note = reject, "rejected-no-admissible"
    intercepted = bool(forb[proposal])
    rule_ids = tuple(v.violated(proposal)) if intercepted else ()
    if intercepted and outside[proposal]:
        rule_ids += (PHYSICAL_MASK,)
    reasons = tuple(v.explain(proposal, soft=False)) if intercepted and guard.explain else ()
    soft = tuple(v.soft_ids[j] for j in np.flatnonzero(v.soft_AS[action]))
    return Decision(
        action,
        proposal,
        intercepted,
        bool(pre[action]) and action != reject,
        rule_ids,
        reasons,
        soft,
        prio,
        note,
    )


class ReferenceEdgeAgent:
    """The pre-change ``EdgeAgent`` (features → model → rules → audit), for benchmarks only."""

    def __init__(
        self,
        artifact_dir: str | Path,
        public_key: Any,
        env_config: EnvConfig,
        *,
        network: Any,
        rules: RuleEngine | None = None,
        audit: Any = None,
        max_records: int = 1 << 16,
    ) -> None:
        self.artifact = load_artifact(artifact_dir, public_key)
        self.cfg = env_config
        self.catalog = load_catalog(env_config.traffic.catalog, max_levels=env_config.grant_levels)
        self.model = BoundModel(self.artifact, "fp32")
        self.model_sha256 = self.artifact.sha256("fp32")
        self.guard = Guard(rules) if rules is not None else None
        self.engine = rules
        self.audit = audit
        self._mask_engine = build_engine(
            env_config.rules, self.catalog, trust_threshold=env_config.trust_threshold
        )
        self._prio_table = priority_table(self._mask_engine, env_config)
        self._ctx = RequestContext(0)
        self._r = self.catalog.n_classes + 4 + 4 + 2 + len(KINDS) + 3 + 2
        self._req_static = _request_static(self.catalog, self._r)
        self._n_cached = int(env_config.network.path_cache or env_config.k_paths)
        self._x = self.model.x_1D[0]
        self._paths = shared_path_cache(network, self._n_cached)
        self.timings_ns = np.zeros((max_records, len(STAGES)), dtype=np.int64)
        self.n_decisions = 0

    def _request_feats(self, req: Any, st: Any, emergency_R: np.ndarray) -> np.ndarray:
        out = self._req_static[req.cls].copy()
        i = self.catalog.n_classes + 9
        out[i] = np.log10(max(req.holding_s, 1.0)) / 5.0
        i += 1
        out[i + req.kind] = 1.0
        i += len(KINDS)
        cc = st.net.control_centers
        out[i] = emergency_R[st.net.site_region[req.src]] > 0
        out[i + 1] = req.src in cc
        out[i + 2] = req.dst in cc
        h = 2 * np.pi * ((req.time_s / 3600.0) % 24.0) / 24.0
        out[i + 3] = np.sin(h)
        out[i + 4] = np.cos(h)
        return out

    @staticmethod
    def _network_stats(st: Any, emergency_R: np.ndarray) -> np.ndarray:
        out = np.empty(8)
        _util_stats(st.used_ES1, st.cap_ES1, out)
        out[6] = st.n_failed / st.net.n_links
        out[7] = emergency_R.any()
        return out.astype(np.float32)

    def features(self, local: LocalState) -> Evaluation:
        req, st = local.request, local.state
        cs = self._paths.candidates(
            req.src,
            req.dst,
            self.cfg.k_paths,
            protected=bool(self.catalog.protected_C[req.cls]),
            failed_E1=st.failed_E1,
            failed_key=st.failed_key,
        )
        ev, _, region, emergency = evaluate_request(
            st,
            cs,
            req,
            self.catalog,
            self.cfg,
            engine=self._mask_engine,
            prio_table_2C=self._prio_table,
            emergency_R=local.emergency_R,
        )
        self._ctx = RequestContext(int(req.cls), region, emergency)
        x, r = self._x, self._r
        feats = ev.feats_AF.reshape(-1)
        c = r + feats.shape[0]
        x[:r] = self._request_feats(req, st, local.emergency_R)
        x[r:c] = feats
        hs = local.history.stats()
        h = c + hs.shape[0]
        x[c:h] = hs
        x[h:] = self._network_stats(st, local.emergency_R)
        np.clip(x, -LIM, LIM, out=x)
        return ev

    def decide(self, local: LocalState) -> Decision:
        t0 = time.perf_counter_ns()
        ev = self.features(local)
        t1 = time.perf_counter_ns()
        logits = self.model.run()
        proposal = int(logits.argmax())
        t2 = time.perf_counter_ns()
        req, ctx = local.request, self._ctx
        if self.guard is not None:
            d = reference_guard_decide(self.guard, proposal, logits, ev.fields, ctx, ev.mask_A)
        else:
            d = self._mask_check(proposal, logits, ev, ctx)
        t3 = time.perf_counter_ns()
        if self.audit is not None:
            self.audit.append_decision(
                request=self._request_record(req, ctx),
                decision=d,
                ruleset_sha256=self.engine.sha256 if self.engine is not None else "",
                model_sha256=self.model_sha256,
            )
        t4 = time.perf_counter_ns()
        row = self.timings_ns[self.n_decisions % self.timings_ns.shape[0]]
        row[0], row[1], row[2], row[3] = t1 - t0, t2 - t1, t3 - t2, t4 - t3
        self.n_decisions += 1
        return d

    def _mask_check(
        self, proposal: int, logits_A: np.ndarray, ev: Evaluation, ctx: RequestContext
    ) -> Decision:
        prio = int(self._prio_table[int(ctx.emergency), ctx.cls])
        mask = ev.mask_A
        if mask[proposal]:
            return Decision(
                proposal, proposal, False, bool(ev.needs_preempt_A[proposal]), priority=prio
            )
        action = int(np.argmax(np.where(mask > 0, logits_A, -np.inf)))
        broken = tuple(HARD_RULES[i] for i in np.flatnonzero(ev.hard_AR[proposal]))
        return Decision(
            action,
            proposal,
            True,
            bool(ev.needs_preempt_A[action]),
            rule_ids=broken,
            priority=prio,
            note="substituted",
        )

    def _request_record(self, req: Any, ctx: RequestContext) -> dict[str, Any]:
        return {
            "id": int(req.id),
            "time_s": round(float(req.time_s), 6),
            "cls": self.catalog.names[ctx.cls],
            "src": int(req.src),
            "dst": int(req.dst),
            "kind": int(req.kind),
            "region": ctx.region,
            "emergency": ctx.emergency,
        }

    def latency_us(self) -> dict[str, np.ndarray]:
        n = min(self.n_decisions, self.timings_ns.shape[0])
        t = self.timings_ns[:n] / 1e3
        out = {s: t[:, i] for i, s in enumerate(STAGES)}
        out["total"] = t.sum(axis=1)
        return out


# ---------------------------------------------------------------------------- previous
# The audited decision as it was before the fixed-layout audit encoder (commit 0c7876e):
# generic JSON dumping of every record with its Merkle leaf hashed on the spot, a fresh
# RequestContext and Decision per decision, the ONNX Runtime session's Python wrapper, the
# guard's flatnonzero id lookups. ``bench_edge.py`` times it as ``previous`` next to ``after``.


class GenericAuditLog(AuditLog):
    """:class:`AuditLog` writing decisions through the generic path (``canonical`` of the
    record dict, leaf hashed at once), as ``append_decision`` did before (same bytes)."""

    def append_decision(
        self,
        *,
        request: dict[str, Any],
        decision: Any,
        ruleset_sha256: str,
        model_sha256: str = "",
        preempted: list[int] | None = None,
    ) -> str:
        body = {
            "request": request,
            **decision.to_record(),
            "ruleset": ruleset_sha256,
            "model": model_sha256,
        }
        if preempted is not None:
            body["preempted"] = list(preempted)
        return self.append("decision", body)

    def _emit(self, content: bytes, type_: str, ts: float) -> str:
        h = super()._emit(content, type_, ts)
        self._add_leaves()
        return h


def previous_decide_tables(
    guard: Guard,
    proposal: int,
    scores_A: np.ndarray,
    checker: Any,
    ev: Any,
    ctx: RequestContext,
) -> Decision:
    """``Guard.decide_tables`` as of commit 0c7876e."""
    prio = checker.check(ev.tables, ev.mask_A, ctx, ev.fields)
    out = checker.out
    if not out.blocked_A[proposal] and not guard.rerank_soft:
        return Decision(
            proposal, proposal, False, bool(ev.needs_preempt_A[proposal]), priority=prio
        )
    eng = guard.engine
    ranked = np.asarray(scores_A, dtype=float) - guard.soft_weight * (
        out.soft_SA.T @ eng._weights_S
    )
    pre = ev.needs_preempt_A
    action, code = choose(ranked, out.blocked_A, pre, proposal, prio <= guard.critical_priority)
    reject = out.blocked_A.shape[0] - 1
    intercepted = bool(out.blocked_A[proposal])
    rule_ids: tuple[str, ...] = ()
    reasons: tuple[tuple[str, str], ...] = ()
    if intercepted:
        rule_ids = tuple(eng.rule_ids[j] for j in np.flatnonzero(out.viol_RA[:, proposal]))
        if proposal != reject and ev.mask_A[proposal] == 0:
            rule_ids += (PHYSICAL_MASK,)
        if guard.explain:
            reasons = tuple(
                checker.verdict(ev.fields, ctx, copy=False).explain(proposal, soft=False)
            )
    soft = tuple(eng.soft_ids[j] for j in np.flatnonzero(out.soft_SA[:, action]))
    return Decision(
        int(action),
        proposal,
        intercepted,
        bool(pre[action]) and action != reject,
        rule_ids,
        reasons,
        soft,
        prio,
        NOTES[code],
    )


class PreviousEdgeAgent(EdgeAgent):
    """``EdgeAgent`` with ``features``/``decide`` as of commit 0c7876e (same results)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.runtime == "onnxruntime":
            m = self.model

            def run_wrapped() -> np.ndarray:
                m.session.run_with_iobinding(m._binding)
                return m.logits_1A[0]

            self._run_model = run_wrapped

    def features(self, local: LocalState) -> Evaluation:
        req, st, em = local.request, local.state, local.emergency_R
        cls = int(req.cls)
        b = self._builder
        if b is None or b.state is not st:
            b = self._builder = ObservationBuilder(st, self.catalog, self.cfg, "compact")
        region = int(b._region[req.src])
        emergency = bool(em[region] > 0)
        prio = self._prio_rows[emergency][cls]
        evr = self._evaluator
        ev = evr.evaluation
        ev.bound_ms = evr._bound_C[cls]
        h = local.history
        t = 2 * np.pi * ((req.time_s / 3600.0) % 24.0) / 24.0
        _edge_features(
            *evr.args(st, self._candidates(local), cls, prio),
            self._x,
            b._req_static,
            b.compact_positions,
            int(req.kind),
            np.log10(max(req.holding_s, 1.0)) / 5.0,
            em,
            region,
            req.src in b._cc,
            req.dst in b._cc,
            np.sin(t),
            np.cos(t),
            h._stats,
            h.n,
            st.n_failed,
            st.net.n_links,
            LIM,
        )
        ctx = self._ctx = RequestContext(cls, region, emergency)
        if self._mask_checker is not None:
            self._mask_checker.check(ev.tables, ev.mask_A, ctx, ev.fields)
            out = self._mask_checker.out
            ev.mask_A &= ~out.forbidden_A
            ev.mask_A[-1] = 1
            ev.feats_AF[:, self._valid_col] = ev.mask_A
            ev.rule_violations_AR = out.viol_RA.T.copy()  # type: ignore[attr-defined]
        return ev

    def decide(self, local: LocalState) -> Decision:
        t0 = time.perf_counter_ns()
        ev = self.features(local)
        t1 = time.perf_counter_ns()
        logits = self._run_model()
        proposal = int(logits.argmax())
        t2 = time.perf_counter_ns()
        req, ctx = local.request, self._ctx
        if self.guard is not None:
            d = previous_decide_tables(self.guard, proposal, logits, self._checker, ev, ctx)
        else:
            d = self._previous_mask_check(proposal, logits, ev, ctx)
        t3 = time.perf_counter_ns()
        if self.audit is not None:
            self.audit.append_decision(
                request=self._request_record(req, ctx),
                decision=d,
                ruleset_sha256=self.engine.sha256 if self.engine is not None else "",
                model_sha256=self.model_sha256,
            )
        t4 = time.perf_counter_ns()
        row = self.timings_ns[self.n_decisions % self.timings_ns.shape[0]]
        row[0], row[1], row[2], row[3] = t1 - t0, t2 - t1, t3 - t2, t4 - t3
        self.n_decisions += 1
        self.last_evaluation = ev
        return d

    def _previous_mask_check(
        self, proposal: int, logits_A: np.ndarray, ev: Evaluation, ctx: RequestContext
    ) -> Decision:
        prio = self._prio_rows[ctx.emergency][ctx.cls]
        mask = ev.mask_A
        if mask[proposal] or not self.mask_invalid:
            pre = bool(ev.needs_preempt_A[proposal])
            return Decision(proposal, proposal, False, pre, priority=prio)
        action = int(np.argmax(np.where(mask > 0, logits_A, -np.inf)))
        broken = tuple(HARD_RULES[i] for i in np.flatnonzero(ev.hard_AR[proposal]))
        return Decision(
            action,
            proposal,
            True,
            bool(ev.needs_preempt_A[action]),
            rule_ids=broken,
            priority=prio,
            note="substituted",
        )


# ---------------------------------------------------------------------------- round start
# The audited decision as of commit ec78127 (before the request-fields audit append, the
# checker's per-context cache and the shared intercepted decisions): ``bench_edge.py`` times
# it as ``round_start`` next to ``after`` on the same states, so that round's before and
# after come from one run.


def round_start_check(checker: Any, tables: Any, mask_A: np.ndarray, ctx: Any, fields: Any) -> int:
    """``TableChecker.check`` as of commit ec78127 (plan lookup, ``run_program``)."""
    plan, prog = checker._program(ctx)
    out = checker.out
    if prog is not None:
        run_program(prog, tables, mask_A, out)
        return plan.priority
    return checker.check(tables, mask_A, ctx, fields)


def round_start_decide_tables(
    guard: Guard, proposal: int, scores_A: np.ndarray, checker: Any, ev: Any, ctx: Any
) -> Decision:
    """``Guard.decide_tables`` as of commit ec78127 (a fresh Decision per interception)."""
    prio = round_start_check(checker, ev.tables, ev.mask_A, ctx, ev.fields)
    out = checker.out
    if not out.blocked_A.item(proposal) and not guard.rerank_soft:
        return allowed_decision(proposal, bool(ev.needs_preempt_A.item(proposal)), prio)
    eng = guard.engine
    ranked = np.asarray(scores_A, dtype=float) - guard.soft_weight * (
        out.soft_SA.T @ eng._weights_S
    )
    pre = ev.needs_preempt_A
    action, code = choose(ranked, out.blocked_A, pre, proposal, prio <= guard.critical_priority)
    reject = out.blocked_A.shape[0] - 1
    intercepted = bool(out.blocked_A[proposal])
    rule_ids: tuple[str, ...] = ()
    reasons: tuple[tuple[str, str], ...] = ()
    if intercepted:
        ids, broken = eng.rule_ids, out.viol_RA[:, proposal].nonzero()[0].tolist()
        rule_ids = tuple([ids[j] for j in broken])
        if proposal != reject and ev.mask_A[proposal] == 0:
            rule_ids += (PHYSICAL_MASK,)
        if guard.explain:
            reasons = tuple(checker.explain(ev.fields, ctx, proposal, broken))
    sids = eng.soft_ids
    soft = tuple([sids[j] for j in out.soft_SA[:, action].nonzero()[0].tolist()])
    return Decision(
        int(action),
        proposal,
        intercepted,
        bool(pre[action]) and action != reject,
        rule_ids,
        reasons,
        soft,
        prio,
        NOTES[code],
    )


class RoundStartEdgeAgent(EdgeAgent):
    """``EdgeAgent.decide`` as of commit ec78127 (same results, same audit bytes)."""

    def decide(self, local: LocalState) -> Decision:
        clock = time.perf_counter_ns
        t0 = clock()
        ev = self.features(local)
        t1 = clock()
        logits = self._run_model()
        proposal = int(logits.argmax())
        t2 = clock()
        ctx = self._ctx
        guard = self.guard
        if guard is not None:
            d = round_start_decide_tables(guard, proposal, logits, self._checker, ev, ctx)
        else:
            d = self._mask_check(proposal, logits, ev, ctx)
        t3 = clock()
        audit = self.audit
        if audit is not None:
            engine = self.engine
            audit.append_decision(
                request=self._request_record(local.request, ctx),
                decision=d,
                ruleset_sha256=engine.sha256 if engine is not None else "",
                model_sha256=self.model_sha256,
            )
        t4 = clock()
        n = self.n_decisions
        i = (n % self.timings_ns.shape[0]) * 4
        tm = self._timings_flat
        tm[i], tm[i + 1], tm[i + 2], tm[i + 3] = t1 - t0, t2 - t1, t3 - t2, t4 - t3
        self.n_decisions = n + 1
        self.last_evaluation = ev
        return d
