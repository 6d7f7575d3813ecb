"""Edge runtime: a verified student artifact deciding requests from local state (no torch).

:class:`EdgeAgent` is what an edge controller runs. Per request it

1. **features** — evaluates the K·L + 1 actions on the live :class:`NetworkState` with the
   environment's own kernel (at the request's effective setup priority, with a user rule
   file's mask restriction — exactly as ``PowerCommEnv._evaluate_current`` does) into
   buffers allocated once: the kernel writes the candidate table straight into the model's
   pre-bound input buffer (a view of its candidate block, offsets from
   :mod:`pcnalloc.envs.layout`) and the per-action field tables the rules read; one more
   compiled call (:meth:`pcnalloc.envs.observation.ObservationBuilder.write_compact`, the
   env's own) writes the request, history and network blocks and clips;
2. **model** — one ONNX Runtime call on that buffer (one intra-op thread, sequential
   execution, input and output bound once with ``io_binding``); proposal = argmax logit;
3. **rule check** — with a rule engine, the :class:`~pcnalloc.edge.guard.Guard` judges every
   action in one compiled call over the field tables
   (:class:`~pcnalloc.rules.engine.TableChecker`) and intercepts a proposal that breaks a
   critical/hard rule (best allowed action by logit, pre-emption for critical services);
   without one, a masked proposal is replaced by the best action the environment's hard
   rules allow (``mask_invalid``);
4. **audit** — with an :class:`~pcnalloc.edge.audit.AuditLog`, appends the decision.

The whole call is timed (ns per stage, :attr:`EdgeAgent.timings_ns`). The agent decides; the
caller executes (in simulation: ``env.step(decision.action)``). Reusing the env's kernels
keeps the agent's compact vector bit-identical to ``obs["compact"]`` (tested). The network
can come from the artifact itself (``network.npz``, signed), so the agent's process needs no
grid-modelling package (pandapower) and no torch.

:class:`EdgePolicy` is the same artifact behind the :class:`~pcnalloc.baselines.Policy`
protocol (it reads ``obs["compact"]``), registered as ``edge`` for evaluation runs.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pcnalloc.baselines.registry import register_policy
from pcnalloc.config import EnvConfig
from pcnalloc.edge.artifact import (
    OUTPUT_NAME,
    ArtifactError,
    LoadedArtifact,
    check_feature_config,
    load_artifact,
)
from pcnalloc.envs.candidates import CandidatePool
from pcnalloc.envs.features import (
    HARD_RULES,
    Evaluation,
    Evaluator,
    _edge_features,
    priority_table,
)
from pcnalloc.envs.layout import CANDIDATE_FEATURES, FIELD_WHERE
from pcnalloc.envs.observation import LIM, History, ObservationBuilder, layout_for
from pcnalloc.envs.state import NetworkState
from pcnalloc.errors import ConfigError
from pcnalloc.network.model import CommNetwork
from pcnalloc.network.paths import CandidateSet, PathCache, shared_path_cache
from pcnalloc.rules.engine import RequestContext, RuleEngine, TableChecker, build_engine
from pcnalloc.rules.guard import Decision, Guard, allowed_decision
from pcnalloc.traffic.catalog import Catalog, load_catalog
from pcnalloc.traffic.generator import Request

log = logging.getLogger(__name__)

STAGES = ("features", "model", "rules", "audit")
"""Columns of :attr:`EdgeAgent.timings_ns`."""
RUNTIMES = ("onnxruntime", "compiled")
"""Model runtimes of :class:`EdgeAgent` (its ``runtime`` argument)."""


def make_session(model: bytes, *, threads: int = 1) -> ort.InferenceSession:
    """An ONNX Runtime CPU session: ``threads`` intra-op threads, sequential, full graph opt."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(model, sess_options=so, providers=["CPUExecutionProvider"])


