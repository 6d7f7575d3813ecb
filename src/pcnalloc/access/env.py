"""Gymnasium env ``pcnalloc/Access-v0``: the epoch-level mode decision.

One step = one epoch: the action gives each device a mode (``MultiDiscrete([2]*I)``, 0 PLC,
1 5G); the env repairs C3/C4 (devices over a mode's places move to the other mode, smallest
virtual queue first, counted in ``info["repaired"]``), then plays the T0 slots with the
paper's deferred-acceptance allocator. The reward is minus the mean per slot and device of
the drift-plus-penalty τ_i + α·C_i + O_i·τ^que_i (problem P2); ``info["device_cost"]`` holds
each device's own share (mean per slot, ``(I,)``; the reward is minus its mean), which the
per-device teacher of :mod:`pcnalloc.twolayer.teacher` learns from. The observation is the
``(I, F)`` table of :func:`pcnalloc.access.features.device_features`, flattened device-major.
``action_masks()`` returns a flat ``(2·I,)`` mask (device-major) that forbids a mode with no
reliable subchannel.

Slot-level interface: ``env.unwrapped.model`` is the :class:`~pcnalloc.access.model.AccessModel`;
after ``model.begin_epoch(modes)`` call ``view = model.slot_view()`` and
``model.apply(view, holder)`` T0 times, then ``model.end_epoch()``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from pcnalloc.access.config import AccessConfig, access_config
from pcnalloc.access.features import N_FEATURES, device_features
from pcnalloc.access.model import AccessModel
from pcnalloc.access.policies import matching_allocate
from pcnalloc.access.policy import cap_modes
from pcnalloc.access.render import RENDER_FPS, RENDER_MODES, check_render_mode, render_access

OBS_LIM = 1e6
"""Bound of every observation entry (the features are logs, shares and preference values)."""


class AccessEnv(gym.Env):
    """Epoch-level PLC/5G mode selection (see module docstring).

    Args:
        config: an :class:`AccessConfig`, or a mapping of overrides of the packaged default.
        render_mode: None, ``ansi`` (text summary of the epoch) or ``rgb_array`` (each
            device's backlog coloured by its mode), see :mod:`pcnalloc.access.render`.
    """

    # gymnasium annotates metadata as an instance attribute; it is one table per class
    metadata: ClassVar[dict[str, Any]] = {  # type: ignore[misc]
        "render_modes": list(RENDER_MODES),
        "render_fps": RENDER_FPS,
    }

    def __init__(
        self,
        config: AccessConfig | dict[str, Any] | None = None,
        render_mode: str | None = None,
    ) -> None:
        self.render_mode = check_render_mode(render_mode)
        self.last_info: dict[str, Any] = {}
        """The last step's ``info`` (empty after ``reset``), shown by the ``ansi`` render."""
        self.cfg = config if isinstance(config, AccessConfig) else access_config(config or {})
        n = self.cfg.devices
        self.action_space = spaces.MultiDiscrete(np.full(n, 2, dtype=np.int64))
        self.observation_space = spaces.Box(-OBS_LIM, OBS_LIM, (n * N_FEATURES,), np.float32)
        self.model = AccessModel(self.cfg, 0)

    def _obs(self) -> np.ndarray:
        return np.clip(device_features(self.model).ravel(), -OBS_LIM, OBS_LIM)

    def action_masks(self) -> np.ndarray:
        """``(2·I,)`` bool: mode k of device i is allowed iff it has reliable subchannels."""
        ok = self.model.reachable.copy()
        ok[~ok.any(axis=1)] = True
        return ok.ravel()

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        s = int(self.np_random.integers(0, 2**31 - 1)) if seed is None else int(seed)
        self.model = AccessModel(self.cfg, s)
        self.last_info = {}
        return self._obs(), {}

    def render(self) -> Any:
        """The frame of ``render_mode``: a string (``ansi``), an RGB array, or None."""
        return render_access(self)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        m = self.model
        a = np.asarray(action, dtype=np.int64).reshape(-1)
        if a.shape != (m.n,) or not np.isin(a, (0, 1)).all():
            from pcnalloc.errors import ActionError

            raise ActionError(action, 2)
        modes = cap_modes(a, m.o, (self.cfg.plc_subchannels, self.cfg.g5_subchannels))
        m.begin_epoch(modes)
        total, ws, cost = 0.0, 0.0, 0.0
        per_dev = np.zeros(m.n)
        for _ in range(self.cfg.slots_per_epoch):
            view = m.slot_view()
            res = m.apply(view, matching_allocate(view, self.cfg.propose_to_need))
            total += res.drift_penalty
            ws += res.weighted_sum
            cost += float(res.cost.sum())
            per_dev += res.delay + self.cfg.alpha * res.cost + view.o * view.tau_que
        m.end_epoch()
        t0 = self.cfg.slots_per_epoch
        reward = -total / (t0 * m.n)
        info = {
            "weighted_sum": ws / t0,
            "traffic_cost": cost,
            "repaired": int((modes != a).sum()),
            "device_cost": per_dev / t0,
            "epoch": m.epoch,
        }
        self.last_info = info
        return self._obs(), float(reward), m.epoch >= self.cfg.epochs, False, info
