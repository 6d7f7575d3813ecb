"""TensorBoard output of the training verbs (``teacher train``, ``distill``, ``generalise``),
checked before any work (docs/errors.md)."""

from __future__ import annotations

import contextlib
from pathlib import Path


def tensorboard_output(
    logdir: Path | None, run: str, *, overwrite: bool, append: bool = False
) -> contextlib.AbstractContextManager[object]:
    """Check a training verb's TensorBoard output before any work; use the result as a
    context around the work.

    ``logdir`` (``--tensorboard`` or the config's ``tensorboard``) is TensorBoard's log folder,
    shared by many runs and left as it is; the verb's output is its run folder ``logdir/run``,
    which the trainer stages (renamed into place when the training finishes). Here it is
    refused when it holds files, unless ``overwrite`` (or ``append``: a resumed training
    continues it); the context removes it again, if it is new, when the command fails after
    the training published it.

    Raises:
        MissingExtraError: the ``tensorboard`` package is missing.
        OutputPathError: as :func:`pcnalloc.fileio.check_output`.
    """
    if logdir is None:
        return contextlib.nullcontext()
    from pcnalloc.errors import require
    from pcnalloc.fileio import check_output, created_on_failure_removed

    require("tensorboard", "--tensorboard")
    check_output(logdir, kind="dir", overwrite=True, flag="--tensorboard")  # not a file
    run_dir = Path(logdir) / run
    check_output(
        run_dir, kind="dir", overwrite=overwrite or append, flag="--tensorboard", empty_ok=True
    )
    return contextlib.nullcontext() if append else created_on_failure_removed(run_dir)
