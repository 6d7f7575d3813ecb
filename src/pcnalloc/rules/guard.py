"""Interception: the rule engine stands between a policy's proposal and the network.

A proposal that breaks a critical/hard rule is replaced by the policy's best allowed action
(highest score after the soft-rule penalties). Critical services (effective priority ≤
``critical_priority``) are admitted before they are rejected: first on an allowed action that
needs no pre-emption, else by a pre-emption request on the best allowed candidate that frees
capacity from lower-priority flows (RSVP-TE setup/hold priorities, fewest and lowest first,
carried out by :meth:`pcnalloc.envs.state.NetworkState.preemption_plan`), and only then
rejected. Soft rules re-rank, never forbid.

Safety floor: when the caller passes the environment's physical mask (what the network can
actually carry), the final choice is always inside it as well as inside the rules' allowed
set — a rule file can never widen what the network allows. A proposal outside the physical
mask is intercepted under the pseudo rule id :data:`PHYSICAL_MASK`.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pcnalloc.core.policy import bind, preference_order_of, scores_of
from pcnalloc.rules.engine import RequestContext, RuleEngine, TableChecker, Verdict
from pcnalloc.rules.program import NOTES, choose

PHYSICAL_MASK = "physical_mask"
"""Rule id reported when a proposal is outside the environment's physical mask."""


@dataclass(frozen=True, slots=True)
class Decision:
    """The guard's verdict on one proposal.

    Attributes:
        action: the action to execute.
        proposal: what the policy proposed.
        intercepted: the proposal broke a critical/hard rule and was replaced.
        preempt: the executed action pre-empts lower-priority flows.
        rule_ids: critical/hard rules the proposal broke (empty if not intercepted).
        reasons: ``(rule_id, reason)`` for the proposal's violations.
        soft_ids: soft rules that fire on the executed action (filled when the guard
            ranks: on interception or with ``rerank_soft``; an allowed proposal skips them).
        priority: effective priority of the request.
        note: how the final action was chosen (``allowed``, ``substituted``,
            ``preemption``, ``rejected-no-admissible``).
    """

    action: int
    proposal: int
    intercepted: bool
    preempt: bool
    rule_ids: tuple[str, ...] = ()
    reasons: tuple[tuple[str, str], ...] = ()
    soft_ids: tuple[str, ...] = ()
    priority: int = 0
    note: str = "allowed"

    def to_record(self) -> dict[str, Any]:
        """Plain-data form for the audit log."""
        return {
            "proposal": self.proposal,
            "action": self.action,
            "intercepted": self.intercepted,
            "preempt": self.preempt,
            "rules": list(self.rule_ids),
            "reasons": [list(r) for r in self.reasons],
            "soft": list(self.soft_ids),
            "priority": self.priority,
            "note": self.note,
        }


@functools.lru_cache(maxsize=4096, typed=True)
def allowed_decision(proposal: int, preempt: bool, priority: int) -> Decision:
    """``Decision(proposal, proposal, False, preempt, priority=priority)``, made once per
    distinct arguments (a decision is immutable; building the frozen dataclass costs more
    than the rest of an allowed proposal's check)."""
    return Decision(proposal, proposal, False, preempt, priority=priority)


_shared_decision = functools.lru_cache(maxsize=4096, typed=True)(Decision)
"""``Decision(*fields)``, one object per distinct fields: an intercepted request's verdict
recurs (same action, rules, reasons and note), and the audit log keeps the encoded text of
a decision per object, so a recurring one is not encoded again."""


