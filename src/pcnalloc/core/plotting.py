"""Figures for reports: matplotlib figures on their own Agg canvas, saved as PNG atomically.

Every figure the package writes (reports, learning curves, sweeps) is made here. A figure is
a :class:`matplotlib.figure.Figure` with an Agg canvas of its own rather than one from
``pyplot``: nothing switches the process-wide backend (``matplotlib.use("Agg")`` in a library
would turn off a ``render_mode="human"`` window opened in the same process), nothing is
registered with pyplot's figure manager, so there is nothing to close and nothing leaks when
a plot raises. matplotlib is imported on first use (it is in the ``full`` extra).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pcnalloc.fileio import write_atomic

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 110
"""Default resolution of saved figures (dots per inch)."""


def figure(*, figsize: tuple[float, float] | None = None, **kwargs: Any) -> Figure:
    """A new figure drawn on its own Agg canvas.

    Args:
        figsize: (width, height) in inches; None for matplotlib's default.
        **kwargs: passed to :class:`matplotlib.figure.Figure`.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, **kwargs)
    FigureCanvasAgg(fig)
    return fig


def subplots(
    nrows: int = 1,
    ncols: int = 1,
    *,
    figsize: tuple[float, float] | None = None,
    **kwargs: Any,
) -> tuple[Figure, Any]:
    """A figure and its grid of axes, like ``pyplot.subplots`` but without pyplot.

    Args:
        nrows: rows of axes.
        ncols: columns of axes.
        figsize: (width, height) in inches.
        **kwargs: passed to :meth:`matplotlib.figure.Figure.subplots` (``squeeze``,
            ``sharex`` …).

    Returns:
        The figure and one axes, or an array of axes (the ``squeeze`` rules of pyplot).
    """
    fig = figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def png_bytes(fig: Figure, *, dpi: int = DPI, tight: bool = True) -> bytes:
    """The figure as PNG bytes.

    Args:
        fig: the figure (from :func:`figure` or :func:`subplots`).
        dpi: resolution (dots per inch).
        tight: apply ``tight_layout`` first.
    """
    if tight:
        fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def save_png(fig: Figure, path: str | Path, *, dpi: int = DPI, tight: bool = True) -> Path:
    """Write the figure to ``path`` as PNG atomically (see :func:`pcnalloc.fileio.write_atomic`).

    Args:
        fig: the figure.
        path: the PNG file; its folder is created if missing.
        dpi: resolution (dots per inch).
        tight: apply ``tight_layout`` first.

    Raises:
        OutputPathError: ``path`` is a folder.
    """
    return write_atomic(path, png_bytes(fig, dpi=dpi, tight=tight))
