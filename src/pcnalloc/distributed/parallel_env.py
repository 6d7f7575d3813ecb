"""PettingZoo ``ParallelEnv`` exposing the regional edge agents (DESIGN §8).

Agents are ``region_0`` … ``region_{R-1}``. Each step decides (or retries) one request:

- the **owner** — the region of the request's source site — acts; its observation is the
  request as its own view shows it (own links live, other regions' links as of the last
  summary, see :mod:`pcnalloc.distributed.regions`) and its ``action_mask`` is that view's mask;
- every **other** agent must send an action too (a ``ParallelEnv`` takes one from every live
  agent), but it is ignored: their observation is all zeros and their mask allows only the
  last index (reject = no-op). All agents share one ``Discrete(K·L + 1)`` action space.

The owner's action is reserved in the owning regions of the route's links; a refusal (the
stale view was wrong) leaves the same request pending, with the refused action struck from the
owner's mask, so the next step is the owner's retry (``infos[agent]["retry"]``). A masked
action from the owner rejects the request. Rewards are the environment's reward for the
decided request, shared by all agents (a cooperative team reward; 0 on a retry step). The
episode truncates for every agent after ``episode_requests`` decided requests; the infos of
that last step carry the episode's figures (weighted value ratio, blocking, critical
blocking, executed violations; see :class:`~pcnalloc.envs.power_comm.PowerCommEnv`).

PettingZoo conventions: :func:`parallel_env` builds the parallel env, :func:`env` its AEC
form; ``state()`` lies in ``state_space``; ``render_mode`` ``ansi`` or ``rgb_array`` renders
the underlying network as :mod:`pcnalloc.envs.render` does.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from pettingzoo import AECEnv, ParallelEnv
from pettingzoo.utils.conversions import parallel_to_aec

from pcnalloc.config import EnvConfig, build
from pcnalloc.distributed.regions import RegionalCoordinator, RegionConfig
from pcnalloc.envs.observation import LIM, compact_dim
from pcnalloc.envs.power_comm import PowerCommEnv
from pcnalloc.envs.render import RENDER_FPS, RENDER_MODES, check_render_mode
from pcnalloc.evaluate.episode import episode_info
from pcnalloc.evaluate.metrics import MetricsRecorder


class RegionalParallelEnv(ParallelEnv):
    """Regions as agents over one :class:`PowerCommEnv` (see the module docstring).

    Args:
        config: an :class:`EnvConfig`, a nested mapping of overrides, or None (case30).
        staleness_s: seconds of simulated time between summaries of other regions.
        render_mode: None, ``ansi`` or ``rgb_array`` (the network's, see the module docstring).
    """

    metadata: ClassVar[dict[str, Any]] = {
        "name": "pcnalloc_regional_v0",
        "render_modes": list(RENDER_MODES),
        "render_fps": RENDER_FPS,
        "is_parallelizable": True,
    }

    def __init__(
        self,
        config: EnvConfig | dict[str, Any] | None = None,
        *,
        staleness_s: float = 0.0,
        render_mode: str | None = None,
    ) -> None:
        self.render_mode = check_render_mode(render_mode)
        if isinstance(config, dict):
            config = build(EnvConfig, config, "environment config")
        self.env = PowerCommEnv(config, observation="compact", render_mode=render_mode)
        self._recorder: MetricsRecorder | None = None
        self.coord = RegionalCoordinator(self.env, RegionConfig(staleness_s=staleness_s))
        n = self.coord.n_regions
        self.possible_agents = [f"region_{r}" for r in range(n)]
        self.agents: list[str] = []
        A = self.env.cfg.n_actions
        D = compact_dim(self.env.catalog, self.env.cfg)
        self._obs_space = gym.spaces.Dict(
            {
                "observation": gym.spaces.Box(-LIM, LIM, shape=(D,), dtype=np.float32),
                "action_mask": gym.spaces.Box(0, 1, shape=(A,), dtype=np.int8),
            }
        )
        self._act_space = gym.spaces.Discrete(A)
        n_pools = self.env.net.n_links * len(self.env.net.slices)
        self.state_space = gym.spaces.Box(0.0, 1.0, shape=(n_pools,), dtype=np.float32)
        """Space of :meth:`state`: the utilisation of every (link, slice) pool, in [0, 1]."""
        self._idle = {
            "observation": np.zeros(D, dtype=np.float32),
            "action_mask": np.eye(A, dtype=np.int8)[-1],
        }
        self._decided = 0

    def observation_space(self, agent: str) -> gym.spaces.Space:
        return self._obs_space

    def action_space(self, agent: str) -> gym.spaces.Space:
        return self._act_space

    @property
    def owner_agent(self) -> str:
        """The agent that decides the current request."""
        return self.possible_agents[self.coord.owner]

    def _observations(self) -> dict[str, dict[str, np.ndarray]]:
        owner = self.owner_agent
        out = {}
        for a in self.agents:
            if a == owner:
                o = self.coord.observe()
                out[a] = {
                    "observation": o["compact"].astype(np.float32, copy=False),
                    "action_mask": o["action_mask"].astype(np.int8, copy=True),
                }
            else:
                out[a] = {k: v.copy() for k, v in self._idle.items()}
        return out

    def _infos(self, **extra: Any) -> dict[str, dict[str, Any]]:
        owner = self.owner_agent
        return {a: {"owner": a == owner, **extra} for a in self.agents}

    def reset(self, seed: int | None = None, options: dict | None = None):
        self.agents = list(self.possible_agents)
        self._decided = 0
        self.coord.reset(seed=seed)
        self._recorder = MetricsRecorder(self.env)
        return self._observations(), self._infos(retry=False)

    def step(self, actions: dict[str, Any]):
        if not self.agents:
            raise RuntimeError("step() after the episode ended; call reset()")
        owner = self.owner_agent
        action = actions.get(owner, self.env.reject_action)
        done, out = self.coord.submit(int(action))
        rewards = {a: 0.0 for a in self.agents}
        info_extra: dict[str, Any] = {"retry": not done}
        if done:
            assert out is not None
            _, reward, _, _, info = out
            rewards = {a: float(reward) for a in self.agents}
            info_extra["decision"] = {k: info[k] for k in ("outcome", "region", "conflicts")}
            self._decided += 1
            if self._recorder is not None:
                self._recorder.record(info, float(reward))
        trunc = self._decided >= self.env.cfg.episode_requests
        if trunc and self._recorder is not None:
            info_extra.update(episode_info(self._recorder))
            self._recorder = None
        terminations = {a: False for a in self.agents}
        truncations = {a: trunc for a in self.agents}
        obs = self._observations()
        infos = self._infos(**info_extra)
        if trunc:
            self.agents = []
        return obs, rewards, terminations, truncations, infos

    def state(self) -> np.ndarray:
        """The true network state for centralised critics: pool utilisation, shape (E·S,)."""
        return self.env.state.utilisation_ES().astype(np.float32).ravel()

    def render(self) -> Any:
        """``ansi``: a text summary; ``rgb_array``: the utilisation map, (H, W, 3) uint8."""
        return self.env.render()

    def close(self) -> None:
        self.env.close()


def parallel_env(**kwargs: Any) -> RegionalParallelEnv:
    """The regional parallel env (PettingZoo's ``parallel_env()`` factory convention).

    Args:
        **kwargs: :class:`RegionalParallelEnv` arguments (``config``, ``staleness_s``,
            ``render_mode``).
    """
    return RegionalParallelEnv(**kwargs)


def env(**kwargs: Any) -> AECEnv:
    """The regional env in AEC form (PettingZoo's ``env()`` factory convention): the parallel
    env through ``parallel_to_aec``, which also enforces the call order.

    Args:
        **kwargs: :class:`RegionalParallelEnv` arguments (``config``, ``staleness_s``,
            ``render_mode``).
    """
    return parallel_to_aec(parallel_env(**kwargs))
