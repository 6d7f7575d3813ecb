"""TensorBoard scalars next to a training's CSV log (optional; off unless a folder is given).

The teacher's ``train_log.csv`` rows and the distiller's ``history.csv`` rows are also written
as TensorBoard scalars when a log folder is set (``--tensorboard DIR`` on ``teacher train`` and
``distill``, or the ``tensorboard`` field of their configs): every numeric cell of a row is one
scalar ``RUN/COLUMN`` at that row's step (env step for the teacher, epoch for the student), so
``tensorboard --logdir DIR`` shows the same curves as the CSV. Empty cells and text are skipped.

The writer is torch's ``SummaryWriter`` (``torch.utils.tensorboard``), which needs the
``tensorboard`` package: without it, opening the log raises the one-line
:class:`~pcnalloc.errors.MissingExtraError` (``install pcnalloc[tensorboard]``) before any work.

The log folder is TensorBoard's ``--logdir``: a parent shared by many runs, left as it is. A
training's own output is its run folder ``DIR/RUN``, which the trainers stage
(:func:`pcnalloc.fileio.staged_dir`, handed in as ``path``): written under a temp name and
renamed when the training finishes, removed when it fails (docs/errors.md).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from pcnalloc.errors import require

EXTRA = "tensorboard"


class ScalarLog:
    """TensorBoard scalars of one run; every method is a no-op when ``logdir`` is None.

    Args:
        logdir: TensorBoard log folder (None: off).
        run: sub-folder of this run and prefix of its tags (``teacher``, ``student/edge``).
        what: what needs the package, for the missing-extra message.
        path: the folder the event files go to (default ``logdir/run``): a staged temp of
            ``logdir/run``; the tags keep the run's name either way.

    Raises:
        MissingExtraError: ``logdir`` is given and the ``tensorboard`` package is missing.
    """

    def __init__(
        self,
        logdir: str | Path | None,
        run: str,
        *,
        what: str = "--tensorboard",
        path: str | Path | None = None,
    ) -> None:
        self.run = run.strip("/")
        self.path = None if logdir is None else Path(path) if path else Path(logdir) / self.run
        self._writer: Any = None
        if self.path is not None:
            require("tensorboard", what)  # the package torch's writer imports
            tb = require("torch.utils.tensorboard", what)
            self._writer = tb.SummaryWriter(log_dir=str(self.path))

    @property
    def enabled(self) -> bool:
        return self._writer is not None

    def add(self, step: int, row: Mapping[str, Any], *, skip: tuple[str, ...] = ()) -> int:
        """Write the numeric cells of ``row`` at ``step``; returns how many were written."""
        if self._writer is None:
            return 0
        n = 0
        for key, value in row.items():
            if key in skip or isinstance(value, bool) or not isinstance(value, numbers.Real):
                continue
            v = float(value)
            if math.isfinite(v):
                self._writer.add_scalar(f"{self.run}/{key}", v, global_step=int(step))
                n += 1
        self._writer.flush()
        return n

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> ScalarLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def read_scalars(logdir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag under ``logdir`` → [(step, value)] (TensorBoard's own event reader)."""
    ea = require("tensorboard.backend.event_processing.event_accumulator", "read_scalars")
    out: dict[str, list[tuple[int, float]]] = {}
    runs = sorted({p.parent for p in Path(logdir).rglob("events.out.tfevents.*")})
    for run in runs:
        acc = ea.EventAccumulator(str(run), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
    return out
