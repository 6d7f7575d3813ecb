"""Offline hindsight optimum on a window of requests: a MILP upper bound (DESIGN §9).

Given a window of requests whose arrivals, classes, endpoints and holding times are known in
advance, choose for every request one (candidate path k, grant level l) or reject, to maximise
Σ value·grant, subject to the environment's hard rules:

* **capacity**: at every arrival instant, on every link and slice pool, the flows admitted in
  the window that are still present (a flow occupies ``[arrival, arrival + holding)``) plus
  the flows present at the window start (the warm-start population, departing at their end
  times) fit the pool capacity. Usage only grows at arrivals, so checking at the arrival
  instants of requests that can use a pool is exact; rows that a later row on the same pool
  dominates (no departure and no capacity change in between) are dropped;
* **latency**: each candidate's latency at **zero queueing** (propagation + switching, for a
  1+1 pair the slower of the two routes) must meet the class bound. The online check adds a
  non-negative queueing term, so this is a relaxation and keeps the MILP an upper bound;
* **protection**: 1+1 classes only on candidates with a link-disjoint backup; primary and
  backup both consume bandwidth;
* **trust**: Zone I/II classes only on candidates whose sites all have trust ≥ threshold;
* **grant levels**: only the class's levels (grant > 0) among the configured slots.

The schedules the MILP ranges over are exactly those a non-pre-empting online policy can
produce on the same window (same candidates, same warm start, one route for the whole
holding time), so every such policy's value is ≤ the optimum, and ≤ the solver's dual bound
even when HiGHS stops at its time limit. A policy that pre-empts (CSPF-PE, random-valid on
pre-emption candidates) also reroutes interrupted flows through restoration requests; those
schedules lie outside the model, so the comparison is reported but marked not certified.

Windows come from a real episode with grid events off, where the new requests are exogenous:
drawn from the env's generator independently of the decisions (pre-emption only adds
restoration requests, which draw no random numbers). The MILP's variables and capacity rows
are built in :mod:`pcnalloc.baselines.offline_milp`.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, milp

from pcnalloc.baselines.base import Policy
from pcnalloc.baselines.offline_milp import capacity_rows, milp_variables
from pcnalloc.config import EnvConfig
from pcnalloc.envs.power_comm import PowerCommEnv
from pcnalloc.errors import ConfigError
from pcnalloc.network.paths import CandidateSet
from pcnalloc.traffic.catalog import Catalog
from pcnalloc.traffic.generator import KIND_NEW, Request

log = logging.getLogger(__name__)

_STATUS = {0: "optimal", 1: "time_limit", 2: "infeasible", 3: "unbounded", 4: "other"}


@dataclass(frozen=True, eq=False)
class Window:
    """A recorded window: the new requests, their candidates and the flows present at start.

    Shapes: J requests, M warm (flow, link) incidences, E links, S slices, N sites.

    Attributes:
        config: the env config the window was recorded under (grid events off).
        catalog: the service catalog of that env.
        seed: the episode seed.
        requests: the J new requests in arrival order (copies).
        candidates: the K candidate routes shown with each request.
        cap_kbps_ES: pool capacity per link and slice (kb/s), shape (E, S).
        trust_N1: site trust at the window start incl. the sentinel, shape (N + 1,).
        warm_link_M, warm_slice_M, warm_kbps_M, warm_end_s_M: one row per (warm flow, link of
            its primary or backup route): link, slice, kb/s and departure time (s).
    """

    config: EnvConfig
    catalog: Catalog
    seed: int
    requests: list[Request]
    candidates: list[CandidateSet]
    cap_kbps_ES: np.ndarray
    trust_N1: np.ndarray
    warm_link_M: np.ndarray
    warm_slice_M: np.ndarray
    warm_kbps_M: np.ndarray
    warm_end_s_M: np.ndarray

    def key(self) -> list[tuple[float, int, int, int, float]]:
        """(time, class, src, dst, holding) per request: equal keys ⇒ the same requests."""
        return [(r.time_s, r.cls, r.src, r.dst, r.holding_s) for r in self.requests]

    def warm_usage_kbps(self, times_s: np.ndarray) -> np.ndarray:
        """kb/s held by the warm flows at each time, shape (T, E, S)."""
        E, S = self.cap_kbps_ES.shape
        M = self.warm_link_M.size
        res = self.warm_link_M * S + self.warm_slice_M
        W_MR = sp.csr_matrix((self.warm_kbps_M, (np.arange(M), res)), shape=(M, E * S))
        alive_TM = (self.warm_end_s_M[None, :] > np.asarray(times_s)[:, None]).astype(np.int64)
        out = np.asarray((W_MR.T @ alive_TM.T).T, dtype=np.int64)
        return out.reshape(len(times_s), E, S)


def window_config(env_cfg: EnvConfig, **overrides: Any) -> EnvConfig:
    """``env_cfg`` with grid faults and fiber cuts off (the bound assumes an intact network),
    plus top-level ``overrides`` (e.g. a policy's ``k_paths``)."""
    data = env_cfg.model_dump()
    data["traffic"]["events"].update(faults_per_hour=0.0, fiber_cuts_per_hour=0.0)
    data.update(overrides)
    return EnvConfig.model_validate(data)


def _cat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)


