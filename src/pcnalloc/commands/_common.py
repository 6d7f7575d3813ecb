"""Helpers shared by CLI commands: console, progress bars (atomic writes re-exported)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pcnalloc.fileio import write_atomic, write_json

__all__ = ["console", "progress_bar", "write_atomic", "write_json"]

console = Console(stderr=False)


def progress_bar() -> Progress:
    """A rich progress bar (drawn on stderr so JSON on stdout stays clean)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    )
