"""Episode figures in ``info``: a Gymnasium wrapper around :class:`MetricsRecorder`, and the
factory the registered ids build their environments with.

Gymnasium and Stable-Baselines3 tooling (``Monitor(info_keywords=…)``, ``evaluate_policy``
callbacks, ``RecordEpisodeStatistics``) see only what ``step`` returns. The wrapper records
every step with the same :class:`~pcnalloc.evaluate.metrics.MetricsRecorder` (and its safety
checker) that ``pcnalloc evaluate`` uses, and on the last step of an episode adds its figures
to ``info`` — the numbers are computed in one place only.
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym

from pcnalloc.envs.power_comm import PowerCommEnv
from pcnalloc.evaluate.metrics import MetricsRecorder

EPISODE_INFO_KEYS: tuple[str, ...] = (
    "weighted_value_ratio",
    "blocking_probability",
    "blocking_priority_le1",
    "executed_hard_violations",
)
"""Figures of :meth:`MetricsRecorder.result` put at the top level of the last step's ``info``
(critical blocking is ``blocking_priority_le1``); the whole dict is ``info["episode_metrics"]``."""


def episode_info(recorder: MetricsRecorder) -> dict[str, Any]:
    """The ``info`` entries of an episode's last step, from its recorder."""
    metrics = recorder.result()
    return {**{k: metrics[k] for k in EPISODE_INFO_KEYS}, "episode_metrics": metrics}


class EpisodeMetrics(gym.Wrapper):
    """Add the episode's metrics to the ``info`` of its last step (see the module docstring).

    Args:
        env: a :class:`PowerCommEnv`, possibly wrapped (the recorder reads the unwrapped one).
        sample_every: decisions between utilisation samples (as ``MetricsRecorder``).
    """

    def __init__(self, env: gym.Env, *, sample_every: int = 10) -> None:
        super().__init__(env)
        if not isinstance(env.unwrapped, PowerCommEnv):
            raise TypeError(f"EpisodeMetrics wraps a PowerCommEnv, got {type(env.unwrapped)}")
        self._core: PowerCommEnv = env.unwrapped
        self.sample_every = sample_every
        self.recorder: MetricsRecorder | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self.recorder = MetricsRecorder(self._core, sample_every=self.sample_every)
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self.recorder is not None:
            self.recorder.record(info, float(reward))
            if terminated or truncated:
                info.update(episode_info(self.recorder))
                self.recorder = None
        return obs, reward, terminated, truncated, info

    def action_masks(self) -> Any:
        """The wrapped env's mask (sb3-contrib's MaskablePPO convention)."""
        return self._core.action_masks()


def make_env(**kwargs: Any) -> gym.Env:
    """A :class:`PowerCommEnv` with :class:`EpisodeMetrics` (the registered ids' entry point).

    Args:
        **kwargs: :class:`PowerCommEnv` arguments (``config``, ``observation``,
            ``render_mode``, …).
    """
    return EpisodeMetrics(PowerCommEnv(**kwargs))


make_env.metadata = PowerCommEnv.metadata  # type: ignore[attr-defined]
"""Gymnasium's ``make`` reads the creator's render modes from here (so ``human`` and
``rgb_array_list`` get its HumanRendering / RenderCollection wrappers)."""