def play_window(
    env: PowerCommEnv, policy: Policy | None, seed: int, requests: int, *, reset: Any = None
) -> tuple[Window, dict[str, Any]]:
    """Play ``policy`` until it has decided ``requests`` new requests; record the window.
    Restoration requests created by pre-emption are decided too but are not in the window.

    Args:
        env: the environment (its config should have grid events off).
        policy: the decision maker; None rejects everything (records the window only).
        seed: episode seed.
        requests: new requests J in the window.
        reset: an ``(env, obs)`` pair already reset with ``seed`` to play on instead.

    Returns:
        The window and the policy's result on it: ``value`` (Σ value·grant accepted minus
        pre-empted value, as the metrics count it), ``accepted``, ``preempted``,
        ``restorations`` (restoration decisions played).
    """
    if reset is None:
        obs, _ = env.reset(seed=seed)
    else:
        env, obs = reset
    if policy is not None:
        bind = getattr(policy, "bind_env", None)
        if bind is not None:
            bind(env)  # guarded and edge policies read the env they act in
        policy.reset(seed)
    st = env.state
    warm = list(st.flows.values())
    rows = [(np.concatenate([f.links, f.backup_links]), f) for f in warm]
    window = Window(
        config=env.cfg,
        catalog=env.catalog,
        seed=seed,
        requests=[],
        candidates=[],
        cap_kbps_ES=st.cap_ES1[:-1].copy(),
        trust_N1=st.trust_N1.copy(),
        warm_link_M=_cat([r[0] for r in rows], np.int64),
        warm_slice_M=_cat([np.full(r[0].size, r[1].slice) for r in rows], np.int64),
        warm_kbps_M=_cat([np.full(r[0].size, r[1].kbps) for r in rows], np.int64),
        warm_end_s_M=_cat([np.full(r[0].size, r[1].end_s) for r in rows], np.float64),
    )
    out = {"value": 0.0, "accepted": 0, "preempted": 0, "restorations": 0}
    new = 0
    while True:
        req = env.current_request
        if req.kind == KIND_NEW:
            if new == requests:
                break
            window.requests.append(copy.copy(req))
            window.candidates.append(env.current_candidates)  # the routes shown with req
            new += 1
        else:
            out["restorations"] += 1
        action = env.reject_action if policy is None else policy.act(obs)
        obs, _, _, _, info = env.step(action)
        if info["outcome"] == "accepted":
            out["accepted"] += 1
            out["value"] += info["value"] * info["grant"] - info["preempted_value"]
            out["preempted"] += info["preempted"]
    out["value"] = round(out["value"], 9)
    return window, out


def _copy_reset(env: PowerCommEnv, obs: dict) -> tuple[PowerCommEnv, dict]:
    """An independent copy of a just-reset env and its observation; the network, catalog,
    traffic model and path cache (immutable or pure caches) are shared, not copied."""
    memo = {id(x): x for x in (env.net, env.catalog, env.traffic, env.paths)}
    return copy.deepcopy((env, obs), memo)


def record_window(env_cfg: EnvConfig, seed: int, requests: int) -> Window:
    """Record the first ``requests`` new requests of an episode (grid events off)."""
    env = PowerCommEnv(window_config(env_cfg), observation="compact")
    return play_window(env, None, seed, requests)[0]


