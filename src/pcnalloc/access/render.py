"""Rendering of ``pcnalloc/Access-v0``: a text summary of the epoch (``ansi``) and an image of
every device's backlog coloured by its mode (``rgb_array``).

The image is drawn with numpy alone (no matplotlib), so rendering costs nothing on a light
install. Rendering only reads the model: it draws no random numbers and changes no state, so
a seeded episode follows the same trajectory with or without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from pcnalloc.access.errors import AccessConfigError

if TYPE_CHECKING:
    from pcnalloc.access.env import AccessEnv

RENDER_MODES: tuple[str, ...] = ("ansi", "rgb_array")
"""Render modes of the access env (besides None, no rendering)."""
RENDER_FPS = 4
"""Frames (epochs) per second a video recorder should play at."""
FRAME_HW = (240, 320)
"""Height and width of the ``rgb_array`` frame in pixels."""

MODE_RGB = {-1: (150, 150, 150), 0: (230, 140, 30), 1: (40, 110, 220)}
"""Bar colour per mode: not yet assigned (grey), PLC (orange), 5G (blue)."""
BACKGROUND = 255


class AccessRenderModeError(AccessConfigError, gym.error.UnsupportedMode):
    """A render mode the access env does not offer (Gymnasium's ``UnsupportedMode``)."""

    def __init__(self, mode: object) -> None:
        super().__init__(
            f"unknown render_mode {mode!r}; accepted: None, " + ", ".join(map(repr, RENDER_MODES))
        )
        self.mode = mode


def check_render_mode(mode: str | None) -> str | None:
    """Return ``mode`` if the access env renders it, else raise
    :class:`AccessRenderModeError`."""
    if mode is not None and mode not in RENDER_MODES:
        raise AccessRenderModeError(mode)
    return mode


def render_ansi(env: AccessEnv, *, busiest: int = 3) -> str:
    """Epoch, modes against the places, the last epoch's numbers and the busiest devices."""
    cfg, m = env.cfg, env.model
    modes = m.modes  # the epoch just played (-1 before the first)
    n_plc, n_5g = int((modes == 0).sum()), int((modes == 1).sum())
    kbit = m.backlog / 1e3
    lines = [
        f"{cfg.grid}  epoch {m.epoch}/{cfg.epochs}  devices {m.n}: "
        f"PLC {n_plc}/{cfg.plc_subchannels} places, 5G {n_5g}/{cfg.g5_subchannels} places"
    ]
    info: dict[str, Any] = env.last_info
    if info:
        lines.append(
            f"  last epoch: weighted sum {info['weighted_sum']:.4g}, traffic cost "
            f"{info['traffic_cost']:.4g}, repaired {info['repaired']}"
        )
    lines.append(
        f"  backlog: mean {kbit.mean():.3g} kbit, max {kbit.max(initial=0.0):.3g} kbit; "
        f"virtual queue mean {m.o.mean():.3g}"
    )
    name = {-1: "-", 0: "PLC", 1: "5G"}
    for i in np.argsort(-kbit, kind="stable")[:busiest]:
        lines.append(
            f"  device {int(i):3d}  {name[int(modes[i])]:>3}  {kbit[i]:9.3g} kbit  vq {m.o[i]:.3g}"
        )
    return "\n".join(lines)


def render_rgb(env: AccessEnv) -> np.ndarray:
    """``(240, 320, 3)`` uint8: one bar per device (height ∝ backlog, colour = mode)."""
    m = env.model
    h, w = FRAME_HW
    frame = np.full((h, w, 3), BACKGROUND, np.uint8)
    if m.n == 0:
        return frame
    modes = m.modes  # the epoch just played (-1 before the first)
    top = float(m.backlog.max())
    share = m.backlog / top if top > 0 else np.zeros(m.n)
    device_of_col = np.minimum((np.arange(w) * m.n) // w, m.n - 1)
    heights = np.maximum((share[device_of_col] * (h - 10)).astype(int), 2)
    colours = np.array([MODE_RGB[int(k)] for k in modes], np.uint8)[device_of_col]
    rows = np.arange(h)[:, None]
    filled = rows >= h - heights[None, :]
    gap = np.diff(device_of_col, prepend=-1) != 0  # a white column between devices
    filled &= ~(gap[None, :] & (w >= 2 * m.n))
    frame[filled] = np.broadcast_to(colours[None, :, :], (h, w, 3))[filled]
    return frame


def render_access(env: AccessEnv) -> Any:
    """What ``env.render()`` returns for ``env.render_mode`` (None when it is None)."""
    if env.render_mode == "ansi":
        return render_ansi(env)
    if env.render_mode == "rgb_array":
        return render_rgb(env)
    return None


__all__ = [
    "RENDER_FPS",
    "RENDER_MODES",
    "AccessRenderModeError",
    "check_render_mode",
    "render_access",
]
