"""Regional edge agents on stale views, with two-phase cross-region reservations (DESIGN §8).

Each region's agent decides the requests whose source site lies in its region
(``net.site_region[req.src]``). It sees

- **its own links live** — a link is *owned* by the region of its lower-index end site
  (``site_region[min(a, b)]``), a fixed, symmetric rule every region can compute locally;
- **other regions' links as of the last summary**: every ``staleness_s`` seconds of simulated
  time each region publishes the utilisation of the links it owns (per slice pool and
  priority); the agents' copies are refreshed at the first decision at or after each refresh
  instant (``staleness_s = 0`` means always current);
- link failures and site trust live (failures are flooded by the routing protocol, trust is
  published with every change).

The agent evaluates its candidates with :func:`pcnalloc.envs.features.evaluate` on that view,
and its policy picks an action. The pick is then **reserved** in every region owning a link of
the route(s): each owner checks its true residual (phase 1, reserve). If every owner holds the
reservation the request is admitted (phase 2, confirm: :meth:`PowerCommEnv.step`, whose
``NetworkState.admit`` enforces capacity once more). If an owner cannot hold it — the stale
view was wrong — the reservation is refused cleanly: nothing is admitted, a *reservation
conflict* is counted, the refusing owners' reply (their current usage of the refused links)
updates the agent's view, that action and larger grants on the same route are struck, and the
agent retries with its next choice until it admits or rejects. A route that the true state
turns invalid for another reason (queueing latency grown past the bound) is refused the same way
and counted by reason. An agent that planned a pre-emption (RSVP-TE style) has it carried out by
the owner when the true state allows it; one that did not is refused where the true residual is
short, rather than pre-empting flows on its behalf.

The simulator is sequential, so the window between reserve and confirm is empty and holds need
no bookkeeping; a deployment would time holds out.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from pcnalloc.baselines.base import Policy
from pcnalloc.distributed.config import RegionConfig
from pcnalloc.envs.features import HARD_RULES, Evaluation, evaluate
from pcnalloc.envs.observation import ObservationBuilder
from pcnalloc.envs.power_comm import PowerCommEnv
from pcnalloc.errors import ConfigError

log = logging.getLogger(__name__)

CONFLICT_REASONS: tuple[str, ...] = ("capacity", "latency", "other")
"""Why an owner refused a reservation: its true residual could not hold the grant (unless the
agent planned to pre-empt lower-priority flows and the true state allows it); the true
queueing latency broke the bound; anything else (e.g. a rule of the engine)."""

_H_CAP, _H_LAT = HARD_RULES.index("capacity"), HARD_RULES.index("latency")


def link_owner(net: Any) -> np.ndarray:
    """Region owning each link: the region of its lower-index end site, shape (E,)."""
    return np.asarray(net.site_region)[np.asarray(net.link_ends).min(axis=1)].astype(np.int64)


class StaleView:
    """A read-only :class:`~pcnalloc.envs.state.NetworkState` stand-in for one region.

    It carries exactly what :func:`evaluate` and :class:`ObservationBuilder` read: capacities,
    per-slice/priority usage (own links live, others from the region's summary copy), live
    failures and trust.
    """

    def __init__(self, state: Any, own_E1: np.ndarray) -> None:
        self._true = state
        self.net = state.net
        self.cap_ES1 = state.cap_ES1
        self.own_E1 = own_E1
        self.snap_ESP1 = state.used_ESP1.copy()
        self.used_ESP1 = state.used_ESP1
        self.used_ES1 = state.used_ES1

    @property
    def failed_E1(self) -> np.ndarray:
        return self._true.failed_E1

    @property
    def trust_N1(self) -> np.ndarray:
        return self._true.trust_N1

    @property
    def n_failed(self) -> int:
        return self._true.n_failed

    def refresh_summary(self) -> None:
        """Take a fresh copy of every link's usage (a summary round)."""
        np.copyto(self.snap_ESP1, self._true.used_ESP1)

    def learn(self, links: np.ndarray) -> None:
        """Overwrite the copy of ``links`` with their true usage (an owner's refusal reply)."""
        self.snap_ESP1[links] = self._true.used_ESP1[links]

    def compose(self, live: bool) -> None:
        """Assemble the view: own links live, others from the copy (all live if ``live``)."""
        if live:
            self.used_ESP1 = self._true.used_ESP1
            self.used_ES1 = self._true.used_ES1
            return
        own = self.own_E1[:, None, None]
        self.used_ESP1 = np.where(own, self._true.used_ESP1, self.snap_ESP1)
        self.used_ES1 = self.used_ESP1.sum(axis=-1)


class RegionalCoordinator:
    """Drives a :class:`PowerCommEnv` with one agent per region (see the module docstring).

    Args:
        env: the environment (built with the observation mode the agents' policies read).
        config: staleness and refusal behaviour.

    Attributes:
        n_regions: R.
        owner_E: owning region of each link, shape (E,).
        counters: ``decisions``, ``attempts``, ``conflicts`` (all reasons), per-reason counts
            ``conflict_<reason>``, ``masked_proposals`` (a policy picked an action its own view
            forbade; the request is rejected), ``summaries`` (refresh rounds).
        conflicts_by_region: capacity refusals per owning region, shape (R,).
    """

    def __init__(self, env: PowerCommEnv, config: RegionConfig | None = None) -> None:
        self.env = env
        self.cfg = config or RegionConfig()
        net = env.net
        self.n_regions = net.n_regions
        self.owner_E = link_owner(net)
        E1 = env.state.cap_ES1.shape[0]
        self._views: list[StaleView] = []
        self._builders: list[ObservationBuilder] = []
        for r in range(self.n_regions):
            own = np.zeros(E1, dtype=bool)
            own[:-1] = self.owner_E == r
            own[-1] = True  # the sentinel link is never used
            view = StaleView(env.state, own)
            builder = ObservationBuilder(view, env.catalog, env.cfg, env.observation_mode)  # type: ignore[arg-type]
            builder.history = env.obs_builder.history  # decisions are broadcast to all agents
            self._views.append(view)
            self._builders.append(builder)
        self._reset_counters()

    # ------------------------------------------------------------------ bookkeeping
    def _reset_counters(self) -> None:
        self.counters: dict[str, int] = {
            k: 0 for k in ("decisions", "attempts", "conflicts", "masked_proposals", "summaries")
        }
        for reason in CONFLICT_REASONS:
            self.counters[f"conflict_{reason}"] = 0
        self.conflicts_by_region = np.zeros(self.n_regions, dtype=np.int64)
        self._next_refresh = -np.inf
        self._struck_A: np.ndarray | None = None
        self._ev: Evaluation | None = None
        self._attempt0 = 0  # attempts counter when the current request began
        self._n_conf = 0  # conflicts of the current request

    @property
    def live(self) -> bool:
        return self.cfg.staleness_s == 0

    def reset(self, seed: int | None = None) -> tuple[dict, dict]:
        """Reset the env and the summaries; returns the owner's observation and env info."""
        self._reset_counters()
        _, info = self.env.reset(seed=seed)
        self._begin_request()
        return self.observe(), info

    @property
    def owner(self) -> int:
        """Region deciding the current request (region of its source site)."""
        return int(self.env.net.site_region[self.env.current_request.src])

    def _begin_request(self) -> None:
        if not self.live and self.env.now >= self._next_refresh:
            dt = self.cfg.staleness_s
            for v in self._views:
                v.refresh_summary()
            self._next_refresh = (np.floor(self.env.now / dt) + 1.0) * dt
            self.counters["summaries"] += 1
        self._struck_A = np.zeros(self.env.cfg.n_actions, dtype=bool)
        self._evaluate()

    def _evaluate(self) -> None:
        """Evaluate the current request on the owner's view, minus struck actions."""
        env = self.env
        r = self.owner
        view = self._views[r]
        view.compose(self.live)
        req = env.current_request
        ev = evaluate(
            view,  # type: ignore[arg-type]
            env.current_candidates,
            req,
            env.catalog,
            env.cfg,
            priority=env.current_priority,
        )
        assert self._struck_A is not None
        allowed = ~self._struck_A
        violations = None
        if env.cfg.rules is not None:
            from pcnalloc.rules.engine import RequestContext

            emergency = bool(env.emergency_R[r] > 0)
            v = env.engine.check(ev.fields, RequestContext(req.cls, r, emergency))
            allowed &= ~v.forbidden_A
            violations = v.violations_AR
        if violations is None:
            violations = np.zeros((allowed.size, 0), dtype=bool)
        self._ev = ev.restricted(allowed, violations)

    @property
    def evaluation(self) -> Evaluation:
        """The owner's evaluation of the current request on its (stale) view."""
        assert self._ev is not None, "call reset() first"
        return self._ev

    def observe(self, region: int | None = None) -> dict:
        """Observation of the current request as the owner region sees it."""
        r = self.owner if region is None else region
        return self._builders[r].build(
            self.env.current_request, self.evaluation, self.env.emergency_R
        )

    # ------------------------------------------------------------------ protocol
    def _route_links(self, action: int) -> np.ndarray:
        env = self.env
        cs = env.current_candidates
        k = action // env.cfg.grant_levels
        E = env.net.n_links
        links = cs.links_KH[k][cs.links_KH[k] < E]
        if cs.has_backup_K[k]:
            links = np.concatenate([links, cs.backup_links_KB[k][cs.backup_links_KB[k] < E]])
        return links

    def reserve(self, action: int) -> tuple[bool, str | None, np.ndarray]:
        """Phase 1: ask every owning region to hold the grant on its links of the route(s).

        Returns:
            ``(held, reason, refused_links)``: ``held`` if every owner holds it; otherwise
            the first reason of :data:`CONFLICT_REASONS` and the links whose owners refused.
        """
        env = self.env
        true_ev = env.current_evaluation
        links = self._route_links(action)
        kbps = int(self.evaluation.kbps_A[action])
        s = int(env.catalog.slice_C[env.current_request.cls])
        st = env.state
        free = st.cap_ES1[links, s] - st.used_ES1[links, s]
        short = links[(free < kbps) | st.failed_E1[links]]
        planned_preemption = bool(self.evaluation.needs_preempt_A[action])
        if true_ev.mask_A[action] and (planned_preemption or short.size == 0):
            return True, None, links[:0]
        hard = true_ev.hard_AR[action]
        if short.size or hard[_H_CAP]:
            reason = "capacity"
        elif hard[_H_LAT]:
            reason = "latency"
        else:
            reason = "other"
        return False, reason, short if short.size else links

    def submit(self, action: int) -> tuple[bool, tuple | None]:
        """Play one attempt of the owner's agent.

        Returns:
            ``(decided, step)``: ``decided`` is False after a refused reservation (the same
            request waits for the agent's next choice, see :meth:`observe`); otherwise the
            request was admitted or rejected and ``step`` is the env's
            ``(obs, reward, terminated, truncated, info)`` with ``info["region"]``,
            ``info["attempts"]`` and ``info["conflicts"]`` added.
        """
        env = self.env
        a = int(action)
        ev = self.evaluation
        self.counters["attempts"] += 1
        if a != env.reject_action and not (0 <= a < ev.mask_A.size and ev.mask_A[a]):
            self.counters["masked_proposals"] += 1
            a = env.reject_action
        if a != env.reject_action:
            held, reason, refused = self.reserve(a)
            if not held:
                assert reason is not None
                self.counters["conflicts"] += 1
                self.counters[f"conflict_{reason}"] += 1
                if reason == "capacity":
                    np.add.at(self.conflicts_by_region, np.unique(self.owner_E[refused]), 1)
                L = env.cfg.grant_levels
                k = a // L
                same = np.zeros_like(self._struck_A)
                same[k * L : (k + 1) * L] = True
                assert self._struck_A is not None
                self._struck_A |= same & (ev.kbps_A >= ev.kbps_A[a])
                if self.cfg.learn_from_refusal:
                    self._views[self.owner].learn(refused)
                self._evaluate()
                self._n_conf += 1
                return False, None
        region, attempts, conflicts = self.owner, self.counters["attempts"], self._n_conf
        out = env.step(a)  # phase 2: confirm (admit) or reject
        info = out[4]
        assert info["outcome"] != "refused", "a reservation was confirmed on a masked action"
        info.update(region=region, attempts=attempts - self._attempt0, conflicts=conflicts)
        self.counters["decisions"] += 1
        self._attempt0 = self.counters["attempts"]
        self._n_conf = 0
        self._begin_request()
        return True, out

    def decide(self, policies: Sequence[Policy]) -> tuple:
        """Let the owner's policy decide the current request, retrying after conflicts.

        Returns:
            The env's step tuple for the request (see :meth:`submit`).
        """
        if len(policies) != self.n_regions:
            raise ConfigError(f"need one policy per region ({self.n_regions}), got {len(policies)}")
        while True:
            done, out = self.submit(policies[self.owner].act(self.observe()))
            if done:
                assert out is not None
                return out

    def summary(self) -> dict[str, Any]:
        """Counters plus capacity refusals per owning region (JSON-ready)."""
        return {**self.counters, "conflicts_by_region": self.conflicts_by_region.tolist()}


def run_regional(
    policy_spec: str,
    config: Any,
    *,
    staleness_s: float,
    seed: int,
    requests: int,
    progress: Any = None,
) -> dict[str, Any]:
    """Play one episode with one ``policy_spec`` agent per region on stale views.

    Mirrors :func:`pcnalloc.evaluate.run_policy` (same env config, seed and metrics schema)
    so its result compares directly with the centralised policy's.

    Args:
        policy_spec: registry spec of every region's policy (``ksp-ff``, ``teacher@DIR`` …).
        config: base :class:`~pcnalloc.config.EnvConfig`.
        staleness_s: seconds between summaries of other regions.
        seed: episode seed (every region's policy is reset with ``seed + region``).
        requests: decisions to play.
        progress: called with the number of decisions done since the last call.

    Returns:
        ``run_policy``'s dict plus ``staleness_s`` and ``distributed`` (coordinator counters).
    """
    import time

    from pcnalloc.baselines import make_policy
    from pcnalloc.evaluate.metrics import MetricsRecorder
    from pcnalloc.evaluate.runner import env_config_for

    policies = [make_policy(policy_spec)]
    cfg = env_config_for(policies[0], config, requests)
    env = PowerCommEnv(cfg, observation=policies[0].observation)
    coord = RegionalCoordinator(env, RegionConfig(staleness_s=staleness_s))
    policies += [make_policy(policy_spec) for _ in range(coord.n_regions - 1)]
    for r, p in enumerate(policies):
        p.reset(seed + r)
    coord.reset(seed=seed)
    rec = MetricsRecorder(env)
    t0 = time.perf_counter()
    for i in range(requests):
        _, reward, _, _, info = coord.decide(policies)
        rec.record(info, reward)
        if progress is not None and (i + 1) % 100 == 0:
            progress(100)
    wall = time.perf_counter() - t0
    if progress is not None and requests % 100:
        progress(requests % 100)
    return {
        "policy": policies[0].name,
        "case": cfg.network.case,
        "load": cfg.traffic.load,
        "seed": seed,
        "requests": requests,
        "staleness_s": staleness_s,
        "metrics": rec.result(model_bytes=policies[0].model_bytes),
        "distributed": coord.summary(),
        "timing": {"wall_s": round(wall, 4)},
    }


def distributed_gap(
    policy_spec: str,
    config: Any,
    *,
    staleness_s: Sequence[float],
    seeds: Sequence[int],
    requests: int,
    progress: Any = None,
) -> list[dict[str, Any]]:
    """Value and blocking gap of regional agents to the same policy run centrally.

    For every seed the centralised policy (one agent, live state) and the regional agents at
    each staleness play the same seeded episode.

    Returns:
        One row per staleness with means over seeds: ``value_ratio_central``,
        ``value_ratio_distributed``, ``value_gap`` (central − distributed),
        ``blocking_central``/``blocking_distributed``/``blocking_gap`` (priority ≤ 1),
        ``blocking_all_gap`` (all classes), ``conflicts`` (reservation conflicts per
        episode), ``conflicts_per_1k`` and ``per_seed`` details.
    """
    from pcnalloc.baselines import make_policy
    from pcnalloc.evaluate.runner import run_policy

    central = {
        s: run_policy(
            make_policy(policy_spec), config, seed=s, requests=requests, progress=progress
        )
        for s in seeds
    }
    rows = []
    for dt in staleness_s:
        per = []
        for s in seeds:
            d = run_regional(
                policy_spec, config, staleness_s=dt, seed=s, requests=requests, progress=progress
            )
            c, m = central[s]["metrics"], d["metrics"]
            per.append(
                {
                    "seed": s,
                    "value_ratio_central": c["weighted_value_ratio"],
                    "value_ratio_distributed": m["weighted_value_ratio"],
                    "blocking_central": c["blocking_priority_le1"],
                    "blocking_distributed": m["blocking_priority_le1"],
                    "blocking_all_central": c["blocking_probability"],
                    "blocking_all_distributed": m["blocking_probability"],
                    "conflicts": d["distributed"]["conflicts"],
                    "conflict_capacity": d["distributed"]["conflict_capacity"],
                    "attempts": d["distributed"]["attempts"],
                    "summaries": d["distributed"]["summaries"],
                }
            )

        def mean(key: str, rows_: list[dict[str, Any]] = per) -> float:
            return float(np.mean([p[key] for p in rows_]))

        rows.append(
            {
                "policy": central[seeds[0]]["policy"],
                "staleness_s": float(dt),
                "value_ratio_central": mean("value_ratio_central"),
                "value_ratio_distributed": mean("value_ratio_distributed"),
                "value_gap": mean("value_ratio_central") - mean("value_ratio_distributed"),
                "blocking_central": mean("blocking_central"),
                "blocking_distributed": mean("blocking_distributed"),
                "blocking_gap": mean("blocking_distributed") - mean("blocking_central"),
                "blocking_all_gap": mean("blocking_all_distributed") - mean("blocking_all_central"),
                "conflicts": mean("conflicts"),
                "conflicts_per_1k": 1000.0 * mean("conflicts") / requests,
                "per_seed": per,
            }
        )
    return rows
