"""Streaming reader of trajectory libraries, with a guard against a mismatched env config."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from pcnalloc.config import EnvConfig
from pcnalloc.library.schema import (
    COLUMNS,
    SOURCE,
    STRING_COLUMNS,
    VECTOR_COLUMNS,
    LibraryError,
    LibrarySpec,
    column_shapes,
    decode_metadata,
)
from pcnalloc.library.writer import MANIFEST, file_sha256

Batch = dict[str, Any]
"""Column name → numpy array with leading row axis B (``case`` is a list of str); shapes in
:func:`pcnalloc.library.schema.column_shapes` (``soft`` is (B, A, Q))."""


def library_files(path: str | Path) -> list[Path]:
    """The Parquet files of a library: ``path`` itself, or ``part-*.parquet`` in a folder."""
    p = Path(path)
    if p.is_file():
        return [p]
    if p.is_dir():
        files = sorted(p.glob("*.parquet"))
        if files:
            return files
        raise LibraryError(f"library folder {str(p)!r} holds no .parquet files")
    raise LibraryError(f"library {str(p)!r} does not exist")


def read_manifest(folder: str | Path) -> dict[str, Any] | None:
    """The folder's manifest (``_manifest.json``, or ``manifest.json`` of older libraries),
    or None when it has none."""
    for name in (MANIFEST, "manifest.json"):
        p = Path(folder) / name
        if p.is_file():
            try:
                data = json.loads(p.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
                raise LibraryError(f"library manifest {str(p)!r} is unreadable: {err}") from None
            if not isinstance(data, dict):
                raise LibraryError(f"library manifest {str(p)!r} must hold a JSON object")
            return data
    return None


def verify_parts(folder: str | Path, files: Sequence[Path]) -> None:
    """Check each part against the SHA-256 and row count its manifest recorded.

    Raises:
        LibraryError: naming the first part that is missing from the manifest, differs in
            bytes (corrupted, truncated, replaced) or in row count.
    """
    manifest = read_manifest(folder)
    parts = (manifest or {}).get("parts")
    if not parts:  # libraries written before part hashes existed
        return
    for f in files:
        rec = parts.get(f.name)
        if rec is None:
            raise LibraryError(f"library part {str(f)!r} is not listed in the manifest")
        if file_sha256(f) != rec.get("sha256"):
            raise LibraryError(
                f"library part {str(f)!r} is corrupted: its SHA-256 differs from the manifest"
            )
    missing = sorted(set(parts) - {f.name for f in files})
    if missing:
        raise LibraryError(f"library {str(folder)!r} lacks parts listed in its manifest: {missing}")


def _schema_metadata(f: Path) -> dict[bytes, bytes] | None:
    try:
        return pq.read_schema(f).metadata
    except (OSError, pa.ArrowException) as err:
        raise LibraryError(
            f"library file {str(f)!r} is not a readable Parquet file: {err}"
        ) from None


def _to_numpy(arr: pa.Array | pa.ChunkedArray, name: str, shapes: dict) -> Any:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    n = len(arr)
    if name in STRING_COLUMNS:
        return arr.to_pylist()
    if name in VECTOR_COLUMNS:
        flat = arr.flatten().to_numpy(zero_copy_only=False)
        return flat.reshape(n, *shapes[name])
    return arr.to_numpy(zero_copy_only=False)


class LibraryReader:
    """Read a library folder (or one file) in streamed batches.

    Args:
        path: library folder or ``.parquet`` file.
        expect: the spec (or an EnvConfig to derive it from) the caller was built for; a
            library with different K, L, compact width, state width, soft/hard labels or
            catalog raises :class:`LibraryError` naming every differing field.

    Attributes:
        files: the Parquet files read.
        metadata: decoded metadata of the first file (env config, teacher sha256, seeds…).
        spec: the library's row layout.
    """

    def __init__(self, path: str | Path, *, expect: LibrarySpec | EnvConfig | None = None) -> None:
        self.files = library_files(path)
        if Path(path).is_dir():
            verify_parts(path, self.files)
        metas = [decode_metadata(_schema_metadata(f), str(f)) for f in self.files]
        self.metadata: dict[str, Any] = metas[0]
        self.spec = LibrarySpec.from_json(metas[0]["spec"])
        for f, m in zip(self.files[1:], metas[1:], strict=True):
            other = LibrarySpec.from_json(m["spec"])
            if other != self.spec:
                raise LibraryError(
                    f"library file {f} disagrees with {self.files[0]}: "
                    + "; ".join(other.mismatches(self.spec))
                )
        self.file_metadata = metas
        if expect is not None:
            want = LibrarySpec.from_env_config(expect) if isinstance(expect, EnvConfig) else expect
            if want.state_dim != self.spec.state_dim and isinstance(expect, EnvConfig):
                want = LibrarySpec(**{**want.__dict__, "state_dim": self.spec.state_dim})
            bad = self.spec.mismatches(want)
            if bad:
                raise LibraryError(
                    f"library {path} was built for another env config: " + "; ".join(bad)
                )
        self._shapes = column_shapes(self.spec)
        self._dataset = ds.dataset([str(f) for f in self.files], format="parquet")
        self._has_source = SOURCE in self._dataset.schema.names
        if not self._has_source and len({m.get("schema_version") for m in metas}) > 1:
            versions = sorted({m["schema_version"] for m in metas})
            raise LibraryError(f"library {path} mixes schema versions {versions}")

    @property
    def sources(self) -> list[str]:
        """Distinct ``source`` tags of the rows (teacher kinds/specs), sorted."""
        if not self._has_source:
            return [self._v1_source()]
        col = self._dataset.to_table(columns=[SOURCE]).column(SOURCE)
        return sorted({str(x) for x in pc.unique(col).to_pylist()})

    def _v1_source(self) -> str:
        return str(self.metadata.get("extra", {}).get("teacher", "dqn"))

    @property
    def num_rows(self) -> int:
        return int(self._dataset.count_rows())

    def iter_batches(
        self, batch_size: int = 4096, columns: Sequence[str] | None = None
    ) -> Iterator[Batch]:
        """Yield batches of at most ``batch_size`` rows in file order, never loading it all."""
        cols = list(columns) if columns is not None else list(COLUMNS)
        unknown = [c for c in cols if c not in COLUMNS]
        if unknown:
            raise LibraryError(f"unknown library columns {unknown}; accepted: {list(COLUMNS)}")
        fill = SOURCE in cols and not self._has_source  # v1 file: one source, from metadata
        read = [c for c in cols if not (fill and c == SOURCE)] or ["step"]
        try:
            for rb in self._dataset.to_batches(columns=read, batch_size=batch_size):
                if rb.num_rows == 0:
                    continue
                out = {c: _to_numpy(rb.column(c), c, self._shapes) for c in read if c in cols}
                if fill:
                    out[SOURCE] = [self._v1_source()] * rb.num_rows
                yield {c: out[c] for c in cols}
        except (OSError, pa.ArrowException) as err:
            raise LibraryError(f"library {self.files[0].parent} is unreadable: {err}") from None

    def read_all(self, columns: Sequence[str] | None = None) -> Batch:
        """Every row at once (small libraries and tests only)."""
        parts = list(self.iter_batches(1 << 20, columns))
        if not parts:
            return {}
        out: Batch = {}
        for c in parts[0]:
            if c in STRING_COLUMNS:
                out[c] = [x for p in parts for x in p[c]]
            else:
                out[c] = np.concatenate([p[c] for p in parts])
        return out


__all__ = ["Batch", "LibraryReader", "library_files", "read_manifest", "verify_parts"]
