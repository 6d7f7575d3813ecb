"""PowerCommEnv: event-driven admission and routing of service requests (DESIGN §3–§4).

Each ``step`` decides one arriving request. Before the next request is shown, simulated time
advances through the event queue: departures release capacity, grid faults open emergency
windows with request bursts, fiber cuts interrupt flows (1+1 flows switch to their backup,
the others come back as restoration requests), and repairs return links to service.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable, Iterable
from enum import IntEnum
from typing import Any, ClassVar, TypeAlias

import gymnasium as gym
import networkx as nx
import numpy as np
from numba import njit

from pcnalloc.config import EnvConfig, build
from pcnalloc.envs.decision import LiveEvaluation
from pcnalloc.envs.features import (
    HARD_RULES,
    ZONE_RT_NRT,
    Evaluation,
    evaluate_request,
    priority_table,
)
from pcnalloc.envs.observation import LIM, ObservationBuilder, compact_dim, make_space
from pcnalloc.envs.render import (
    RENDER_FPS,
    RENDER_MODES,
    check_render_mode,
    render_env,
    render_human,
)
from pcnalloc.envs.reward import accept_reward, refused_reward, reject_reward
from pcnalloc.envs.sampling import draw_arrival, make_sampler
from pcnalloc.envs.state import NetworkState
from pcnalloc.errors import ActionError, ConfigError
from pcnalloc.network.builder import cached_network
from pcnalloc.network.model import CommNetwork
from pcnalloc.network.paths import CandidateSet, shared_path_cache
from pcnalloc.traffic.catalog import Catalog, load_catalog
from pcnalloc.traffic.generator import KIND_BURST, KIND_NEW, KIND_RESTORATION, Request, TrafficModel
from pcnalloc.traffic.scenarios import Scenario, load_scenario


class Event(IntEnum):
    """Kinds of events in the simulator's queue; each has one handler (``PowerCommEnv._ON``).

    The values are the order the kinds were first numbered in; the queue orders events by
    time and a sequence number, never by kind.
    """

    ARRIVAL = 0
    """A base request arrives (payload: its class); the next arrival is drawn."""
    DEPART = 1
    """A flow's holding time ends (payload: the flow id)."""
    FAULT = 2
    """A grid fault opens an emergency in the regions at a random link (payload: None for
    the background process, which draws the next fault, or ``"scheduled"``)."""
    EMERG_END = 3
    """An emergency window closes (payload: the regions it opened)."""
    BURST = 4
    """A request of the fault's burst near its link (payload: (link, window end))."""
    CUT = 5
    """A fiber cut (payload: None for the background process, ``"busy"``/``"busiest"`` for a
    scenario's cut at a loaded link, or ``"random"``)."""
    REPAIR = 6
    """A cut link returns to service (payload: the link)."""
    EXTERNAL = 7
    """A request generated outside the env arrives (payload: its :class:`Request`; queued by
    :meth:`PowerCommEnv.schedule_external`)."""


ARRIVAL, DEPART, FAULT, EMERG_END, BURST, CUT, REPAIR, EXTERNAL = Event
Obs: TypeAlias = Any
"""An observation: a ``dict[str, np.ndarray]`` in ``full``/``compact`` mode, the float32
vector in ``flat`` mode. Any, because the mode is chosen when the env is built, not in its
type; the policies' ``act`` reads the mapping."""
OUTCOMES = ("accepted", "rejected", "blocked", "refused")
"""accepted; rejected although a valid action existed; blocked (no valid action existed);
refused (the policy sent a masked action — nothing is changed)."""


@njit(cache=True, nogil=True)
def _valid_flags(mask_A, needs_A):  # pragma: no cover - compiled
    """(some non-reject action is valid, one is valid without pre-emption), in one pass."""
    any_valid = False
    for a in range(mask_A.shape[0] - 1):
        if mask_A[a]:
            any_valid = True
            if not needs_A[a]:
                return True, True
    return any_valid, False


def _pack_sets(
    sets: list[CandidateSet], E: int, N: int
) -> tuple[
    np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray
]:
    """Candidate sets stacked into (set, slot, hop) arrays, padded with the sentinels (link
    E, site N) as each set already is, so a walk that stops at the sentinel sees the same
    routes."""
    U, K = len(sets), sets[0].present_K.shape[0]
    H = max(cs.links_KH.shape[1] for cs in sets)
    B = max(cs.backup_links_KB.shape[1] for cs in sets)
    links = np.full((U, K, H), E, dtype=np.int64)
    nodes = np.full((U, K, H + 1), N, dtype=np.int64)
    blinks = np.full((U, K, B), E, dtype=np.int64)
    bnodes = np.full((U, K, B + 1), N, dtype=np.int64)
    present = np.zeros((U, K), dtype=np.bool_)
    has_b = np.zeros((U, K), dtype=np.bool_)
    prop = np.zeros((U, K))
    bprop = np.zeros((U, K))
    for u, cs in enumerate(sets):
        h, b = cs.links_KH.shape[1], cs.backup_links_KB.shape[1]
        links[u, :, :h] = cs.links_KH
        nodes[u, :, : h + 1] = cs.nodes_KN
        blinks[u, :, :b] = cs.backup_links_KB
        bnodes[u, :, : b + 1] = cs.backup_nodes_KN
        present[u] = cs.present_K
        has_b[u] = cs.has_backup_K
        prop[u] = cs.prop_ms_K
        bprop[u] = cs.backup_prop_ms_K
    return present, links, nodes, prop, has_b, blinks, bnodes, bprop


