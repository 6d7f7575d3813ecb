"""Admission-control classics a learned policy must beat (DESIGN §9): trunk reservation and
state-dependent least-cost routing.

Both are loss-network results: first-fit admits whatever fits and so gives capacity to the
first comer; holding some back for more valuable later requests wins when the network is
loaded (trunk reservation, Key 1990; Marbach, Mihatsch & Tsitsiklis 2000), and pricing each
link by how close it is to full (shadow prices; Kelly 1988, Dziong & Mason 1994) routes
around congestion and refuses requests worth less than what they displace.

Both bind to the env (:meth:`bind_env`) to read the request's effective priority and value
and, for least-cost routing, each candidate link's pool utilisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pcnalloc.baselines.heuristics import F_PRE, F_UTIL, F_VALID, FirstFit


@dataclass
class TrunkReservation(FirstFit):
    """First fit, but classes of priority ≥ ``protect_from`` may only take capacity that
    leaves a fraction ``reserve`` of every pool on the path free; more important classes
    use all of it and may pre-empt (as CSPF-PE).

    Args:
        reserve: share of each pool held back for priority < ``protect_from`` (0 = KSP-FF/CSPF-PE).
        protect_from: first priority (0 = highest) that may not use the reserve.
    """

    reserve: float = 0.1
    protect_from: int = 2
    preempt: bool = True

    def bind_env(self, env: Any) -> None:
        self._env = env

    def act(self, obs: dict[str, np.ndarray]) -> int:
        env = getattr(self, "_env", None)
        if env is None:
            raise RuntimeError(f"{self.name} needs bind_env(env) before act()")
        if int(env.current_priority) < self.protect_from:
            return super().act(obs)
        cand = self._table(obs)
        o = self._order
        ok = (
            (cand[o, F_VALID] > 0)
            & (cand[o, F_PRE] == 0)
            & (cand[o, F_UTIL] <= 1.0 - self.reserve + 1e-9)
        )
        return int(o[np.argmax(ok)]) if ok.any() else self._reject


@dataclass
class LeastCostRouting(FirstFit):
    """State-dependent least-cost routing: each link of the class's pool costs
    ``beta · (u / (1 − u))^gamma`` per Mb/s, with ``u`` its utilisation after the grant
    (capped at 0.99); admit on the action with the largest ``value · grant − cost`` when that
    is positive. Critical requests (priority ≤ ``critical_priority``) are never refused by
    price: they take the cheapest valid action, pre-empting if they must.

    Args:
        beta: price scale (value units per Mb/s per link at u = 0.5, γ = 1).
        gamma: how sharply the price rises as a link fills.
        critical_priority: effective priority at or below which price never refuses.
    """

    beta: float = 0.05
    gamma: float = 1.0
    critical_priority: int = 1
    preempt: bool = True

    def bind_env(self, env: Any) -> None:
        self._env = env

    def _costs(self, env: Any) -> tuple[np.ndarray, np.ndarray]:
        """Net score (value·grant − cost) per path action and the plain/valid flags."""
        ev = env.current_evaluation
        cs = env.current_candidates
        cat = env.catalog
        req = env.current_request
        s = int(cat.slice_C[req.cls])
        st = env.state
        L = self.grant_levels
        links = cs.links_KH  # (K, H), padded with the sentinel E (zero use, huge capacity)
        used = st.used_ES1[links, s].astype(float)
        cap = np.maximum(st.cap_ES1[links, s].astype(float), 1.0)
        kbps = np.asarray(ev.kbps_A[:-1], dtype=float).reshape(-1, L)  # (K, L)
        u = np.minimum((used[:, None, :] + kbps[:, :, None]) / cap[:, None, :], 0.99)
        real = (links < env.net.n_links)[:, None, :]
        price = np.where(real, self.beta * (u / (1.0 - u)) ** self.gamma, 0.0).sum(axis=2)
        value = float(cat.value_C[req.cls]) * req.value_fraction
        net = value * np.asarray(ev.grant_A[:-1], dtype=float).reshape(-1, L) - price * (
            kbps / 1000.0
        )
        return net.ravel(), np.asarray(ev.needs_preempt_A[:-1], dtype=bool)

    def act(self, obs: dict[str, np.ndarray]) -> int:
        env = getattr(self, "_env", None)
        if env is None:
            raise RuntimeError(f"{self.name} needs bind_env(env) before act()")
        cand = self._table(obs)
        valid = cand[:-1, F_VALID] > 0
        if not valid.any():
            return self._reject
        net, pre = self._costs(env)
        plain = valid & ~pre
        critical = int(env.current_priority) <= self.critical_priority
        if plain.any():
            best = int(np.argmax(np.where(plain, net, -np.inf)))
            if critical or net[best] > 0:
                return best
            return self._reject
        if critical and self.preempt:
            return int(np.argmax(np.where(valid, net, -np.inf)))
        return self._reject


@dataclass
class ValuePreemption(FirstFit):
    """CSPF with value-aware pre-emption: first fit without pre-emption; if nothing fits,
    the first pre-empting candidate whose request is worth at least ``ratio`` × the value it
    would displace (:meth:`PowerCommEnv.preemption_cost`, the env's own plan), else reject.

    Plain priority pre-emption (CSPF-PE) displaces whatever has a lower hold priority, so
    an emergency burst can pre-empt flows worth more than it carries and start a cascade of
    restorations; an operator who prices pre-emption refuses those. ``ratio`` = 0 is CSPF-PE.

    Args:
        ratio: minimum (request value · grant) ÷ (pre-empted value) to pre-empt.
    """

    ratio: float = 1.0
    preempt: bool = True

    def bind_env(self, env: Any) -> None:
        self._env = env

    def act(self, obs: dict[str, np.ndarray]) -> int:
        env = getattr(self, "_env", None)
        if env is None:
            raise RuntimeError(f"{self.name} needs bind_env(env) before act()")
        cand = self._table(obs)
        o = self._order
        valid = cand[o, F_VALID] > 0
        plain = valid & (cand[o, F_PRE] == 0)
        if plain.any():
            return int(o[np.argmax(plain)])
        req = env.current_request
        offered = float(env.catalog.value_C[req.cls]) * float(req.value_fraction)
        grant = env.current_evaluation.grant_A
        for a in o[valid]:
            cost = env.preemption_cost(int(a))
            if cost is not None and offered * float(grant[a]) >= self.ratio * cost:
                return int(a)
        return self._reject