def solve_window(
    w: Window, *, time_limit_s: float = 60.0, mip_rel_gap: float = 1e-6
) -> dict[str, Any]:
    """Solve the hindsight MILP on a recorded window with HiGHS.

    Args:
        w: the window.
        time_limit_s: HiGHS wall-clock limit (s); on expiry the best schedule found so far is
            returned with ``status="time_limit"`` and ``upper_bound`` is the dual bound.
        mip_rel_gap: relative optimality gap at which HiGHS stops.

    Returns:
        ``value`` (Σ value·grant of the best schedule found), ``upper_bound`` (a certified
        bound on the optimum: the dual bound), ``offered_value`` (Σ value of the window's
        requests), ``ratio`` (value / offered), ``status`` (optimal, time_limit, …),
        ``mip_gap``, ``solve_s``, ``n_vars``, ``n_constraints``, ``nnz``, ``requests``,
        ``accepted``, ``capacity_ok`` (the rounded schedule re-checked by
        :func:`schedule_usage`) and ``actions`` (chosen action per request, K·L = reject).
    """
    t0 = time.perf_counter()
    cfg = w.config
    reject = cfg.k_paths * cfg.grant_levels
    J = len(w.requests)
    v = milp_variables(w)
    V = v.req_V.size
    offered = float(sum(w.catalog.value_C[r.cls] for r in w.requests))
    base = {"offered_value": round(offered, 9), "requests": J, "n_vars": V}
    pick = sp.csr_matrix((np.ones(V), (v.req_V, np.arange(V))), shape=(J, V))
    cap, b = capacity_rows(w, v)
    t_build = time.perf_counter() - t0
    res = (
        milp(
            -v.value_V,
            integrality=np.ones(V),
            bounds=Bounds(0, 1),
            constraints=[LinearConstraint(pick, -np.inf, 1), LinearConstraint(cap, -np.inf, b)],
            options={"time_limit": float(time_limit_s), "mip_rel_gap": mip_rel_gap},
        )
        if V
        else SimpleNamespace(status=0, x=np.zeros(0), mip_dual_bound=0.0, mip_gap=0.0)
    )
    status = _STATUS.get(res.status, "other")
    actions = np.full(J, reject, dtype=np.int64)
    value = 0.0
    if res.x is not None:
        x = res.x > 0.5
        actions[v.req_V[x]] = v.action_V[x]
        value = float(v.value_V[x].sum())
    dual = getattr(res, "mip_dual_bound", None)
    if dual is not None and np.isfinite(dual):
        upper = max(-float(dual), value)
    else:  # no bound reported: every request at its most valuable admissible action
        best_J = np.zeros(J)
        np.maximum.at(best_J, v.req_V, v.value_V)
        upper = value if status == "optimal" else float(best_J.sum())
    log.info("window MILP: %d vars, %d rows, status %s", V, cap.shape[0], status)
    return base | {
        "value": round(value, 9),
        "upper_bound": round(upper, 9),
        "ratio": round(value / offered, 6) if offered else 0.0,
        "status": status,
        "mip_gap": None if res.status not in (0, 1) else float(getattr(res, "mip_gap", 0.0)),
        "solve_s": round(time.perf_counter() - t0, 4),
        "build_s": round(t_build, 4),
        "n_constraints": int(J + cap.shape[0]),
        "nnz": int(V + cap.nnz),
        "accepted": int((actions != reject).sum()),
        "capacity_ok": bool((schedule_usage(w, actions) <= w.cap_kbps_ES[None]).all()),
        "actions": actions.tolist(),
    }


def schedule_usage(w: Window, actions: np.ndarray) -> np.ndarray:
    """kb/s held per pool at each arrival instant under a schedule, shape (J, E, S).

    Counts the warm flows still present and every admitted window flow with
    ``arrival ≤ t < arrival + holding``; an independent check of the MILP's capacity rows.

    Args:
        w: the window.
        actions: chosen action per request (K·L = reject), shape (J,).
    """
    L, E = w.config.grant_levels, w.cap_kbps_ES.shape[0]
    reject = w.config.k_paths * L
    times = np.array([r.time_s for r in w.requests])
    usage = w.warm_usage_kbps(times)
    for j, (r, cs, a) in enumerate(zip(w.requests, w.candidates, actions, strict=True)):
        if a == reject:
            continue
        k, lvl = divmod(int(a), L)
        links = np.concatenate(
            [cs.links_KH[k], cs.backup_links_KB[k] if cs.has_backup_K[k] else []]
        ).astype(np.int64)
        links = links[links < E]
        kb = round(w.catalog.bandwidth_kbps_C[r.cls] * w.catalog.grant_CL[r.cls, lvl])
        alive = (np.arange(len(times)) >= j) & (times < r.time_s + r.holding_s)
        usage[np.ix_(alive, links, [int(w.catalog.slice_C[r.cls])])] += kb
    return usage