@njit(cache=True, nogil=True)
def _warm_place(  # noqa: C901 - one numba pass placing the flows in order
    cap_ES,
    used_ES,
    used_ESP,
    failed_E,
    trust_N,
    set_of,
    cls_of,
    prio_of,
    present_UK,
    links_UKH,
    nodes_UKN,
    prop_UK,
    has_b_UK,
    blinks_UKB,
    bnodes_UKN,
    bprop_UK,
    slice_C,
    bound_C,
    bw_C,
    grant_CL,
    protected_C,
    needs_trust_C,
    trust_thr,
    q0,
    ucap,
    sentinel,
    slot_out,
    kbps_out,
):  # pragma: no cover - compiled
    """Place warm-start flows in order: each on its first action valid without pre-emption
    (``slot_out`` = k·L + l, or -1), booked on the pools before the next flow is placed.

    The validity test is the evaluation kernel's (:mod:`pcnalloc.envs.features`) for an
    action that fits without pre-emption — route present and intact, grant > 0, residual
    ≥ kb/s, latency ≤ bound, a backup where 1+1 is required, trust where it is required —
    with the latency summed in the kernel's order, so the choice is the same bit for bit
    (tests/envs/test_warm_start.py compares with the reference warm start).
    """
    K = present_UK.shape[1]
    L = grant_CL.shape[1]
    big = np.int64(1) << 60
    for i in range(set_of.shape[0]):
        u = set_of[i]
        c = cls_of[i]
        s = slice_C[c]
        slot_out[i] = -1
        for k in range(K):
            lat_p = prop_UK[u, k]
            lat_b = bprop_UK[u, k]
            resid = big
            failed = False
            for part in range(2):
                if part == 1 and not has_b_UK[u, k]:
                    break
                H = links_UKH.shape[2] if part == 0 else blinks_UKB.shape[2]
                for h in range(H):
                    e = links_UKH[u, k, h] if part == 0 else blinks_UKB[u, k, h]
                    if e == sentinel:
                        break
                    cp = cap_ES[e, s]
                    us = used_ES[e, s]
                    frac = us / cp
                    uq = min(frac, ucap)
                    if part == 0:
                        lat_p += q0 * uq / (1.0 - uq)
                    else:
                        lat_b += q0 * uq / (1.0 - uq)
                    if failed_E[e]:
                        failed = True
                        free = 0
                    else:
                        free = cp - us
                    resid = min(resid, free)
            trust = 1.0
            for h in range(nodes_UKN.shape[2]):
                trust = min(trust, trust_N[nodes_UKN[u, k, h]])
            if has_b_UK[u, k]:
                for h in range(bnodes_UKN.shape[2]):
                    trust = min(trust, trust_N[bnodes_UKN[u, k, h]])
            latency = max(lat_p, lat_b) if has_b_UK[u, k] else lat_p
            if not present_UK[u, k] or failed:
                continue
            if latency > bound_C[c] or (protected_C[c] and not has_b_UK[u, k]):
                continue
            if needs_trust_C[c] and trust < trust_thr:
                continue
            for l in range(L):  # noqa: E741 - the grant slot, as in the kernel
                g = grant_CL[c, l]
                kb = np.int64(np.round(bw_C[c] * g))
                if g <= 0.0 or resid < kb:
                    continue
                slot_out[i] = k * L + l
                kbps_out[i] = kb
                break
            if slot_out[i] >= 0:
                break
        if slot_out[i] < 0:
            continue
        k = slot_out[i] // L
        kb = kbps_out[i]
        p = prio_of[i]
        for part in range(2):
            if part == 1 and not has_b_UK[u, k]:
                break
            H = links_UKH.shape[2] if part == 0 else blinks_UKB.shape[2]
            for h in range(H):
                e = links_UKH[u, k, h] if part == 0 else blinks_UKB[u, k, h]
                if e == sentinel:
                    break
                # a link listed twice is booked once (as NetworkState.admit books)
                seen = False
                for part2 in range(part + 1):
                    H2 = h if part2 == part else links_UKH.shape[2]
                    for h2 in range(H2):
                        e2 = links_UKH[u, k, h2] if part2 == 0 else blinks_UKB[u, k, h2]
                        if e2 == sentinel:
                            break
                        if e2 == e:
                            seen = True
                if not seen:
                    used_ES[e, s] += kb
                    used_ESP[e, s, p] += kb


