"""Output files and folders that are whole or absent: checked first, staged, then renamed.

Every verb's outputs go through here:

- :func:`check_output` refuses, before any work, an output that exists (unless
  ``overwrite``), a folder where a file is expected (or the reverse), or a parent that is a
  file; it also clears the temp files a killed run left next to the output.
- :func:`staged_dir` / :func:`staged_file` hand the command a temp name beside the output
  and rename it into place only when the command succeeds; on failure the temp and any parent
  folders the command created are removed, and an existing output is left untouched.
- :func:`write_atomic` / :func:`write_json` write one file through a temp name and fsync.

Temp names carry the writer's process id (``.NAME.PID.XXXX.tmp``), so a later run can tell
a temp of a dead process (removed, with a warning) from one a live process is writing (left
alone). Temps of other writers without a process id are reported, not removed. Files get the
ordinary mode (0666 minus the umask) rather than ``mkstemp``'s 0600. Hand-written because
no well-kept library covers the refusal rules and the stale-temp clean-up together.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pcnalloc.errors import OutputPathError

log = logging.getLogger(__name__)

Kind = Literal["file", "dir"]

_TAGGED = re.compile(r"^(\d+)\.[0-9A-Za-z_]+\.(tmp|old)(\.[0-9A-Za-z]+)?$")


def _mode(kind: Kind) -> int:
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if kind == "dir" else 0o666) & ~umask


def _prefix(p: Path) -> str:
    return f".{p.name}.{os.getpid()}."


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def clean_stale(path: str | Path) -> list[Path]:
    """Remove the temps a killed run left beside ``path``; returns what was removed.

    A temp of a dead process is removed (an interrupted swap's ``.old`` copy is put back
    first when ``path`` itself is missing); a temp of a live process is left alone; a
    temp without a process id (another writer's naming) is only reported.
    """
    p = Path(path)
    parent = p.parent
    if not parent.is_dir():
        return []
    removed: list[Path] = []
    head = f".{p.name}."
    with contextlib.suppress(OSError):
        for q in sorted(parent.iterdir()):
            if not q.name.startswith(head):
                continue
            m = _TAGGED.match(q.name[len(head) :])
            if m is None:
                if ".tmp" in q.name[len(head) :]:
                    log.warning("%s: a temp file of an earlier run (remove it if stale)", q)
                continue
            if _pid_alive(int(m.group(1))):
                continue
            if m.group(2) == "old" and not p.exists() and not p.is_symlink():
                os.rename(q, p)
                log.warning("%s: restored from %s (a run was killed while replacing it)", p, q)
                continue
            _remove(q)
            removed.append(q)
            log.warning("removed %s, left by a killed run (pid %s)", q, m.group(1))
    return removed


def check_output(
    path: str | Path,
    *,
    kind: Kind,
    overwrite: bool = False,
    flag: str = "--out",
    empty_ok: bool = False,
) -> Path:
    """Refuse an output path that cannot be used, before any work starts.

    Args:
        path: the output path.
        kind: ``"file"`` or ``"dir"``: what the command writes there.
        overwrite: an existing output of the right kind may be replaced.
        flag: the option's name, for the message.
        empty_ok: an existing empty folder counts as absent (``kind="dir"``).

    Raises:
        OutputPathError: the path is of the other kind, exists without ``overwrite``, one
            of its parents is a file, or the folder it goes in is not writable.
    """
    p = Path(path)
    shown = repr(str(p))
    for parent in p.parents:
        if parent.exists() and not parent.is_dir():
            raise OutputPathError(f"{flag} {shown}: {str(parent)!r} is a file, not a folder")
    if p.is_dir() and kind == "file":
        raise OutputPathError(f"{flag} {shown} is a folder; give a file path")
    if p.exists() and not p.is_dir() and kind == "dir":
        raise OutputPathError(f"{flag} {shown} is a file; give a folder path")
    empty = empty_ok and p.is_dir() and not any(p.iterdir())
    if p.exists() and not overwrite and not empty:
        what = "folder" if kind == "dir" else "file"
        raise OutputPathError(f"{flag} {shown}: the {what} exists; pass --overwrite to replace it")
    # the temp and the rename need write access to the parent (or the first existing ancestor
    # under which the missing parents are created)
    ancestor = next((q for q in p.absolute().parents if q.exists()), None)
    if ancestor is not None and not _writable(ancestor):
        raise OutputPathError(f"{flag} {shown}: cannot write in {str(ancestor)!r}")
    clean_stale(p)
    return p


def _writable(folder: Path) -> bool:
    """Whether this process may create entries in ``folder`` (a read-only mount counts)."""
    eff = os.access in os.supports_effective_ids
    return os.access(folder, os.W_OK | os.X_OK, effective_ids=eff)


def _make_parents(parent: Path) -> list[Path]:
    """Create ``parent`` and its missing ancestors; returns the created ones, deepest first."""
    made: list[Path] = []
    q = parent
    while not q.exists():
        made.append(q)
        q = q.parent
    parent.mkdir(parents=True, exist_ok=True)
    return made


def _remove_empty(folders: list[Path]) -> None:
    for d in folders:  # deepest first
        with contextlib.suppress(OSError):
            d.rmdir()


def _fsync_dir(d: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _swap_in(tmp: Path, p: Path) -> None:
    """Rename ``tmp`` to ``p``; an existing ``p`` is moved aside first and removed after."""
    old: Path | None = None
    if p.exists() or p.is_symlink():
        if p.is_dir() and not p.is_symlink():
            old = p.with_name(f"{_prefix(p)}{os.urandom(3).hex()}.old")
            os.rename(p, old)
        # a file is replaced in one step by os.replace
    try:
        os.replace(tmp, p)
    except BaseException:
        if old is not None and not p.exists():
            os.rename(old, p)
        raise
    _fsync_dir(p.parent)
    if old is not None:
        _remove(old)


@contextlib.contextmanager
def staged_dir(
    path: str | Path, *, overwrite: bool = False, flag: str = "--out", check: bool = True
) -> Iterator[Path]:
    """A temp folder beside ``path`` that becomes ``path`` when the block succeeds.

    On an exception (or Ctrl-C) the temp folder and the parents this call created are
    removed and an existing ``path`` is kept as it was. With ``overwrite`` an existing folder
    is replaced only after the new one is complete.

    Raises:
        OutputPathError: from :func:`check_output` (when ``check``).
    """
    p = Path(path)
    if check:
        check_output(p, kind="dir", overwrite=overwrite, flag=flag)
    made = _make_parents(p.parent)
    try:
        tmp = Path(tempfile.mkdtemp(dir=p.parent, prefix=_prefix(p), suffix=".tmp"))
    except BaseException:
        _remove_empty(made)
        raise
    try:
        yield tmp
        os.chmod(tmp, _mode("dir"))
        if p.exists() and not overwrite:
            raise OutputPathError(f"{flag} {str(p)!r} appeared while this command ran; kept it")
        _swap_in(tmp, p)
    except BaseException:
        _remove(tmp)
        _remove_empty(made)
        raise


@contextlib.contextmanager
def staged_file(
    path: str | Path, *, overwrite: bool = False, flag: str = "--out", check: bool = True
) -> Iterator[Path]:
    """A temp file name beside ``path`` (same suffix, so writers that infer the format from
    it still work) that replaces ``path`` when the block succeeds; removed on failure."""
    p = Path(path)
    if check:
        check_output(p, kind="file", overwrite=overwrite, flag=flag)
    made = _make_parents(p.parent)
    tmp = p.with_name(f"{_prefix(p)}{os.urandom(3).hex()}.tmp{p.suffix}")
    try:
        yield tmp
        if not tmp.is_file():
            raise OutputPathError(f"{flag} {str(p)!r}: nothing was written")
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, _mode("file"))
        if p.exists() and not overwrite:
            raise OutputPathError(f"{flag} {str(p)!r} appeared while this command ran; kept it")
        _swap_in(tmp, p)
    except BaseException:
        _remove(tmp)
        _remove_empty(made)
        raise


@contextlib.contextmanager
def created_on_failure_removed(path: str | Path) -> Iterator[Path]:
    """Remove ``path`` (and parents made for it) if the block fails and ``path`` did not exist
    before it: for outputs appended in place (an audit log), which cannot be staged."""
    p = Path(path)
    existed = p.exists()
    made = [] if existed else _make_parents(p.parent)
    try:
        yield p
    except BaseException:
        if not existed:
            _remove(p)
            _remove_empty(made)
        raise


def write_atomic(path: str | Path, data: bytes | bytearray | memoryview | str) -> Path:
    """Write ``data`` to ``path`` atomically (temp in the same folder, fsync, rename).

    Raises:
        OutputPathError: ``path`` is a folder (the rename would fail naming the temp).
    """
    p = Path(path)
    if p.is_dir():
        raise OutputPathError(f"{str(p)!r} is a folder; give a file path")
    p.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=_prefix(p), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _mode("file"))
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


def write_json(path: str | Path, obj: Any) -> Path:
    """Pretty JSON (one trailing newline), written atomically."""
    return write_atomic(path, json.dumps(obj, indent=2) + "\n")