class Guard:
    """Check proposals against a :class:`RuleEngine` and substitute when they break a rule.

    Args:
        engine: the compiled rules.
        critical_priority: effective priority ≤ this is a critical service (default: the rule
            set's ``critical_priority`` parameter, packaged value 1).
        soft_weight: scale of the soft penalties subtracted from the policy's scores.
        rerank_soft: also re-rank an allowed proposal by the soft penalties (default: keep it).
        explain: attach human-readable reasons (slower; rule ids are always attached).
    """

    def __init__(
        self,
        engine: RuleEngine,
        *,
        critical_priority: int | None = None,
        soft_weight: float = 1.0,
        rerank_soft: bool = False,
        explain: bool = True,
    ) -> None:
        self.engine = engine
        self.critical_priority = (
            engine.critical_priority if critical_priority is None else critical_priority
        )
        self.soft_weight = soft_weight
        self.rerank_soft = rerank_soft
        self.explain = explain

    def decide(
        self,
        proposal: int,
        scores_A: np.ndarray,
        fields: dict[str, np.ndarray],
        ctx: RequestContext,
        verdict: Verdict | None = None,
        physical_mask_A: np.ndarray | None = None,
    ) -> Decision:
        """Return the action to execute for ``proposal``.

        Args:
            proposal: the policy's action in ``[0, A)``.
            scores_A: float (A,), the policy's preference (higher = better; NaN = unusable).
            fields: the request's per-action fields (``Evaluation.fields``).
            ctx: request context (class, region, emergency).
            verdict: a verdict already computed for these fields (skips the check).
            physical_mask_A: bool (A,), what the network can carry (``Evaluation.mask_A``);
                the executed action is always inside it. None = trust the rules alone.
        """
        v = verdict if verdict is not None else self.engine.check(fields, ctx)
        forb = v.forbidden_A
        outside = None
        if physical_mask_A is not None:
            outside = ~np.asarray(physical_mask_A, dtype=bool)
            outside[-1] = False  # rejecting is always physically possible
            forb = forb | outside
        prio = v.priority
        if not forb[proposal] and not self.rerank_soft:
            return Decision(
                proposal, proposal, False, bool(fields["needs_preemption"][proposal]), priority=prio
            )
        ranked = np.asarray(scores_A, dtype=float) - self.soft_weight * v.soft_penalty_A
        ranked[np.isnan(ranked)] = -np.inf
        pre = fields["needs_preemption"]
        reject = forb.shape[0] - 1
        allowed = ~forb
        if not forb[proposal]:  # rerank_soft: the best allowed by penalised score
            action, note = _best(ranked, allowed), "reranked"
            note = "allowed" if action == proposal else note
        elif prio <= self.critical_priority:
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
        else:  # only a user rule that forbids rejecting unconditionally gets here
            action, note = reject, "rejected-no-admissible"
        intercepted = bool(forb[proposal])
        rule_ids = tuple(v.violated(proposal)) if intercepted else ()
        if intercepted and outside is not None and outside[proposal]:
            rule_ids += (PHYSICAL_MASK,)
        reasons = tuple(v.explain(proposal, soft=False)) if intercepted and self.explain else ()
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

    def decide_tables(
        self,
        proposal: int,
        scores_A: np.ndarray,
        checker: TableChecker,
        ev: Any,
        ctx: RequestContext,
    ) -> Decision:
        """:meth:`decide` for an evaluation's field tables, judged in one compiled call.

        An allowed proposal (inside the rules and the physical mask ``ev.mask_A``) is
        returned at once; otherwise the substitute is chosen in one compiled call
        (:func:`~pcnalloc.rules.program.choose`) from the checker's buffers. The result
        equals ``decide(proposal, scores_A, ev.fields, ctx, physical_mask_A=ev.mask_A)``
        (tested).

        Args:
            checker: a :class:`~pcnalloc.rules.engine.TableChecker` of :attr:`engine`.
            ev: the request's :class:`~pcnalloc.envs.features.Evaluation` (``tables``,
                ``mask_A``, ``needs_preempt_A``, ``fields``).
        """
        prio = checker.check(ev.tables, ev.mask_A, ctx, ev.fields)
        out = checker.out
        if not out.blocked_A.item(proposal) and not self.rerank_soft:
            return allowed_decision(proposal, bool(ev.needs_preempt_A.item(proposal)), prio)
        eng = self.engine
        ranked = np.asarray(scores_A, dtype=float) - self.soft_weight * (
            out.soft_SA.T @ eng._weights_S
        )
        pre = ev.needs_preempt_A
        action, code = choose(ranked, out.blocked_A, pre, proposal, prio <= self.critical_priority)
        reject = out.blocked_A.shape[0] - 1
        intercepted = bool(out.blocked_A[proposal])
        rule_ids: tuple[str, ...] = ()
        reasons: tuple[tuple[str, str], ...] = ()
        if intercepted:
            ids, broken = eng.rule_ids, out.viol_RA[:, proposal].nonzero()[0].tolist()
            rule_ids = tuple([ids[j] for j in broken])
            if proposal != reject and ev.mask_A[proposal] == 0:
                rule_ids += (PHYSICAL_MASK,)
            if self.explain:
                reasons = tuple(checker.explain(ev.fields, ctx, proposal, broken))
        sids = eng.soft_ids
        soft = tuple([sids[j] for j in out.soft_SA[:, action].nonzero()[0].tolist()])
        return _shared_decision(
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


def _best(ranked_A: np.ndarray, ok_A: np.ndarray) -> int:
    """Highest-ranked index among ``ok_A`` (ties → lowest index); ``ok_A`` must have one."""
    a = int(np.argmax(np.where(ok_A, ranked_A, -np.inf)))
    return a if ok_A[a] else int(np.flatnonzero(ok_A)[0])


def preference_scores(policy: Any, obs: dict[str, np.ndarray], n_actions: int) -> np.ndarray:
    """Scores (A,) ranking actions the way ``policy`` prefers them (higher = better).

    A policy with ``scores(obs)`` (Q-values, logits) is asked directly; a first-fit heuristic
    ranks by its fixed order (score = −position); others by the default grant-first order
    (every path at full grant before any degraded grant). Reject always ranks last.
    """
    scores = scores_of(policy, obs)
    if scores is not None:
        return scores
    order = preference_order_of(policy)
    if order is None or len(order) != n_actions - 1:
        L = int(getattr(policy, "grant_levels", 1))
        K = (n_actions - 1) // max(L, 1)
        order = np.arange(K * L).reshape(K, L).T.ravel()
    s = np.empty(n_actions)
    s[np.asarray(order)] = -np.arange(n_actions - 1, dtype=float)
    s[-1] = -float(n_actions)
    return s


@dataclass
class GuardedPolicy:
    """Any :class:`~pcnalloc.baselines.Policy` behind the rule engine (Policy protocol).

    Reads the request's fields from ``env.current_evaluation.fields`` and the request from
    ``env.current_request``; counts interceptions; optionally writes every decision to an
    :class:`~pcnalloc.edge.audit.AuditLog`.

    Args:
        policy: the wrapped policy.
        engine: compiled rules.
        env: the :class:`~pcnalloc.envs.PowerCommEnv` the policy acts in.
        audit: an open audit log, or None.
        model_sha256: hash of the decision model recorded in the audit log.
        guard: a configured :class:`Guard` (default: ``Guard(engine)``).
    """

    policy: Any
    engine: RuleEngine | None = None
    env: Any = None
    audit: Any = None
    model_sha256: str = ""
    guard: Guard | None = None
    stats: Counter = field(default_factory=Counter)
    rule_counts: Counter = field(default_factory=Counter)
    last: Decision | None = None

    def __post_init__(self) -> None:
        if self.engine is not None:
            self.guard = self.guard or Guard(self.engine)
        self.name = f"{self.policy.name}+rules"
        self.observation = self.policy.observation
        self.env_overrides = dict(self.policy.env_overrides)
        self.model_bytes = int(self.policy.model_bytes)

    def bind_env(self, env: Any) -> None:
        """Attach the env the policy acts in (the evaluation runner calls this); without an
        engine of its own the guard uses the env's engine, so both see the same rules."""
        self.env = env
        if self.engine is None:
            self.engine = env.engine
        self.guard = Guard(self.engine) if self.guard is None else self.guard
        bind(self.policy, env)

    def reset(self, seed: int | None = None) -> None:
        self.policy.reset(seed)
        self.stats.clear()
        self.rule_counts.clear()

    def act(self, obs: dict[str, np.ndarray]) -> int:
        if self.env is None or self.engine is None:
            raise RuntimeError("GuardedPolicy needs bind_env(env) before act()")
        proposal = int(self.policy.act(obs))
        ev = self.env.current_evaluation
        ctx = RequestContext.from_env(self.env)
        verdict = self.engine.check(ev.fields, ctx)
        n = verdict.forbidden_A.shape[0]
        scores = preference_scores(self.policy, obs, n) if verdict.forbidden_A[proposal] else None
        assert self.guard is not None
        physical = np.asarray(ev.mask_A, dtype=bool)
        if scores is None and not physical[proposal]:
            scores = preference_scores(self.policy, obs, n)
        d = self.guard.decide(
            proposal,
            scores if scores is not None else np.zeros(n),
            ev.fields,
            ctx,
            verdict,
            physical_mask_A=physical,
        )
        self.stats["decisions"] += 1
        self.stats["intercepted"] += d.intercepted
        self.stats["preempt"] += d.preempt
        # The guard's own claim; evaluation counts executed violations with an independent
        # checker over the network state (pcnalloc.evaluate.checker), not with this mask.
        self.stats["executed_violations"] += bool(verdict.forbidden_A[d.action])
        self.rule_counts.update(d.rule_ids)
        self.last = d
        if self.audit is not None:
            req = self.env.current_request
            self.audit.append_decision(
                request=request_record(req, ctx, self.engine),
                decision=d,
                ruleset_sha256=self.engine.sha256,
                model_sha256=self.model_sha256,
            )
        return d.action

    def summary(self) -> dict[str, Any]:
        """Interception counts for metrics (``intercepted``, ``executed_violations`` …)."""
        n = max(self.stats["decisions"], 1)
        return {
            "decisions": self.stats["decisions"],
            "intercepted": self.stats["intercepted"],
            "interception_rate": self.stats["intercepted"] / n,
            "preempt": self.stats["preempt"],
            "executed_violations": self.stats["executed_violations"],
            "rules": dict(self.rule_counts),
        }


def request_record(req: Any, ctx: RequestContext, engine: RuleEngine) -> dict[str, Any]:
    """Plain-data description of a request for the audit log."""
    return {
        "id": int(req.id),
        "time_s": round(float(req.time_s), 6),
        "cls": engine.catalog.names[ctx.cls],
        "src": int(req.src),
        "dst": int(req.dst),
        "kind": int(req.kind),
        "region": ctx.region,
        "emergency": ctx.emergency,
    }
