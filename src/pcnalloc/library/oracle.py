"""Hindsight-MILP oracle teacher for the library (``library build --teacher milp[:K][@…]``).

At ``reset(seed)`` the oracle records the episode's window of new requests (the env with grid
events off, where new requests are exogenous: drawn independently of the decisions — see
:mod:`pcnalloc.baselines.offline`), solves the hindsight MILP on it
(:func:`~pcnalloc.baselines.offline.solve_window`) and then plays, for the j-th new request,
the optimum's action at arrival. The rows are thus the decisions of a schedule that knew
every future arrival: soft targets are one-hot at that action, as for any classical teacher.

Where the optimum's action is not valid online (the MILP checks latency at zero queueing,
so a route it picks can fail the online latency rule) or the request is a restoration after
a pre-emption (the optimum's restoration segments are not mapped back to decisions), the
oracle falls back to the first valid non-reject action in candidate order (reject when none):
``fallbacks`` counts them per episode.

Options: ``:K`` candidate paths (default 4, the DQN layout) and ``@time_limit=S`` (HiGHS
seconds per window, default 5; on expiry the best schedule found is played).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from pcnalloc.errors import ConfigError

log = logging.getLogger(__name__)

ORACLE_NAMES: tuple[str, ...] = ("milp", "milp-oracle")
"""Teacher names of the oracle."""


def parse_oracle_spec(spec: str) -> dict[str, Any]:
    """``milp[:K][@time_limit=S]`` → ``{"k": K, "time_limit": S}``.

    Raises:
        ConfigError: a bad K, an unknown option or a non-positive time limit.
    """
    head, _, rest = spec.partition("@")
    name, colon, k = head.partition(":")
    if name not in ORACLE_NAMES:
        raise ConfigError(f"not an oracle spec: {spec!r}")
    out: dict[str, Any] = {"k": 4, "time_limit": 5.0}
    if colon:
        if not k.isdigit() or int(k) < 1:
            raise ConfigError(f"bad K in {spec!r}; accepted: milp:K with K ≥ 1")
        out["k"] = int(k)
    for part in (p for p in rest.split(",") if p.strip()):
        key, eq, val = part.partition("=")
        if key.strip() != "time_limit" or not eq:
            raise ConfigError(f"unknown oracle option {part!r} in {spec!r}; accepted: time_limit=S")
        try:
            out["time_limit"] = float(val)
        except ValueError:
            out["time_limit"] = -1.0
        if not out["time_limit"] > 0:
            raise ConfigError(f"bad time_limit in {spec!r}; accepted: seconds > 0")
    return out


class MilpOracle:
    """The hindsight optimum as a policy (see the module docstring).

    Args:
        k: candidate paths K of the action layout.
        time_limit: HiGHS seconds per window.
        requests: new requests recorded per window (≥ the episode's decisions).
    """

    observation = "compact"
    model_bytes = 0

    def __init__(self, k: int = 4, time_limit: float = 5.0, requests: int = 1000) -> None:
        self.name = f"milp:{k}"
        self.env_overrides: dict[str, Any] = {"k_paths": int(k)}
        self.time_limit = float(time_limit)
        self.requests = int(requests)
        self.env: Any = None
        self.actions: np.ndarray = np.zeros(0, np.int64)
        self.j = 0
        self.fallbacks = 0
        self.solution: dict[str, Any] = {}

    @classmethod
    def from_spec(cls, spec: str, requests: int) -> MilpOracle:
        o = parse_oracle_spec(spec)
        return cls(k=o["k"], time_limit=o["time_limit"], requests=requests)

    def bind_env(self, env: Any) -> None:
        self.env = env

    def reset(self, seed: int | None = None) -> None:
        from pcnalloc.baselines.offline import play_window, solve_window
        from pcnalloc.envs import PowerCommEnv

        if self.env is None or seed is None:
            raise ConfigError("the MILP oracle needs its env bound and a seed before reset")
        if self.env.cfg.route_pool > self.env.cfg.k_paths:
            raise ConfigError(
                f"the MILP oracle plays the env's K = {self.env.cfg.k_paths} candidates; "
                f"candidate_pool = {self.env.cfg.candidate_pool} offers state-chosen ones "
                "(set candidate_pool: null for an oracle library)"
            )
        env = PowerCommEnv(
            self.env.cfg, observation="compact", network=self.env.net, catalog=self.env.catalog
        )
        window, _ = play_window(env, None, int(seed), self.requests)
        self.solution = solve_window(window, time_limit_s=self.time_limit)
        self.actions = np.asarray(self.solution["actions"], dtype=np.int64)
        self.j = 0
        self.fallbacks = 0

    def _fallback(self, mask: np.ndarray) -> int:
        self.fallbacks += 1
        valid = np.flatnonzero(mask[:-1])
        return int(valid[0]) if valid.size else int(mask.size - 1)

    def act(self, obs: dict[str, Any]) -> int:
        from pcnalloc.traffic.generator import KIND_NEW

        mask = np.asarray(obs["action_mask"])
        if self.env.current_request.kind != KIND_NEW:
            return self._fallback(mask)
        if self.j >= self.actions.size:
            return self._fallback(mask)
        a = int(self.actions[self.j])
        self.j += 1
        return a if mask[a] > 0 else self._fallback(mask)


__all__ = ["ORACLE_NAMES", "MilpOracle", "parse_oracle_spec"]