class BoundModel:
    """Batch-1 inference on buffers bound once: write :attr:`x_1D`, call :meth:`run`.

    Args:
        artifact: a verified artifact.
        precision: ``fp32`` or ``int8``.

    Attributes:
        x_1D: float32 (1, D), the input buffer the session reads.
        logits_1A: float32 (1, A), the output buffer the session writes.
    """

    def __init__(self, artifact: LoadedArtifact, precision: str = "fp32") -> None:
        self.session = make_session(artifact.model(precision))
        name, D, A = artifact.input_name, artifact.input_dim, artifact.n_actions
        ins, outs = self.session.get_inputs(), self.session.get_outputs()
        if len(ins) != 1 or ins[0].name != name or ins[0].shape[-1] != D:
            got = [(i.name, i.shape) for i in ins]
            raise ArtifactError(
                f"model input {got} does not match the manifest's input {name!r} of dim {D}"
            )
        if len(outs) != 1 or outs[0].name != OUTPUT_NAME or outs[0].shape[-1] != A:
            got = [(o.name, o.shape) for o in outs]
            raise ArtifactError(
                f"model output {got} does not match the manifest's {OUTPUT_NAME!r} of dim {A}"
            )
        self.x_1D = np.zeros((1, D), dtype=np.float32)
        self.logits_1A = np.zeros((1, A), dtype=np.float32)
        self._x_val = ort.OrtValue.ortvalue_from_numpy(self.x_1D)  # shares x_1D's memory
        self._y_val = ort.OrtValue.ortvalue_from_numpy(self.logits_1A)
        self._binding = self.session.io_binding()
        self._binding.bind_ortvalue_input(name, self._x_val)
        self._binding.bind_ortvalue_output(OUTPUT_NAME, self._y_val)
        self._logits_A = self.logits_1A[0]
        # The session's native call on the native binding: what ``run_with_iobinding`` ends
        # in on the CPU provider, without its per-call Python checks (they concern graph
        # capture on WebGPU). Another onnxruntime layout keeps the public call.
        c_sess = getattr(self.session, "_sess", None)
        c_bind = getattr(self._binding, "_iobinding", None)
        if (
            c_sess is not None
            and c_bind is not None
            and hasattr(c_sess, "run_with_iobinding")
            and self.session.get_providers() == ["CPUExecutionProvider"]
        ):
            self._run = functools.partial(c_sess.run_with_iobinding, c_bind, None)
        else:
            self._run = functools.partial(self.session.run_with_iobinding, self._binding)

    def run(self) -> np.ndarray:
        """Logits (A,) for the row in :attr:`x_1D` (a view of the bound output buffer)."""
        self._run()
        return self._logits_A

    def run_batch(self, x_ND: np.ndarray) -> np.ndarray:
        """Logits (N, A) for many rows (allocating; for evaluation, not the hot path)."""
        name = self.session.get_inputs()[0].name
        return self.session.run([OUTPUT_NAME], {name: np.ascontiguousarray(x_ND, np.float32)})[0]


@dataclass
class LocalState:
    """What an edge controller knows when a request arrives.

    Attributes:
        state: live pools, failures and trust of the (local view of the) network.
        request: the request to decide.
        emergency_R: int (R,), active grid emergencies per region.
        history: the controller's recent requests and outcomes.
        candidates: the K candidate routes; None = the agent looks them up in its path cache.
    """

    state: NetworkState
    request: Request
    emergency_R: np.ndarray
    history: History
    candidates: CandidateSet | None = None

    @classmethod
    def from_env(cls, env: Any) -> LocalState:
        """The current request of a :class:`~pcnalloc.envs.PowerCommEnv` and its state."""
        return cls(env.state, env.current_request, env.emergency_R, env.obs_builder.history, None)


_context = functools.lru_cache(maxsize=1 << 14, typed=True)(RequestContext)
"""``RequestContext(cls, region, emergency)``, built once per distinct context (immutable)."""


