"""Atomic file writes: a temp file in the destination folder, fsync, then rename.

Readers never see a partial file and a failed write leaves nothing behind. Files get the
ordinary mode (0666 minus the umask) rather than ``mkstemp``'s 0600.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_atomic(path: str | Path, data: bytes | bytearray | memoryview | str) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


def write_json(path: str | Path, obj: Any) -> Path:
    """Pretty JSON (one trailing newline), written atomically."""
    return write_atomic(path, json.dumps(obj, indent=2) + "\n")