def offline_bound(
    env_cfg: EnvConfig,
    seed: int,
    requests: int,
    *,
    time_limit_s: float = 60.0,
    mip_rel_gap: float = 1e-6,
) -> dict[str, Any]:
    """Hindsight MILP bound on the first ``requests`` new requests of an episode.

    The episode runs ``env_cfg`` with grid events off from ``reset(seed=seed)``; the flows
    present after the reset (warm start) keep their capacity until they depart.

    Returns:
        See :func:`solve_window` (``value``, ``upper_bound``, ``offered_value``, ``ratio``,
        ``status``, ``solve_s``, ``n_vars`` …).
    """
    if requests < 1:
        raise ConfigError(f"requests must be ≥ 1, got {requests}")
    w = record_window(env_cfg, seed, requests)
    return solve_window(w, time_limit_s=time_limit_s, mip_rel_gap=mip_rel_gap)


def window_gap(
    policies: list[str | Policy],
    env_cfg: EnvConfig,
    seeds: list[int],
    requests: int,
    *,
    time_limit_s: float = 60.0,
) -> dict[str, Any]:
    """Each policy's value on the same windows against the hindsight bound.

    A policy is compared with the bound of its own env: its ``env_overrides`` (``k_paths``)
    change its candidates and the warm-start placement, so one MILP is solved per distinct
    env config and seed; policies sharing a config share one (copied) warm start.

    Args:
        policies: policy specs (``ksp-ff``, ``cspf-pe`` …) or Policy objects.
        env_cfg: the base env config (grid events are switched off).
        seeds: episode seeds.
        requests: new requests per window.
        time_limit_s: HiGHS limit per MILP (s).

    Returns:
        ``{"requests", "seeds", "bounds", "policies", "summary", "exogenous"}``; per policy
        and seed: ``value``, ``upper_bound`` (of its env), ``gap`` = 1 − value / upper_bound,
        ``certified`` (no pre-emption, so the bound provably holds), ``preempted``,
        ``restorations``, ``trace_matches`` (same new requests as the bound's window).
        ``exogenous``: every policy saw the same new requests for a seed.
    """
    from pcnalloc.baselines.registry import make_policy

    pols = [make_policy(p) if isinstance(p, str) else p for p in policies]
    bounds: dict[tuple[str, int], tuple[Window, dict[str, Any]]] = {}
    envs: dict[tuple[str, str], PowerCommEnv] = {}
    keys: dict[int, list] = {}
    rows: list[dict[str, Any]] = []
    exogenous = True
    for seed in seeds:
        resets: dict[tuple[str, str], dict] = {}
        for pol in pols:
            cfg = window_config(env_cfg, **pol.env_overrides, episode_requests=10**9)
            ck = cfg.model_dump_json()
            rk = (ck, pol.observation)
            if rk not in envs:
                envs[rk] = PowerCommEnv(cfg, observation=pol.observation)
            env = envs[rk]
            if rk not in resets:
                resets[rk] = env.reset(seed=seed)[0]
            w, res = play_window(env, pol, seed, requests, reset=_copy_reset(env, resets[rk]))
            if (ck, seed) not in bounds:
                bounds[(ck, seed)] = (w, solve_window(w, time_limit_s=time_limit_s))
            bw, bres = bounds[(ck, seed)]
            matches = w.key() == bw.key()
            exogenous &= matches and w.key() == keys.setdefault(seed, w.key())
            ub = bres["upper_bound"]
            rows.append(
                {"policy": pol.name, "seed": seed, "k_paths": cfg.k_paths}
                | res
                | {
                    "upper_bound": ub,
                    "bound_value": bres["value"],
                    "gap": round(1.0 - res["value"] / ub, 6) if ub > 0 else 0.0,
                    "certified": res["preempted"] == 0 and matches,
                    "within_bound": res["value"] <= ub + 1e-6,
                    "trace_matches": matches,
                }
            )
    summary: dict[str, dict[str, float]] = {}
    for pol in pols:
        gaps = [r["gap"] for r in rows if r["policy"] == pol.name]
        summary[pol.name] = {"mean_gap": round(float(np.mean(gaps)), 6), "n": len(gaps)}
    return {
        "requests": requests,
        "seeds": list(seeds),
        "bounds": [
            {"seed": s, "k_paths": w.config.k_paths}
            | {k: v for k, v in r.items() if k != "actions"}
            for (_, s), (w, r) in bounds.items()
        ],
        "policies": rows,
        "summary": summary,
        "exogenous": bool(exogenous),
    }
