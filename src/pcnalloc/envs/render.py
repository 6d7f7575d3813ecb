"""Rendering of the allocation environments: a text summary (``ansi``), an image
(``rgb_array``) of the link-utilisation map, and that map in a matplotlib window (``human``,
redrawn after every ``reset`` and ``step`` as Gymnasium's convention has it; ``render()``
returns None). Without a display (matplotlib picked a non-interactive backend such as Agg)
``human`` warns once and draws nothing.

Rendering only reads the environment: it draws no random numbers and changes no state, so a
seeded episode follows the same trajectory with or without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from pcnalloc.config import SLICES
from pcnalloc.errors import ConfigError
from pcnalloc.traffic.catalog import ZONES
from pcnalloc.traffic.generator import KINDS

if TYPE_CHECKING:
    from pcnalloc.envs.power_comm import PowerCommEnv

RENDER_MODES: tuple[str, ...] = ("ansi", "rgb_array", "human")
"""Render modes both environments accept (besides None, no rendering)."""
RENDER_FPS = 4
"""Frames per second a video recorder should play decisions at."""
FIGSIZE_IN = (6.4, 4.8)
DPI = 100
"""The ``rgb_array`` frame is FIGSIZE_IN × DPI pixels: shape (480, 640, 3)."""


class RenderModeError(ConfigError, gym.error.UnsupportedMode):
    """A render mode the environment does not offer (Gymnasium's ``UnsupportedMode``)."""

    def __init__(self, mode: object, accepted: tuple[str, ...] = RENDER_MODES) -> None:
        super().__init__(
            f"unknown render_mode {mode!r}; accepted: None, " + ", ".join(map(repr, accepted))
        )
        self.mode = mode


def check_render_mode(mode: str | None) -> str | None:
    """Return ``mode`` if the environments can render it, else raise :class:`RenderModeError`."""
    if mode is not None and mode not in RENDER_MODES:
        raise RenderModeError(mode)
    return mode


def link_utilisation_E(env: PowerCommEnv) -> np.ndarray:
    """Highest pool utilisation of each link over its slices, shape (E,), in [0, 1]."""
    return env.state.utilisation_ES().max(axis=1)


def _clock(t_s: float) -> str:
    day, rest = divmod(int(t_s), 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return f"day {day} {h:02d}:{m:02d}:{s:02d}"


def render_ansi(env: PowerCommEnv, *, busiest: int = 3) -> str:
    """A short text summary of the request on show, its candidate actions and the links.

    Args:
        env: the environment (after ``reset``).
        busiest: how many of the most utilised links to name.
    """
    req, ev, cs = env._req, env._ev, env._cs
    if req is None or ev is None or cs is None:
        return "PowerCommEnv: no request on show (call reset())\n"
    cat, net, cfg = env.catalog, env.net, env.cfg
    c = req.cls
    names = net.site_names
    L = cfg.grant_levels
    prot = ", 1+1" if cat.protected_C[c] else ""
    lines = [
        f"{net.name} {_clock(env.now)}  step {env._steps}/{cfg.episode_requests}  "
        f"request #{req.id} ({KINDS[req.kind]})",
        f"  {cat.names[c]}: zone {ZONES[int(cat.zone_C[c])]}, priority {env.current_priority}, "
        f"{cat.bandwidth_kbps_C[c] / 1000.0:.3f} Mb/s, ≤ {cat.max_latency_ms_C[c]:.0f} ms{prot}, "
        f"{names[req.src]} → {names[req.dst]}, holding {req.holding_s:.0f} s",
        "  candidates (grant levels: * valid, p valid with pre-emption, . masked):",
    ]
    for k in range(cfg.k_paths):
        if not cs.present_K[k]:
            lines.append(f"    k={k}: none")
            continue
        acts = range(k * L, (k + 1) * L)
        marks = " ".join(
            f"{ev.grant_A[a]:.2f}"
            + ("." if not ev.mask_A[a] else "p" if ev.needs_preempt_A[a] else "*")
            for a in acts
            if ev.grant_A[a] > 0  # a class with fewer grant levels pads with 0
        )
        util = max(float(ev.util_after_A[a]) for a in acts)
        lines.append(
            f"    k={k}: {int(ev.hops_K[k])} hops, {ev.latency_ms_K[k]:.2f} ms, "
            f"util after ≤ {util:.2f}  [{marks}]"
        )
    lines.append(f"    reject = action {env.reject_action}")
    u_ES = env.state.utilisation_ES()
    per_slice = "  ".join(
        f"{s} mean {u_ES[:, i].mean():.2f} max {u_ES[:, i].max():.2f}" for i, s in enumerate(SLICES)
    )
    lines.append(
        f"  links: {net.n_links}, {env.state.n_failed} cut, "
        f"{len(env.state.flows)} flows; {per_slice}"
    )
    u_E = u_ES.max(axis=1)
    top = np.argsort(-u_E, kind="stable")[:busiest]
    lines.append(
        "  busiest: "
        + ", ".join(
            f"{names[net.link_ends[e, 0]]}–{names[net.link_ends[e, 1]]} "
            f"{u_E[e]:.2f} ({SLICES[int(u_ES[e].argmax())]})"
            for e in top
        )
    )
    return "\n".join(lines) + "\n"


class UtilisationCanvas:
    """An off-screen (Agg) map of the network whose link colours are redrawn per frame.

    The sites, legend and colour bar are drawn once (:func:`pcnalloc.network.plot.draw_network`);
    each frame recolours the links by utilisation on a fixed 0–1 scale, dashes the cut links
    and marks the request's end sites.
    """

    def __init__(self, env: PowerCommEnv) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        from pcnalloc.network.plot import draw_network

        self.net = env.net
        self.fig = Figure(figsize=FIGSIZE_IN, dpi=DPI)
        self.canvas = FigureCanvasAgg(self.fig)
        self.links = draw_network(
            self.fig,
            self.net,
            link_values=np.zeros(self.net.n_links),
            value_label="utilisation (highest slice)",
            value_range=(0.0, 1.0),
        )
        self.ax = self.fig.axes[0]
        (self.ends,) = self.ax.plot(
            [], [], "o", ms=11, mfc="none", mec="magenta", mew=2.0, zorder=4, label="request"
        )
        self.fig.tight_layout()

    def frame(self, env: PowerCommEnv) -> np.ndarray:
        """The current utilisation map, shape (H, W, 3), dtype uint8."""
        self.links.set_array(link_utilisation_E(env))
        failed = env.state.failed_E1[:-1]
        self.links.set_linestyles(["--" if f else "-" for f in failed])
        req = env._req
        if req is not None:
            xy = self.net.site_xy[[req.src, req.dst]]
            self.ends.set_data(xy[:, 0], xy[:, 1])
            title = (
                f"{self.net.name} {_clock(env.now)}: {env.catalog.names[req.cls]} "
                f"{self.net.site_names[req.src]} → {self.net.site_names[req.dst]}"
            )
        else:
            self.ends.set_data([], [])
            title = self.net.name
        self.ax.set_title(title, fontsize=9)
        self.canvas.draw()
        return np.asarray(self.canvas.buffer_rgba())[..., :3].copy()


def interactive_backend(name: str) -> bool:
    """Whether matplotlib backend ``name`` opens windows (False for Agg, PDF, SVG, …)."""
    n = name.lower()
    if n.startswith("module://"):
        return True
    try:
        from matplotlib.backends import BackendFilter, backend_registry

        return n in backend_registry.list_builtin(BackendFilter.INTERACTIVE)
    except ImportError:  # pragma: no cover - matplotlib < 3.9
        return n not in ("agg", "pdf", "ps", "svg", "pgf", "cairo", "template")


class HumanWindow:
    """The utilisation map in a matplotlib window, updated in place at ``RENDER_FPS``.

    On a machine without a display the window is never created: one warning, then nothing.
    """

    def __init__(self, env: PowerCommEnv) -> None:
        import matplotlib

        self.backend = matplotlib.get_backend()
        self.on_screen = interactive_backend(self.backend)
        self.image: Any = None
        if not self.on_screen:
            gym.logger.warn(
                f"render_mode='human' needs a display; matplotlib's backend is "
                f"{self.backend!r}, so nothing is drawn (use 'rgb_array' for frames)"
            )
            return
        import matplotlib.pyplot as plt

        self.plt = plt
        self.canvas = UtilisationCanvas(env)
        self.fig, ax = plt.subplots(figsize=FIGSIZE_IN, dpi=DPI)
        ax.set_axis_off()
        self.fig.subplots_adjust(0, 0, 1, 1)
        self.image = ax.imshow(self.canvas.frame(env))

    def show(self, env: PowerCommEnv) -> None:
        if self.image is None:
            return
        self.image.set_data(self.canvas.frame(env))
        self.fig.canvas.draw_idle()
        self.plt.pause(1.0 / RENDER_FPS)

    def close(self) -> None:
        if self.image is not None:
            self.plt.close(self.fig)
            self.image = None


def render_human(env: PowerCommEnv) -> None:
    """Redraw ``env``'s window when its render mode is ``human`` (called after reset/step)."""
    if env.render_mode == "human":
        window = getattr(env, "_window", None)
        if window is None:
            window = env._window = HumanWindow(env)  # type: ignore[attr-defined]
        window.show(env)


def render_env(env: PowerCommEnv) -> Any:
    """What ``env.render()`` returns for ``env.render_mode`` (None when it is None)."""
    mode = env.render_mode
    if mode is None:
        gym.logger.warn(
            "render() called without a render_mode; pass render_mode='ansi', 'rgb_array' or "
            "'human' "
            "to the environment (gymnasium.make(..., render_mode=...))"
        )
        return None
    if mode == "ansi":
        return render_ansi(env)
    if mode == "human":
        render_human(env)
        return None
    if mode == "rgb_array":
        canvas = getattr(env, "_canvas", None)
        if canvas is None:
            canvas = env._canvas = UtilisationCanvas(env)
        return canvas.frame(env)
    raise RenderModeError(mode)
