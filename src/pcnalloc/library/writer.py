"""Chunked, atomic Parquet writer of trajectory-library rows (layout in :mod:`.schema`)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pcnalloc.library.schema import (
    COLUMNS,
    SOFT,
    SOURCE,
    STRING_COLUMNS,
    VECTOR_COLUMNS,
    LibraryError,
    LibrarySpec,
    arrow_schema,
    column_shapes,
)

log = logging.getLogger(__name__)

RowBlock = dict[str, Any]
"""Column name → numpy array with a leading row axis B (shapes in ``column_shapes``); ``case``
and ``source`` may be a list of str or a single str broadcast to every row (``source`` may be
left out: it then reads ``DEFAULT_SOURCE``)."""
DEFAULT_SOURCE = "dqn"
"""``source`` of rows whose block does not name one (the DQN teacher, the original kind)."""


def rows_to_table(spec: LibrarySpec, block: RowBlock) -> pa.Table:
    """Validate a block of rows against ``spec`` and turn it into an Arrow table.

    Raises:
        LibraryError: a missing column or a column with the wrong shape.
    """
    if SOURCE not in block:
        block = {**block, SOURCE: DEFAULT_SOURCE}
    missing = [c for c in COLUMNS if c not in block]
    if missing:
        raise LibraryError(f"row block lacks columns {missing}; required: {list(COLUMNS)}")
    schema = arrow_schema(spec)
    shapes = column_shapes(spec)
    n = len(block["action"])
    arrays = []
    for field in schema:
        name = field.name
        if name in STRING_COLUMNS:
            v = block[name]
            vals = [v] * n if isinstance(v, str) else [str(x) for x in v]
            if len(vals) != n:
                raise LibraryError(f"column {name!r} has {len(vals)} rows; expected {n}")
            arrays.append(pa.array(vals, pa.string()))
            continue
        x = np.asarray(block[name])
        if x.shape != (n, *shapes[name]):
            raise LibraryError(
                f"column {name!r} has shape {x.shape}; expected {(n, *shapes[name])}"
            )
        if name in VECTOR_COLUMNS:
            flat = x.reshape(n, -1) if name == SOFT else x
            vt = field.type.value_type
            values = pa.array(np.ascontiguousarray(flat).ravel().astype(vt.to_pandas_dtype()))
            arrays.append(pa.FixedSizeListArray.from_arrays(values, flat.shape[1]))
        else:
            arrays.append(pa.array(x.astype(field.type.to_pandas_dtype()), field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


class LibraryWriter:
    """Append row blocks to one Parquet file, row group by row group; publish atomically.

    The file is written under a temporary name in the destination folder and renamed into
    place by :meth:`close`, so readers never see a half-written library file.

    Args:
        path: destination ``.parquet`` file.
        spec: the row layout (widths, action count).
        metadata: Parquet key/value metadata from :func:`.schema.encode_metadata`.
        row_group_rows: rows buffered before a row group is flushed (bounds memory).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        spec: LibrarySpec,
        metadata: dict[bytes, bytes],
        row_group_rows: int = 16_384,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.spec = spec
        self.row_group_rows = row_group_rows
        self.schema = arrow_schema(spec).with_metadata(metadata)
        fd, tmp = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
        )
        os.close(fd)
        self._tmp = Path(tmp)
        self._writer: pq.ParquetWriter | None = pq.ParquetWriter(
            str(self._tmp), self.schema, compression="zstd"
        )
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self.rows_written = 0

    def write(self, block: RowBlock) -> None:
        """Append a block of rows (any size); flushes whole row groups as they fill."""
        if self._writer is None:
            raise LibraryError(f"library writer for {self.path} is already closed")
        table = rows_to_table(self.spec, block)
        self._pending.append(table)
        self._pending_rows += table.num_rows
        if self._pending_rows >= self.row_group_rows:
            self._flush()

    def _flush(self) -> None:
        if not self._pending or self._writer is None:
            return
        table = pa.concat_tables(self._pending).replace_schema_metadata(self.schema.metadata)
        self._writer.write_table(table, row_group_size=self.row_group_rows)
        self.rows_written += table.num_rows
        self._pending, self._pending_rows = [], 0

    def close(self) -> Path:
        """Flush, finalise the file and rename it into place; returns the final path."""
        if self._writer is None:
            return self.path
        self._flush()
        self._writer.close()
        self._writer = None
        os.chmod(self._tmp, 0o644)  # mkstemp creates 0600; a library is meant to be shared
        os.replace(self._tmp, self.path)
        log.info("wrote %d library rows to %s", self.rows_written, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the partial file."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> LibraryWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


MANIFEST = "_manifest.json"
"""Name of a library folder's summary file. The leading underscore makes pyarrow, pandas,
polars and DuckDB skip it, so the folder reads as a plain Parquet dataset."""


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_manifest(folder: str | Path, manifest: dict[str, Any]) -> Path:
    """Write :data:`MANIFEST` (human-readable summary of a library folder) atomically.

    For every Parquet file named in ``manifest["files"]`` the manifest also records its
    SHA-256 and row count under ``parts``, which :class:`~pcnalloc.library.LibraryReader`
    checks, so a corrupted or swapped part is named rather than read.
    """
    folder = Path(folder)
    parts = {}
    for name in manifest.get("files", []):
        f = folder / name
        parts[name] = {"sha256": file_sha256(f), "rows": int(pq.ParquetFile(f).metadata.num_rows)}
    manifest = {**manifest, "parts": parts}
    p = folder / MANIFEST
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=".manifest.", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(manifest, fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, p)
    return p
