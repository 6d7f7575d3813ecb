"""Trajectory library: teacher rollouts with Q-values and constraint labels, in Parquet.

Layout and metadata: :mod:`pcnalloc.library.schema`; writing: :mod:`.writer`; streaming
reads: :mod:`.reader`; rollouts: :mod:`.build`.
"""

from pcnalloc.library.reader import Batch, LibraryReader, library_files
from pcnalloc.library.schema import (
    COLUMNS,
    SCHEMA_VERSION,
    STATE_DIM,
    LibraryError,
    LibrarySpec,
    arrow_schema,
    column_shapes,
    decode_metadata,
    encode_metadata,
)
from pcnalloc.library.writer import LibraryWriter, RowBlock, rows_to_table, write_manifest

__all__ = [
    "COLUMNS",
    "SCHEMA_VERSION",
    "STATE_DIM",
    "Batch",
    "LibraryError",
    "LibraryReader",
    "LibrarySpec",
    "LibraryWriter",
    "RowBlock",
    "arrow_schema",
    "column_shapes",
    "decode_metadata",
    "encode_metadata",
    "library_files",
    "rows_to_table",
    "write_manifest",
]
