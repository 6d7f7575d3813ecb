"""PNG map of a network: sites, links coloured by capacity (or utilisation), regions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pcnalloc.network.model import CommNetwork


def draw_network(
    fig: Any,
    net: CommNetwork,
    *,
    link_values: np.ndarray | None = None,
    value_label: str = "capacity (Mb/s)",
    title: str | None = None,
    value_range: tuple[float, float] | None = None,
    colorbar: bool = True,
) -> Any:
    """Draw sites coloured by region and links coloured by capacity or ``link_values``.

    Args:
        fig: a matplotlib ``Figure`` (empty); one axes is added to it.
        net: the network.
        link_values: per-link values (E,) to colour by instead of capacity (e.g. utilisation).
        value_label: colour-bar label.
        title: axes title (defaults to the case name and counts).
        value_range: fixed (low, high) of the colour scale (default: the values' range), so
            successive drawings of changing values share one scale.
        colorbar: draw the colour bar.

    Returns:
        The links' ``LineCollection``: ``set_array`` on it recolours the links in place.
    """
    from matplotlib.collections import LineCollection

    ax = fig.add_subplot(1, 1, 1)
    xy = net.site_xy
    vals = net.link_capacity_mbps if link_values is None else np.asarray(link_values, float)
    log = link_values is None
    segs = xy[net.link_ends]
    norm_vals = np.log10(vals) if log else vals
    lc = LineCollection(segs, array=norm_vals, cmap="viridis", linewidths=1.6, zorder=1)
    if value_range is not None:
        lc.set_clim(*value_range)
    ax.add_collection(lc)
    if colorbar:
        cb = fig.colorbar(lc, ax=ax, shrink=0.8)
        cb.set_label(f"log10 {value_label}" if log else value_label)
    size = 12 if net.n_sites > 300 else 40
    ax.scatter(
        xy[:, 0],
        xy[:, 1],
        c=net.site_region,
        cmap="tab20",
        s=size,
        zorder=2,
        edgecolors="k",
        linewidths=0.3,
    )
    cc = list(net.control_centers)
    ax.scatter(
        xy[cc, 0],
        xy[cc, 1],
        marker="*",
        s=260,
        c=["red", "orange"],
        zorder=3,
        edgecolors="k",
        label="control centers (primary, backup)",
    )
    ec = net.edge_controllers
    ax.scatter(
        xy[ec, 0],
        xy[ec, 1],
        marker="s",
        s=70,
        facecolors="none",
        edgecolors="black",
        zorder=3,
        label="edge controllers",
    )
    ax.set_title(
        title or f"{net.name}: {net.n_sites} sites, {net.n_links} links, {net.n_regions} regions"
    )
    ax.legend(loc="best", fontsize=8)
    ax.set_aspect("equal", adjustable="datalim")
    ax.autoscale()
    ax.set_xticks([])
    ax.set_yticks([])
    return lc


def plot_network(
    net: CommNetwork,
    path: str | Path,
    *,
    link_values: np.ndarray | None = None,
    value_label: str = "capacity (Mb/s)",
    title: str | None = None,
) -> Path:
    """Draw the network (see :func:`draw_network`) into a PNG file.

    Args:
        net: the network.
        path: output PNG path (written atomically).
        link_values: per-link values (E,) to colour by instead of capacity (e.g. utilisation).
        value_label: colour-bar label.
        title: figure title (defaults to the case name and counts).
    """
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from pcnalloc.fileio import write_atomic

    fig = Figure(figsize=(9, 7), dpi=110)
    FigureCanvasAgg(fig)
    draw_network(fig, net, link_values=link_values, value_label=value_label, title=title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return write_atomic(path, buf.getvalue())
