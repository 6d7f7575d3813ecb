"""A library folder is a Parquet dataset to plain readers: pyarrow, pandas, polars, DuckDB
(each one that is installed), with the manifest beside the parts in the way of none."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pcnalloc.config import env_config
from pcnalloc.library import LibraryReader
from pcnalloc.library.build import build_library


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("readers") / "library"
    cfg = env_config(network={"case": "case14"}, traffic={"warm_start": False})
    build_library(
        "ksp-ff", out, cases=["case14"], loads=[1.0], episodes=2, requests=30, explore=0.0, env=cfg
    )
    assert (out / "_manifest.json").is_file()
    return out


def _expected(folder: Path) -> tuple[int, list[int]]:
    rows = LibraryReader(folder).read_all()
    return len(rows["action"]), sorted(int(a) for a in rows["action"])


def test_pyarrow_dataset(library: Path) -> None:
    import pyarrow.dataset as pads

    t = pads.dataset(library).to_table()  # the folder itself, no glob
    n, actions = _expected(library)
    assert t.num_rows == n and sorted(t.column("action").to_pylist()) == actions
    names = json.loads(pads.dataset(library).schema.metadata[b"compact_features"])
    assert len(names) == len(t.column("compact")[0])


def test_pandas(library: Path) -> None:
    pd = pytest.importorskip("pandas")
    df = pd.read_parquet(library)
    n, actions = _expected(library)
    assert len(df) == n and sorted(df["action"].tolist()) == actions
    assert np.asarray(df["compact"].iloc[0]).ndim == 1


def test_polars(library: Path) -> None:
    pl = pytest.importorskip("polars")
    # polars refuses a bare folder whose files have different extensions (it skips no
    # ``_``-prefixed side file), so polars users name the parts with a glob
    df = pl.read_parquet(library / "*.parquet")
    n, actions = _expected(library)
    assert df.height == n and sorted(df["action"].to_list()) == actions


def test_duckdb(library: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    con = duckdb.connect()
    n, actions = _expected(library)
    (count,) = con.execute(f"SELECT count(*) FROM read_parquet('{library}')").fetchone()
    got = [
        r[0] for r in con.execute(f"SELECT action FROM '{library}/*.parquet' ORDER BY 1").fetchall()
    ]
    assert count == n and got == actions


def test_a_side_file_named_like_a_part_would_break_the_readers(
    library: Path, tmp_path: Path
) -> None:
    """Planted fault: the old side-file name (``manifest.json`` among the parts, not prefixed
    with ``_``) is read as a part by pyarrow and fails, which is why the manifest is
    ``_manifest.json``."""
    import shutil

    import pyarrow.dataset as pads

    bad = tmp_path / "bad"
    shutil.copytree(library, bad)
    (bad / "_manifest.json").rename(bad / "manifest.json")
    with pytest.raises(Exception, match=r"(?i)parquet|magic"):
        pads.dataset(bad).to_table()