class PowerCommEnv(gym.Env):
    """Gymnasium environment ``pcnalloc/PowerComm-v0``.

    Args:
        config: an :class:`EnvConfig`, a nested mapping of overrides, or None for defaults.
        observation: ``full`` (graph + history + request + candidates + mask + compact),
            ``compact`` (no graph/history: what heuristics and edge students read; faster) or
            ``flat`` (the compact vector alone as a ``Box``, for MLP policies; it holds the
            request, every action's features — the mask among them — and summary statistics;
            the mask is also ``info["action_mask"]`` and :meth:`action_masks`).
        network: a prebuilt network to reuse (must match ``config.network``).
        catalog: a preloaded catalog to reuse.
        render_mode: None, ``ansi`` (text summary of request, candidates and links) or
            ``rgb_array`` (utilisation map, see :mod:`pcnalloc.envs.render`).

    Action: ``Discrete(K·L + 1)``; a = k·L + l picks candidate path k with grant slot l; the
    last action rejects. Masked actions are refused without touching state.
    """

    # gymnasium annotates metadata as an instance attribute; it is one table per class
    metadata: ClassVar[dict[str, Any]] = {  # type: ignore[misc]
        "render_modes": list(RENDER_MODES),
        "render_fps": RENDER_FPS,
    }

    def __init__(
        self,
        config: EnvConfig | dict[str, Any] | None = None,
        *,
        observation: str = "full",
        network: CommNetwork | None = None,
        catalog: Catalog | None = None,
        render_mode: str | None = None,
    ) -> None:
        self.render_mode = check_render_mode(render_mode)
        self._canvas: Any = None  # the rgb_array frame, built on first render (render.py)
        if config is None:
            config = EnvConfig()
        elif isinstance(config, dict):
            config = build(EnvConfig, config, "environment config")
        if observation not in ("full", "compact", "flat"):
            raise ConfigError(
                f"unknown observation mode {observation!r}; accepted: full, compact, flat"
            )
        self.scenario: Scenario | None = None
        if config.traffic.scenario is not None:
            # The family's event settings replace the per-hour defaults (one EnvConfig holds
            # what actually runs, so reports and library metadata say it).
            self.scenario = load_scenario(config.traffic.scenario)
            events = config.traffic.events.model_copy(update=dict(self.scenario.events))
            config = config.model_copy(
                update={"traffic": config.traffic.model_copy(update={"events": events})}
            )
        self.cfg: EnvConfig = config
        self.net = network or cached_network(config.network.case, config.network)
        self.catalog = catalog or load_catalog(
            config.traffic.catalog, max_levels=config.grant_levels
        )
        self.traffic = TrafficModel(self.net, self.catalog, config.traffic)
        if self.scenario is not None and self.scenario.burst_weights is not None:
            self.traffic.set_burst_weights(self.scenario.burst_weights)
        self.paths = shared_path_cache(self.net, config.network.path_cache or config.route_pool)
        self.state = NetworkState(self.net)
        self.obs_builder = ObservationBuilder(self.state, self.catalog, config, observation)
        self.observation_mode = observation
        self.action_space = gym.spaces.Discrete(config.n_actions)
        self.observation_space: gym.spaces.Space = make_space(
            self.net.n_sites, self.net.n_links, self.catalog, config, observation
        )
        if observation == "flat":
            dim = compact_dim(self.catalog, config)
            self.observation_space = gym.spaces.Box(-LIM, LIM, shape=(dim,), dtype=np.float32)
        self.reject_action = config.n_actions - 1
        self._near_cache: dict[int, np.ndarray] = {}
        self._flow_id = -1
        self._n_requests = 0
        self._req: Request | None = None
        self._evaluated = False
        self._ev_fixed: Evaluation | None = None
        """The evaluation :attr:`current_evaluation` returns when it is not built lazily
        from :attr:`_live` (rule files: the engine's restricted copy)."""
        self._live = LiveEvaluation(self.catalog, config)
        self._sampler: Any = None
        """The compiled base-arrival draws (:mod:`pcnalloc.envs.sampling`) on
        :attr:`_sampler_rng`, rebuilt when :attr:`np_random` is replaced (``reset(seed=…)``)."""
        self._sampler_rng: np.random.Generator | None = None
        self._obs_mask: np.ndarray | None = None
        self._obs_feats: np.ndarray | None = None
        self._cs: CandidateSet | None = None
        self.emergency_R = np.zeros(self.net.n_regions, dtype=np.int64)
        from pcnalloc.rules.engine import build_engine

        self.engine = build_engine(
            config.rules, self.catalog, trust_threshold=config.trust_threshold
        )
        self._prio_table = priority_table(self.engine, config)
        self._prio_2C: list[list[int]] = self._prio_table.astype(np.int64).tolist()
        self._region_N: list[int] = self.net.site_region.astype(np.int64).tolist()
        from pcnalloc.envs.candidates import CandidatePool

        self.candidate_pool = CandidatePool(self.catalog, config)
        self._pool_cs: CandidateSet | None = None
        # Per-class constants as Python scalars: the decision path reads them every step and
        # a numpy scalar read costs more than the arithmetic it feeds (same values, exactly).
        cat = self.catalog
        self._value_C: list[float] = cat.value_C.astype(float).tolist()
        self._bound_C: list[float] = cat.max_latency_ms_C.astype(float).tolist()
        self._protected_C: list[bool] = cat.protected_C.astype(bool).tolist()
        self._slice_C: list[int] = cat.slice_C.astype(np.int64).tolist()

    @property
    def _ev(self) -> Evaluation | None:
        """The evaluation of the request on show as the env reads it: the live buffers of
        :attr:`_live` (overwritten by the next evaluation), or the rule-restricted one; None
        before the first request."""
        if self._ev_fixed is not None:
            return self._ev_fixed
        return self._live.ev if self._evaluated else None

    # ------------------------------------------------------------------ events
    def _push(self, t: float, kind: int, payload: Any = None) -> None:
        """Queue an event; ``kind`` is an :class:`Event` (or a subclass's own kind, an int)."""
        self._seq += 1
        heapq.heappush(self._events, (t, self._seq, kind, payload))

    def _exp(self, mean: float) -> float:
        return float(self.np_random.exponential(mean))

    def _schedule_process(self, kind: int, per_hour: float) -> None:
        if per_hour > 0:
            self._push(self.now + self._exp(3600.0 / per_hour), kind)

    def _near(self, link: int) -> np.ndarray:
        if link not in self._near_cache:
            hops = self.cfg.traffic.events.burst_hops
            sites: set[int] = set()
            for end in self.net.link_ends[link]:
                sites |= set(
                    nx.single_source_shortest_path_length(self.net.graph, int(end), cutoff=hops)
                )
            sites -= set(self.net.control_centers)
            self._near_cache[link] = np.array(sorted(sites), dtype=np.int64)
        return self._near_cache[link]

    def _new_request(
        self,
        t: float,
        cls: int,
        kind: int,
        near: np.ndarray | None = None,
        holding: float | None = None,
        ends: tuple[int, int] | None = None,
        full_holding: float = 0.0,
    ) -> None:
        src, dst = ends if ends is not None else self.traffic.endpoints(self.np_random, cls, near)
        h = holding if holding is not None else self.traffic.holding(self.np_random, cls)
        n = self._n_requests
        self._pending.append(Request(n, t, cls, src, dst, h, kind, full_holding))
        self._n_requests = n + 1

    def _handle(self, t: float, kind: int, payload: Any) -> None:
        """Run one event at time ``t`` through its kind's handler (:attr:`_ON`)."""
        self._ON[kind](self, t, payload)

    def _on_arrival(self, t: float, cls: int) -> None:
        self._new_request(t, cls, KIND_NEW)
        nt, nc = self.traffic.next_arrival(self.np_random, t)
        self._push(nt, ARRIVAL, nc)

    def _on_depart(self, t: float, flow_id: int) -> None:
        self.state.release(flow_id)

    def _on_fault(self, t: float, payload: str | None) -> None:
        ev_cfg = self.cfg.traffic.events
        link = int(self.np_random.integers(self.net.n_links))
        regions = np.unique(self.net.site_region[self.net.link_ends[link]])
        self.emergency_R[regions] += 1
        self.counters["faults"] += 1
        end = t + ev_cfg.emergency_minutes * 60.0
        self._push(end, EMERG_END, regions)
        if ev_cfg.burst_rate_per_s > 0 and self.traffic.burst_p is not None:
            self._push(t + self._exp(1.0 / ev_cfg.burst_rate_per_s), BURST, (link, end))
        if payload is None:  # the background process schedules its next fault
            self._schedule_process(FAULT, ev_cfg.faults_per_hour)

    def _on_emergency_end(self, t: float, regions: np.ndarray) -> None:
        self.emergency_R[regions] -= 1

    def _on_burst(self, t: float, payload: tuple[int, float]) -> None:
        link, end = payload
        if t < end:
            cls = self.traffic.burst_class(self.np_random)
            if cls is not None:
                self._new_request(t, cls, KIND_BURST, near=self._near(link))
            rate = self.cfg.traffic.events.burst_rate_per_s
            self._push(t + self._exp(1.0 / rate), BURST, payload)

    def _on_cut(self, t: float, payload: str | None) -> None:
        alive = np.flatnonzero(~self.state.failed_E1[:-1])
        if alive.size:
            if payload in ("busy", "busiest"):  # a scheduled cut at a busy link
                n_flows = np.array([len(self.state.on_link[int(e)]) for e in alive])
                order = alive[np.argsort(-n_flows, kind="stable")]
                if payload == "busiest" or order.size < 3:
                    top = order[:1]
                else:
                    share = self.scenario.busy_share if self.scenario is not None else 0.3
                    top = order[1 : max(2, round(share * order.size))]
                link = int(top[self.np_random.integers(top.size)])
            else:
                link = int(alive[self.np_random.integers(alive.size)])
            self._cut(link, t)
        if payload is None:  # the background process schedules its next cut
            self._schedule_process(CUT, self.cfg.traffic.events.fiber_cuts_per_hour)

    def _on_repair(self, t: float, link: int) -> None:
        self.state.set_failed(link, False)

    def _on_external(self, t: float, req: Request) -> None:
        self._external_ids.add(self._n_requests)
        self._new_request(t, req.cls, KIND_NEW, holding=req.holding_s, ends=(req.src, req.dst))

    _ON: ClassVar[dict[int, Callable[[PowerCommEnv, float, Any], None]]] = {
        Event.ARRIVAL: _on_arrival,
        Event.DEPART: _on_depart,
        Event.FAULT: _on_fault,
        Event.EMERG_END: _on_emergency_end,
        Event.BURST: _on_burst,
        Event.CUT: _on_cut,
        Event.REPAIR: _on_repair,
        Event.EXTERNAL: _on_external,
    }
    """Event kind → handler: one method per kind, so a new kind is one entry and one method."""

    def _cut(self, link: int, t: float) -> None:
        st = self.state
        st.set_failed(link, True)
        self.counters["fiber_cuts"] += 1
        self._push(t + self._exp(self.cfg.traffic.events.repair_minutes * 60.0), REPAIR, link)
        for f in st.flows_on(link):  # in admission (id) order
            if f.backup_links.size:
                prim_ok = not st.failed_E1[f.links].any()
                back_ok = not st.failed_E1[f.backup_links].any()
                if prim_ok or back_ok:
                    # 1+1: the receiver selects the surviving copy; nothing is re-signalled.
                    self.counters["protection_switchovers"] += 1
                    continue
            st.release(f.id)
            self.counters["interrupted"] += 1
            remaining = f.end_s - t
            if remaining > 0:
                self._new_request(
                    t,
                    f.cls,
                    KIND_RESTORATION,
                    holding=remaining,
                    ends=(f.src, f.dst),
                    full_holding=f.full_holding_s,
                )

    def refresh(self) -> dict:
        """Re-evaluate the request on show after an outside change of state (site trust,
        a what-if) and return its new observation."""
        self._evaluate_current()
        return self._observe()

    def cut_link(self, link: int) -> None:
        """Cut ``link`` now (a what-if or a test): flows switch over or are interrupted as for
        a random cut, and the request on show is re-evaluated on the cut topology."""
        if not 0 <= link < self.net.n_links:
            raise ActionError(link, self.net.n_links)
        self._cut(int(link), self.now)
        if self._req is not None:
            self._evaluate_current()

    def _advance(self) -> None:
        """Run events until a request is pending; set the current request and evaluation.

        Base arrivals and departures, the most frequent events, are handled here without
        going through :meth:`_handle` (same draws, same order); a base arrival's draws are
        one compiled call (:func:`~pcnalloc.envs.sampling.draw_arrival`) on the same
        generator.
        """
        rng = self.np_random
        if rng is not self._sampler_rng:
            self._sampler = make_sampler(rng, self.traffic)
            self._sampler_rng = rng
        sampler = self._sampler
        pending, events, pop, push = self._pending, self._events, heapq.heappop, heapq.heappush
        while not pending:
            t, _, kind, payload = pop(events)
            self.now = t
            if kind == ARRIVAL:
                src, dst, h, nt, nc = draw_arrival(sampler, t, payload)
                n = self._n_requests
                pending.append(Request(n, t, payload, src, dst, h, KIND_NEW, 0.0))
                self._n_requests = n + 1
                self._seq += 1
                push(events, (nt, self._seq, ARRIVAL, nc))
            elif kind == DEPART:
                self.state.release(payload)
            else:
                self._handle(t, kind, payload)
        req = self._req = pending.popleft()
        if req.time_s > self.now:
            self.now = req.time_s
        self._evaluate_current()

    def __getstate__(self) -> dict[str, Any]:
        """Copies and pickles leave the compiled sampler behind (a jitclass holding the
        generator); the copy builds its own on its copied generator at its next step."""
        state = self.__dict__.copy()
        state["_sampler"] = state["_sampler_rng"] = None
        return state

    def _evaluate_current(self) -> None:
        """Evaluate the request on show: its candidates, setup priority and every action.

        Without a rule file the kernel writes into :attr:`_live`'s buffers (the full
        :class:`Evaluation` is built only if :attr:`current_evaluation` is read); with one,
        :func:`~pcnalloc.envs.features.evaluate_request` lets the engine tighten the mask.
        """
        req = self._req
        assert req is not None
        st = self.state
        c = req.cls
        cs = self._cs = self._pool_cs = self.paths.candidates(
            req.src,
            req.dst,
            self.cfg.route_pool,
            protected=self._protected_C[c],
            failed_E1=st.failed_E1,
            failed_key=st.failed_key,
        )
        if self.cfg.rules is not None:
            if self.candidate_pool.active:
                em = bool(self.emergency_R[self._region_N[req.src]] > 0)
                cs = self._cs = self.candidate_pool.choose(st, cs, c, self._prio_2C[em][c])
            ev, self._prio, _, _ = evaluate_request(
                st,
                cs,
                req,
                self.catalog,
                self.cfg,
                engine=self.engine,
                prio_table_2C=self._prio_table,
                emergency_R=self.emergency_R,
            )
            self._ev_fixed = ev
            self._evaluated = True
            self._obs_mask, self._obs_feats = ev.mask_A, ev.feats_AF
            return
        # the setup priority as evaluate_request gives it (the emergency override by region)
        prio = self._prio = self._prio_2C[bool(self.emergency_R[self._region_N[req.src]] > 0)][c]
        if self.candidate_pool.active:
            cs = self._cs = self.candidate_pool.choose(st, cs, c, prio)
        live = self._live
        live.run(st, cs, c, prio)
        self._ev_fixed = None
        self._evaluated = True
        self._obs_mask, self._obs_feats = live.mask_A, live.feats_AF

    # ------------------------------------------------------------------ warm start
    def _warm_start(self) -> None:
        """Stationary M/G/∞ population: Poisson(λ·h) flows per class with exponential residual
        holding, each placed on its first action (path-major, full grant first) that is valid
        without pre-emption (not counted in metrics).

        The draws come first, in the order :meth:`_warm_start_reference` makes them (they
        never depended on the state); one compiled pass then chooses each flow's action in
        order on a copy of the pools; the flows are admitted through
        :meth:`NetworkState.admit` and their departures scheduled in the same order. Same
        flows, ids, pools and events as the reference, which still runs when a rule file
        may tighten the mask.
        """
        if self.cfg.rules is not None:
            self._warm_start_reference()
            return
        rng, traffic, st = self.np_random, self.traffic, self.state
        counts = rng.poisson(traffic.mean_concurrent_flows() * traffic.profile(self.now))
        order = np.repeat(np.arange(self.catalog.n_classes), counts)
        rng.shuffle(order)
        cls_l = order.tolist()
        n = len(cls_l)
        if n == 0:
            return
        K = self.cfg.k_paths
        cands, endpoints, holding = self.paths.candidates, traffic.endpoints, traffic.holding
        failed_E1, failed_key, protected_C = st.failed_E1, st.failed_key, self._protected_C
        set_l: list[int] = []
        holding_l: list[float] = []
        ends: list[tuple[int, int]] = []
        sets: list[CandidateSet] = []
        index: dict[int, int] = {}
        for c in cls_l:
            src, dst = endpoints(rng, c)
            holding_l.append(holding(rng, c))
            ends.append((src, dst))
            cs = cands(
                src, dst, K, protected=protected_C[c], failed_E1=failed_E1, failed_key=failed_key
            )
            u = index.get(id(cs))
            if u is None:
                u = index[id(cs)] = len(sets)
                sets.append(cs)
            set_l.append(u)
        set_of = np.asarray(set_l, dtype=np.int64)
        packed = _pack_sets(sets, self.net.n_links, self.net.n_sites)
        cls_of = np.asarray(cls_l, dtype=np.int64)
        # the setup priority as evaluate_request gives it (no emergency is open at reset)
        region_emergency = self.emergency_R[self.net.site_region[[e[0] for e in ends]]] > 0
        prio_of = self._prio_table[region_emergency.astype(np.int64), cls_of].astype(np.int64)
        slot_of = np.empty(n, dtype=np.int64)
        kbps_of = np.empty(n, dtype=np.int64)
        cat, ncfg = self.catalog, self.cfg.network
        L = self.cfg.grant_levels
        _warm_place(  # on copies of the pools: the admissions below book the real ones
            st.cap_ES1,
            st.used_ES1.copy(),
            st.used_ESP1.copy(),
            st.failed_E1,
            st.trust_N1,
            set_of,
            cls_of,
            prio_of,
            *packed,
            cat.slice_C.astype(np.int64),
            cat.max_latency_ms_C.astype(np.float64),
            cat.bandwidth_kbps_C.astype(np.float64),
            np.ascontiguousarray(cat.grant_CL[:, :L], dtype=np.float64),
            cat.protected_C.astype(np.bool_),
            cat.zone_C < ZONE_RT_NRT,
            float(self.cfg.trust_threshold),
            ncfg.queue_q0_ms,
            ncfg.util_cap,
            st.cap_ES1.shape[0] - 1,
            slot_of,
            kbps_of,
        )
        grant_CL = cat.grant_CL[:, :L].astype(np.float64).tolist()
        value_C, slice_C, now = self._value_C, self._slice_C, self.now
        admit, push = st.admit, self._push
        slot_l, kbps_l, prio_l = slot_of.tolist(), kbps_of.tolist(), prio_of.tolist()
        for i in np.flatnonzero(slot_of >= 0).tolist():
            a = slot_l[i]
            c = cls_l[i]
            h = holding_l[i]
            links, backup = sets[set_l[i]].route(a // L)
            # what _admit gives a flow: value · grant · 1 (a fresh request's whole value)
            value = value_C[c] * grant_CL[c][a % L] * 1.0
            src, dst = ends[i]
            flow = admit(
                cls=c,
                slice_=slice_C[c],
                priority=prio_l[i],
                kbps=kbps_l[i],
                links=links,
                backup_links=backup,
                end_s=now + h,
                src=src,
                dst=dst,
                value=value,
                counted=False,
                full_holding_s=h,
            )
            self._flow_id = flow.id
            push(flow.end_s, DEPART, flow.id)

    def _warm_start_reference(self) -> None:
        """The warm start as first written: each flow evaluated like a request (the mask,
        after rules) and admitted through :meth:`_admit`; the definition of
        :meth:`_warm_start`, which must reproduce it exactly."""
        counts = self.np_random.poisson(
            self.traffic.mean_concurrent_flows() * self.traffic.profile(self.now)
        )
        order = np.repeat(np.arange(self.catalog.n_classes), counts)
        self.np_random.shuffle(order)
        for c in order:
            src, dst = self.traffic.endpoints(self.np_random, int(c))
            self._req = Request(
                id=-1,
                time_s=self.now,
                cls=int(c),
                src=src,
                dst=dst,
                holding_s=self.traffic.holding(self.np_random, int(c)),
            )
            self._evaluate_current()
            ev = self._ev
            assert ev is not None
            valid = np.flatnonzero(ev.mask_A[:-1] & ~ev.needs_preempt_A[:-1])
            if valid.size:
                self._admit(int(valid[0]), counted=False)
        self._req = None

    # ------------------------------------------------------------------ gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Obs, dict[str, Any]]:
        """Start an episode: empty (or warm-started) network, the first request on show.

        Args:
            seed: seeds :attr:`np_random` (``super().reset(seed=seed)``); None keeps the
                generator running.
            options: unused (Gymnasium's signature).

        Returns:
            The first observation and ``info`` (``request``, ``time_s``; the mask in
            ``flat`` mode).
        """
        super().reset(seed=seed)
        self.paths.maybe_flush()  # store the routes found so far (throttled; see PathCache)
        self.state.reset()
        self.obs_builder.history.reset()
        self.emergency_R[:] = 0
        self._events: list = []
        self._seq = 0
        self._pending: deque[Request] = deque()
        self._n_requests = 0
        self._external_ids: set[int] = set()
        self._steps = 0
        self.counters = {
            k: 0
            for k in (
                "faults",
                "fiber_cuts",
                "protection_switchovers",
                "interrupted",
                "preempted",
                "refused",
            )
        }
        self.now = self.cfg.traffic.start_hour * 3600.0
        if self.cfg.traffic.warm_start:
            self._warm_start()
        t, c = self.traffic.next_arrival(self.np_random, self.now)
        self._push(t, ARRIVAL, c)
        ev_cfg = self.cfg.traffic.events
        self._schedule_process(FAULT, ev_cfg.faults_per_hour)
        self._schedule_process(CUT, ev_cfg.fiber_cuts_per_hour)
        self._schedule_scenario()
        self._advance()
        info: dict[str, Any] = {"request": self._req, "time_s": self.now}
        render_human(self)  # the window of render_mode='human'; else nothing
        return self._observe(), self._with_mask(info)

    def _schedule_scenario(self) -> None:
        """Place the family's faults and cuts inside this episode's window (seeded)."""
        sc = self.scenario
        if sc is None:
            return
        span = self.traffic.expected_span_s(self.cfg.episode_requests, self.now)
        lo, hi = sc.window
        for kind, n, payload in (
            (FAULT, sc.faults, "scheduled"),
            (CUT, sc.fiber_cuts, sc.cut_target),
        ):
            for u in np.sort(self.np_random.uniform(lo, hi, size=n)):
                self._push(self.now + float(u) * span, kind, payload)

    def _observe(self) -> Any:
        assert self._req is not None and self._obs_feats is not None
        assert self._obs_mask is not None
        obs = self.obs_builder.build_arrays(
            self._req, self._obs_feats, self._obs_mask, self.emergency_R
        )
        return obs["compact"] if self.observation_mode == "flat" else obs

    def _with_mask(self, info: dict[str, Any]) -> dict[str, Any]:
        """In ``flat`` mode, add the mask of the request now on show to ``info``."""
        if self.observation_mode == "flat":
            info["action_mask"] = self.action_masks()
        return info

    def _admit(self, action: int, *, counted: bool) -> tuple[list, float]:
        req, ev, cs = self._req, self._ev, self._cs
        assert req is not None and ev is not None and cs is not None
        c = req.cls
        k = action // self.cfg.grant_levels
        links, backup = cs.route(k)
        s = self._slice_C[c]
        prio = self._prio
        kbps = int(ev.kbps_A[action])
        preempted: list = []
        if ev.needs_preempt_A[action]:
            plan = self.state.preemption_plan(np.concatenate([links, backup]), s, prio, kbps)
            assert plan is not None, "mask allowed a pre-emption that cannot free enough"
            for fid in plan:
                f = self.state.release(fid)
                if f is not None:
                    preempted.append(f)
                    self._new_request(
                        self.now,
                        f.cls,
                        KIND_RESTORATION,
                        holding=max(f.end_s - self.now, 1.0),
                        ends=(f.src, f.dst),
                        full_holding=f.full_holding_s,
                    )
            self.counters["preempted"] += len(preempted)
        # what the flow earns: value · grant for the share of its service still to run
        value = float(self.catalog.value_C[c] * ev.grant_A[action] * req.value_fraction)
        flow = self.state.admit(
            cls=c,
            slice_=s,
            priority=prio,
            kbps=kbps,
            links=links,
            backup_links=backup,
            end_s=self.now + req.holding_s,
            src=req.src,
            dst=req.dst,
            value=value,
            counted=counted,
            full_holding_s=req.full_holding_s if req.full_holding_s > 0 else req.holding_s,
        )
        self._flow_id = flow.id
        self._push(flow.end_s, DEPART, flow.id)
        return preempted, float(ev.latency_ms_K[k])

    def step(self, action: int | np.integer) -> tuple[Obs, float, bool, bool, dict[str, Any]]:
        """Decide the request on show, then run events until the next one arrives.

        Args:
            action: ``k·L + l`` (candidate k, grant slot l) or ``K·L`` to reject; anything
                else raises :class:`~pcnalloc.errors.ActionError`, a masked action is refused.

        Returns:
            ``(observation, reward, terminated, truncated, info)``: the reward from
            :mod:`pcnalloc.envs.reward`; never terminated; truncated after
            ``episode_requests`` decisions; ``info`` describes the decision (``outcome``,
            ``grant``, ``kbps``, ``latency_ms``, pre-emptions …).
        """
        n_actions = self.reject_action + 1
        try:
            a = int(action)
        except (TypeError, ValueError):
            raise ActionError(action, n_actions) from None
        if a != action or not 0 <= a < n_actions:
            raise ActionError(action, n_actions)
        req, ev = self._req, self._ev
        assert req is not None and ev is not None, "call reset() before step()"
        rw = self.cfg.reward
        c = req.cls
        value = self._value_C[c]
        frac = req.value_fraction
        offered = value * frac
        bound = self._bound_C[c]
        any_valid, plain_valid = _valid_flags(ev.mask_A, ev.needs_preempt_A)
        info: dict[str, Any] = {
            "cls": c,
            "kind": req.kind,
            "value": value,
            "offered_value": offered,
            "earned_value": 0.0,
            "plain_valid_existed": plain_valid,
            "src": req.src,
            "dst": req.dst,
            "valid_existed": any_valid,
            "holding_s": req.holding_s,
            "grant": 0.0,
            "kbps": 0,
            "hops": 0,
            "latency_ms": 0.0,
            "bound_ms": bound,
            "preempted_value": 0.0,
            "preempted": 0,
            "time_s": self.now,
        }
        if a == self.reject_action:
            outcome = "rejected" if any_valid else "blocked"
            # the penalty only where an admission without pre-emption was possible: rejecting
            # rather than displacing another flow is never penalised
            reward = reject_reward(rw, offered_value=offered, plain_valid=plain_valid)
        elif not ev.mask_A[a]:
            outcome = "refused"
            self.counters["refused"] += 1
            info["violated"] = [HARD_RULES[i] for i in np.flatnonzero(ev.hard_AR[a])]
            reward = refused_reward(rw, value=value)
        else:
            outcome = "accepted"
            k = a // self.cfg.grant_levels
            preempted, latency = self._admit(a, counted=True)
            g = float(ev.grant_A[a])
            hops = int(ev.hops_K[k])
            pre_val = float(sum(f.value for f in preempted))
            kbps = int(ev.kbps_A[a])
            info.update(
                grant=g,
                kbps=kbps,
                hops=hops,
                latency_ms=latency,
                preempted_value=pre_val,
                preempted=len(preempted),
                earned_value=offered * g,
                flow_id=self._flow_id,
                preempted_ids=[int(f.id) for f in preempted],
            )
            reward = accept_reward(
                rw,
                offered_value=offered,
                grant=g,
                kbps=kbps,
                hops=hops,
                util_after=float(ev.util_after_A[a]),
                latency_ms=latency,
                bound_ms=bound,
                preempted_value=pre_val,
            )
        info["outcome"] = outcome
        self.obs_builder.history.push(req, info["grant"], outcome == "accepted")
        self._steps += 1
        truncated = self._steps >= self.cfg.episode_requests
        self._advance()
        render_human(self)  # the window of render_mode='human'; else nothing
        return self._observe(), float(reward), False, truncated, self._with_mask(info)

    def render(self) -> Any:
        """``ansi``: a text summary; ``rgb_array``: the utilisation map, (H, W, 3) uint8."""
        return render_env(self)

    # ------------------------------------------------------------------ external requests
    def schedule_external(
        self, requests: Iterable[Request], *, origin_s: float | None = None
    ) -> int:
        """Queue requests generated outside the env as arrivals of the current episode.

        The injection point for another layer's traffic (e.g. what an access substation
        delivers, :mod:`pcnalloc.twolayer.coupling`). Each request arrives at
        ``origin_s + time_s`` with its own class, ends and holding time, next to the env's
        own traffic, draws nothing from :attr:`np_random`, and is decided like a new request
        (``KIND_NEW``); the env numbers it when it is shown (its ``id`` is ignored).
        :attr:`current_is_external` tells such a request on show. ``reset`` drops what was
        scheduled, so call this after each ``reset``.

        Args:
            requests: the requests; ``time_s`` in seconds after ``origin_s``.
            origin_s: simulated time the ``time_s`` count from (default: :attr:`now`, the
                time of the request on show).

        Returns:
            How many requests were queued.

        Raises:
            ConfigError: a request with an unknown class or site, ``src == dst``, a
                holding time that is not positive and finite, or an arrival before
                :attr:`now` (nothing is queued then).
        """
        t0 = self.now if origin_s is None else float(origin_s)
        reqs = list(requests)
        n_c, n_s = self.catalog.n_classes, self.net.n_sites
        for r in reqs:
            t = t0 + float(r.time_s)
            ok = (
                0 <= r.cls < n_c
                and 0 <= r.src < n_s
                and 0 <= r.dst < n_s
                and r.src != r.dst
                and 0.0 < r.holding_s < math.inf
                and self.now <= t < math.inf
            )
            if not ok:
                raise ConfigError(
                    f"external request {r!r} at t = {t:.6g} s is not admissible here; "
                    f"accepted: class in 0..{n_c - 1}, src != dst in 0..{n_s - 1}, "
                    f"holding_s > 0, arrival at or after now = {self.now:.6g} s"
                )
        for r in reqs:
            self._push(t0 + float(r.time_s), EXTERNAL, r)
        return len(reqs)

    @property
    def current_is_external(self) -> bool:
        """True when the request on show was queued by :meth:`schedule_external`."""
        return self._req is not None and self._req.id in self._external_ids

    # ------------------------------------------------------------------ helpers for policies
    @property
    def current_request(self) -> Request:
        assert self._req is not None
        return self._req

    @property
    def current_candidates(self) -> CandidateSet:
        """The K candidate routes of the current request."""
        assert self._cs is not None
        return self._cs

    @property
    def current_route_pool(self) -> CandidateSet:
        """Every route the current request could have been offered (``cfg.route_pool`` of
        them; the K candidates when no larger pool is configured): the hindsight bound's
        routes, so it covers whichever K the state chose."""
        assert self._pool_cs is not None
        return self._pool_cs

    @property
    def current_priority(self) -> int:
        """Setup priority of the current request (its class's, or the emergency override)."""
        return self._prio

    @property
    def current_evaluation(self) -> Evaluation:
        """The evaluation of the request on show, as
        :func:`~pcnalloc.envs.features.evaluate_request` returns it (its own arrays; the mask
        and candidate table are the observation's)."""
        assert self._ev is not None, "call reset() first"
        ev = self._ev_fixed
        return ev if ev is not None else self._live.snapshot()

    def preemption_cost(self, action: int) -> float | None:
        """Value of the flows ``action`` would pre-empt (what the accounting takes back), 0.0
        when it fits without pre-emption, None when it cannot be admitted; reads the plan the
        env itself would execute (:meth:`NetworkState.preemption_plan`) without changing state.
        """
        ev, cs = self.current_evaluation, self.current_candidates
        if action == self.reject_action or not ev.mask_A[action]:
            return None
        if not ev.needs_preempt_A[action]:
            return 0.0
        links, backup = cs.route(action // self.cfg.grant_levels)
        plan = self.state.preemption_plan(
            np.concatenate([links, backup]),
            self._slice_C[self.current_request.cls],
            self._prio,
            int(ev.kbps_A[action]),
        )
        if plan is None:
            return None
        flows = self.state.flows
        return float(sum(flows[f].value for f in plan if f in flows))

    def action_masks(self) -> np.ndarray:
        """Boolean mask of valid actions (sb3-contrib's MaskablePPO convention)."""
        return self.current_evaluation.mask_A.astype(bool)
