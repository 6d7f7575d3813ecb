"""The start-up notice: a verb says it has started within a second, on a terminal.

A verb's imports (torch, pandapower) and its first work (building a grid case) can take
seconds before it prints anything. On a terminal the CLI therefore writes
``pcnalloc VERB: starting…`` to stderr as soon as it runs, and erases that line (carriage
return + erase-line) just before the verb's first output on stdout or stderr, so what the
verb prints, an error line included, is left exactly as without the notice. Nothing is
written when stderr is not a terminal (pipes, files, tests, JSON consumers), for ``--help``,
``--version`` and shell completion, or on a ``TERM=dumb`` terminal.

Why hand-written rather than a rich status spinner: a spinner is a rich ``Live`` display, and
rich allows one at a time, so it would clash with the verbs' own progress bars; a plain line
erased at the first write needs no coordination with what the verb draws.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

NOTICE_SUFFIX = ": starting…"
ERASE = "\r\x1b[K"
"""Back to the line's start and clear it (ECMA-48 CR + EL)."""
QUIET_FLAGS = frozenset({"--help", "-h", "--version", "--install-completion", "--show-completion"})
COMPLETION_ENV = "_PCNALLOC_COMPLETE"
"""Set by the shell while it asks for completions (Typer/click's protocol)."""


class _Erasing:
    """A text stream that erases the notice before the first thing written through it."""

    def __init__(self, stream: TextIO, notice: _Notice) -> None:
        self._stream = stream
        self._notice = notice

    def write(self, text: str) -> int:
        if text:
            self._notice.erase()
        return self._stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _Notice:
    def __init__(self, stdout: TextIO, stderr: TextIO) -> None:
        self.stdout, self.stderr = stdout, stderr
        self.shown = False

    def show(self, text: str) -> None:
        self.stderr.write(text)
        self.stderr.flush()
        self.shown = True
        sys.stdout = _Erasing(self.stdout, self)
        sys.stderr = _Erasing(self.stderr, self)

    def erase(self) -> None:
        if not self.shown:
            return
        self.shown = False
        self.stderr.write(ERASE)
        self.stderr.flush()
        if isinstance(sys.stdout, _Erasing):
            sys.stdout = self.stdout
        if isinstance(sys.stderr, _Erasing):
            sys.stderr = self.stderr


def wants_notice(args: list[str], stderr: TextIO) -> bool:
    """Whether to show the notice for these arguments on this stream."""
    words = [a for a in args if not a.startswith("-")]
    if not words or QUIET_FLAGS.intersection(args) or COMPLETION_ENV in os.environ:
        return False
    if os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stderr, "isatty", None)
    return bool(callable(isatty) and isatty())


def notice_text(args: list[str]) -> str:
    """``pcnalloc VERB [SUBVERB]: starting…`` for the verb's words in ``args``."""
    words = [a for a in args[:2] if not a.startswith("-")]
    return " ".join(["pcnalloc", *words]) + NOTICE_SUFFIX


@contextmanager
def start_notice(args: list[str]) -> Iterator[None]:
    """Show the notice for ``args`` (when :func:`wants_notice`) until the first output."""
    notice = _Notice(sys.stdout, sys.stderr)
    if wants_notice(args, sys.stderr):
        notice.show(notice_text(args))
    try:
        yield
    finally:
        notice.erase()


__all__ = ["start_notice", "wants_notice"]
