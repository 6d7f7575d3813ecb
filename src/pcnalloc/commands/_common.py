"""Helpers shared by CLI commands: console, progress bars (atomic writes re-exported)."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pcnalloc.fileio import write_atomic, write_json

__all__ = ["console", "progress_bar", "write_atomic", "write_json"]

console = Console(stderr=False)


class _Progress(Progress):
    """A progress bar that erases itself when the command fails, so the error is the one
    line left on stderr."""

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.live.transient = True
        super().__exit__(exc_type, exc, tb)


def progress_bar() -> Progress:
    """A rich progress bar (drawn on stderr so JSON on stdout stays clean)."""
    return _Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    )


def parse_numbers(
    text: str, flag: str, *, lo: float = 0.0, hi: float = float("inf"), lo_inclusive: bool = False
) -> list[float]:
    """Parse a comma-separated number list given to ``flag``.

    Raises:
        ConfigError: naming the flag, the text and the accepted range.
    """
    from pcnalloc.errors import ConfigError

    try:
        vals = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        vals = []
    low_ok = (lambda v: v >= lo) if lo_inclusive else (lambda v: v > lo)
    if not vals or any(not (low_ok(v) and v <= hi) for v in vals):
        bound = f"{'≥' if lo_inclusive else '>'} {lo:g}" + (
            f" and ≤ {hi:g}" if hi < float("inf") else ""
        )
        raise ConfigError(f"bad {flag} {text!r}; accepted: comma-separated numbers {bound}")
    return vals