class EdgeAgent:
    """Decide requests with a verified ONNX student, behind the rule engine, with an audit log.

    Args:
        artifact_dir: the artifact folder (see :mod:`pcnalloc.edge.artifact`).
        public_key: the signer's Ed25519 public key (object or PEM path); None trusts the
            artifact's own ``signer.pub`` (integrity only).
        env_config: the env settings of this deployment; must agree with the artifact's
            feature layout (K, L, history, trust threshold, catalog …).
        network: the communication network, to prepare its path cache now; None takes the
            artifact's own network when it ships one (``network.npz``), else the first
            state's ``state.net``.
        catalog: the service catalog (default: the one ``env_config`` names).
        rules: a :class:`RuleEngine` or a configured :class:`Guard`; None = the env's mask.
        audit: an open :class:`~pcnalloc.edge.audit.AuditLog`, or None.
        precision: ``fp32`` or ``int8`` (if the artifact has it).
        mask_invalid: without rules, replace a proposal the env's hard rules forbid.
        max_records: decisions whose timings are kept (a ring buffer).
        runtime: ``onnxruntime`` (default) or ``compiled``: a plain MLP student read from the
            same verified ONNX bytes and run in one compiled call
            (:class:`~pcnalloc.edge.mlp.CompiledMLP`, checked against ONNX Runtime when
            built; a model it cannot run raises :class:`~pcnalloc.edge.mlp.NotAnMLP`).

    Attributes:
        timings_ns: int64 (max_records, 4), ns per decision in :data:`STAGES` order.
        last_logits: float32 (A,), the bound output buffer (overwritten by the next call).
        last_evaluation: the evaluation of the last decided request (its buffers are reused:
            the next call overwrites them).
        network: the network the agent prepared its paths for (None until known).
        layout: the compact vector's declared layout.

    Raises:
        ArtifactError: the artifact fails verification, reads the teacher state, or its model
            does not match its manifest.
        ArtifactMismatchError: the artifact was compiled for another feature layout.
    """

    def __init__(
        self,
        artifact_dir: str | Path,
        public_key: Ed25519PublicKey | str | Path | bytes | None,
        env_config: EnvConfig,
        *,
        network: CommNetwork | None = None,
        catalog: Catalog | None = None,
        rules: RuleEngine | Guard | None = None,
        audit: Any = None,
        precision: str = "fp32",
        mask_invalid: bool = True,
        max_records: int = 1 << 16,
        runtime: str = "onnxruntime",
    ) -> None:
        if runtime not in RUNTIMES:
            raise ConfigError(f"runtime {runtime!r}; accepted: {', '.join(RUNTIMES)}")
        self.artifact = load_artifact(artifact_dir, public_key)
        if self.artifact.input_name != "compact":
            raise ArtifactError(
                f"input {self.artifact.input_name!r}: the edge agent reads the compact vector; "
                "a latent ('state') student needs the teacher's encoder, which the edge lacks"
            )
        self.cfg = env_config
        self.catalog = catalog or load_catalog(
            env_config.traffic.catalog, max_levels=env_config.grant_levels
        )
        check_feature_config(self.artifact.manifest, env_config, self.catalog)
        self.precision = precision
        self._class_names = list(self.catalog.names)
        self.model = BoundModel(self.artifact, precision)
        self.runtime = runtime
        self._run_model = self.model.run
        if runtime == "compiled":
            from pcnalloc.edge.mlp import CompiledMLP

            self._run_model = CompiledMLP(
                self.artifact.model(precision),
                self.model.x_1D,
                self.model.logits_1A,
                self.model.run_batch,
            ).run
        self.model_sha256 = self.artifact.sha256(precision)
        self.model_bytes = len(self.artifact.model(precision))
        self.guard = Guard(rules) if isinstance(rules, RuleEngine) else rules
        self.engine: RuleEngine | None = self.guard.engine if self.guard is not None else None
        self.audit = audit
        self.mask_invalid = mask_invalid
        # The env's own engine: emergency setup priorities, and a user rule file's mask.
        self._mask_engine = build_engine(
            env_config.rules, self.catalog, trust_threshold=env_config.trust_threshold
        )
        self._prio_rows: list[list[int]] = priority_table(self._mask_engine, env_config).tolist()
        self._ctx = RequestContext(0)
        self._n_cached = int(env_config.network.path_cache or env_config.route_pool)
        self._pool = CandidatePool(self.catalog, env_config)
        self._x = self.model.x_1D[0]
        self.layout = layout_for(self.catalog, env_config)
        A, F = env_config.n_actions, len(CANDIDATE_FEATURES)
        feats_view = self._x[self.layout.slice("candidates")].reshape(A, F)
        self._evaluator = Evaluator(self.catalog, env_config, feats_AF=feats_view)
        self._ev = self._evaluator.evaluation
        self._valid_col = CANDIDATE_FEATURES.index("valid")
        self._checker = (
            TableChecker(self.engine, FIELD_WHERE, A) if self.engine is not None else None
        )
        self._mask_checker = (
            TableChecker(self._mask_engine, FIELD_WHERE, A) if env_config.rules else None
        )
        self._builder: ObservationBuilder | None = None
        self._site_region: list[int] = []
        if network is None and self.artifact.has_network:
            network = self.artifact.network()
        self.network: CommNetwork | None = network
        self._paths: PathCache | None = (
            shared_path_cache(network, self._n_cached) if network is not None else None
        )
        self.timings_ns = np.zeros((max_records, len(STAGES)), dtype=np.int64)
        # cheaper item writes; numpy's stubs give ndarray __buffer__ only on Python >= 3.12
        self._timings_flat = memoryview(self.timings_ns.reshape(-1))  # type: ignore[arg-type]
        self.n_decisions = 0
        self.last_evaluation: Evaluation | None = None
        self.last_logits: np.ndarray = self.model.logits_1A[0]

    # ------------------------------------------------------------------ features
    def _builder_for(self, state: NetworkState) -> ObservationBuilder:
        b = self._builder
        if b is None or b.state is not state:
            b = self._builder = ObservationBuilder(state, self.catalog, self.cfg, "compact")
            self._site_region = state.net.site_region.tolist()
        return b

    def _candidates(self, local: LocalState) -> CandidateSet:
        if local.candidates is not None:
            return local.candidates
        return self.candidates_for(local.state, local.request, local.emergency_R)

    def candidates_for(
        self, state: NetworkState, req: Request, emergency_R: np.ndarray
    ) -> CandidateSet:
        """The K candidate routes the env would offer ``req`` on ``state`` (its K shortest,
        or K chosen by state from ``candidate_pool`` routes, :mod:`pcnalloc.envs.candidates`)."""
        if self._paths is None or self._paths.net is not state.net:
            self._paths = shared_path_cache(state.net, self._n_cached)
        cs = self._paths.candidates(
            req.src,
            req.dst,
            self.cfg.route_pool,
            protected=bool(self.catalog.protected_C[req.cls]),
            failed_E1=state.failed_E1,
            failed_key=state.failed_key,
        )
        if not self._pool.active:
            return cs
        em = bool(emergency_R[int(state.net.site_region[req.src])] > 0)
        return self._pool.choose(state, cs, int(req.cls), self._prio_rows[em][int(req.cls)])

    def features(self, local: LocalState) -> Evaluation:
        """Evaluate the request's actions and write the compact vector into the input buffer.

        Returns:
            The evaluation (mask, hard flags, field tables for the rule engine); its buffers
            are the agent's own, overwritten by the next call.
        """
        req, st, em = local.request, local.state, local.emergency_R
        cls = int(req.cls)
        b = self._builder
        if b is None or b.state is not st:
            b = self._builder_for(st)
        region = self._site_region[req.src]
        emergency = bool(em.item(region) > 0)
        prio = self._prio_rows[emergency][cls]
        evr = self._evaluator
        ev = evr.evaluation
        ev.bound_ms = evr._bound_C[cls]
        h = local.history
        t = 2 * np.pi * ((req.time_s / 3600.0) % 24.0) / 24.0  # as the env computes it
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
        ctx = self._ctx = _context(cls, region, emergency)
        if self._mask_checker is not None:  # a user rule file tightens the mask in place
            self._mask_checker.check(ev.tables, ev.mask_A, ctx, ev.fields)
            out = self._mask_checker.out
            ev.mask_A &= ~out.forbidden_A
            ev.mask_A[-1] = 1
            ev.feats_AF[:, self._valid_col] = ev.mask_A  # 0/1: unchanged by the clip
            ev.rule_violations_AR = out.viol_RA.T.copy()  # type: ignore[attr-defined]
        return ev

    @property
    def compact(self) -> np.ndarray:
        """The compact vector (D,) of the last decision (the bound input buffer)."""
        return self._x

    # ------------------------------------------------------------------ decision
    def decide(self, local: LocalState) -> Decision:
        """Features → model → rule check → audit record for one request (timed).

        Returns:
            The :class:`~pcnalloc.edge.guard.Decision`: the action to execute, the model's
            proposal, whether (and by which rules) it was intercepted.
        """
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
            assert self._checker is not None
            d = guard.decide_tables(proposal, logits, self._checker, ev, ctx)
        else:
            d = self._mask_check(proposal, logits, ev, ctx)
        t3 = clock()
        audit = self.audit
        if audit is not None:
            engine = self.engine
            rs = engine.sha256 if engine is not None else ""
            append = getattr(audit, "append_request_decision", None)
            if append is not None:  # an AuditLog: the request's fields, no record dict
                req = local.request
                append(
                    int(req.id),
                    round(float(req.time_s), 6),
                    self._class_names[ctx.cls],
                    int(req.src),
                    int(req.dst),
                    int(req.kind),
                    ctx.region,
                    ctx.emergency,
                    d,
                    rs,
                    self.model_sha256,
                )
            else:
                audit.append_decision(
                    request=self._request_record(local.request, ctx),
                    decision=d,
                    ruleset_sha256=rs,
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

    def _mask_check(
        self, proposal: int, logits_A: np.ndarray, ev: Evaluation, ctx: RequestContext
    ) -> Decision:
        prio = self._prio_rows[ctx.emergency][ctx.cls]
        mask = ev.mask_A
        if mask.item(proposal) or not self.mask_invalid:
            return allowed_decision(proposal, bool(ev.needs_preempt_A.item(proposal)), prio)
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

    def _request_record(self, req: Request, ctx: RequestContext) -> dict[str, Any]:
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
        """Recorded per-stage and total decision latencies (µs), oldest first."""
        n = min(self.n_decisions, self.timings_ns.shape[0])
        t = self.timings_ns[:n] / 1e3
        out = {s: t[:, i] for i, s in enumerate(STAGES)}
        out["total"] = t.sum(axis=1)
        return out


# ---------------------------------------------------------------------------- Policy
class EdgePolicy:
    """A verified artifact as a :class:`~pcnalloc.baselines.Policy` reading ``obs["compact"]``.

    Args:
        artifact_dir: the artifact folder.
        public_key: the signer's public key (None: the artifact's ``signer.pub``).
        precision: ``fp32`` or ``int8``.
        masked: act by the best valid action (argmax over ``obs["action_mask"]``); False
            sends the raw argmax (the env refuses a masked one).
        name: registry/report name.
    """

    observation = "compact"

    def __init__(
        self,
        artifact_dir: str | Path,
        public_key: Ed25519PublicKey | str | Path | bytes | None = None,
        *,
        precision: str = "fp32",
        masked: bool = True,
        name: str = "edge",
    ) -> None:
        self.artifact = load_artifact(artifact_dir, public_key)
        if self.artifact.input_name != "compact":
            raise ArtifactError(
                f"input {self.artifact.input_name!r}: EdgePolicy reads obs['compact']"
            )
        self.model = BoundModel(self.artifact, precision)
        self.name = name
        self.masked = masked
        self.model_bytes = len(self.artifact.model(precision))
        fc = self.artifact.manifest["feature_config"]
        self.env_overrides: dict[str, Any] = {
            k: fc[k]
            for k in ("k_paths", "grant_levels", "history", "trust_threshold", "preemption")
        }
        self.env_overrides["candidate_pool"] = fc.get("candidate_pool")
        self._x = self.model.x_1D[0]

    def reset(self, seed: int | None = None) -> None:
        return None

    def scores(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """Logits (A,) for the observation (a view of the bound output buffer)."""
        self._x[:] = obs["compact"]
        return self.model.run()

    def act(self, obs: dict[str, np.ndarray]) -> int:
        z = self.scores(obs)
        if not self.masked:
            return int(z.argmax())
        return int(np.argmax(np.where(obs["action_mask"] > 0, z, -np.inf)))


def make_edge_policy(
    artifact_dir: str | Path | None = None,
    public_key: str | Path | None = None,
    k: int | None = None,
    **kwargs: Any,
) -> EdgePolicy:
    """Factory registered as ``edge``: ``make_policy("edge", artifact_dir=…, public_key=…)``.

    Raises:
        ArtifactError: no artifact folder given, or ``edge:K`` used (K is fixed at compile).
    """
    if artifact_dir is None:
        raise ArtifactError("policy 'edge' needs artifact_dir=<compiled artifact folder>")
    if public_key is None and "::" in str(artifact_dir):
        # spec form ``edge@ARTIFACT::PUBLIC_KEY`` (one string for any executor)
        artifact_dir, public_key = str(artifact_dir).split("::", 1)
    if k is not None:
        raise ArtifactError(f"policy 'edge:{k}': K is fixed by the artifact; use plain 'edge'")
    return EdgePolicy(artifact_dir, public_key, **kwargs)


register_policy("edge", make_edge_policy)

__all__ = [
    "STAGES",
    "BoundModel",
    "EdgeAgent",
    "EdgePolicy",
    "LocalState",
    "make_edge_policy",
    "make_session",
]
