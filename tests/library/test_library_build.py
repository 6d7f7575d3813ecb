"""Library build from a teacher: rows and labels match the env, same rows for any worker count."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pcnalloc.core.executors import LocalExecutor
from pcnalloc.library import LibraryError, LibraryReader
from pcnalloc.library.build import build_library
from pcnalloc.teacher import teacher_config, train_teacher


@pytest.fixture(scope="module")
def tiny_teacher(small_pool_graph_file, tmp_path_factory):
    cfg = teacher_config(
        env={
            "network": {"case": str(small_pool_graph_file)},
            "traffic": {"warm_start": False},
            "episode_requests": 40,
        },
        steps=10,
        learning_starts=100,
        eval_every=0,
        hidden=16,
        gnn_hidden=8,
        lstm_hidden=8,
        q_hidden=16,
    )
    return train_teacher(cfg, tmp_path_factory.mktemp("teacher")).checkpoint


class _ChunkingExecutor:
    """In-process ``map_ordered`` claiming 3 workers (changes how tasks are chunked)."""

    name = "fake"
    workers = 3

    def map_ordered(self, fn, items, *, progress=None):
        return [fn(x) for x in reversed(items)][::-1]


def _kw(graph):
    return dict(
        cases=[str(graph)], loads=[1.0, 2.0], episodes=3, requests=25, explore=0.2, lockstep=2
    )


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        if k == "case":
            assert a[k] == b[k]
        else:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_build_rows_labels_and_chunking_invariance(tiny_teacher, tmp_path, small_pool_graph_file):
    kw = _kw(small_pool_graph_file)
    serial = build_library(tiny_teacher, tmp_path / "serial", **kw)
    assert serial.rows == 2 * 3 * 25
    build_library(tiny_teacher, tmp_path / "chunked", executor=_ChunkingExecutor(), **kw)
    a = LibraryReader(tmp_path / "serial").read_all()
    _assert_same(a, LibraryReader(tmp_path / "chunked").read_all())
    n = len(a["action"])
    rows = np.arange(n)
    assert (a["action_mask"][rows, a["action"]] == 1).all()  # only valid actions executed
    assert ((a["hard"] == 1) == (a["action_mask"] == 0)).all()  # h(s,a) = not valid
    assert (a["soft"] >= 0).all()
    assert sorted(set(a["episode_id"].tolist())) == list(range(6))
    assert 0 < a["greedy"].mean() < 1  # exploration happened, greedy dominates
    q = np.where(a["action_mask"] == 1, a["q_values"], -np.inf)
    greedy = a["greedy"] == 1
    assert (q.argmax(1)[greedy] == a["action"][greedy]).all()
    meta = LibraryReader(tmp_path / "serial").metadata
    assert len(meta["teacher_sha256"]) == 64 and meta["loads"] == [1.0, 2.0]
    assert (tmp_path / "serial" / "_manifest.json").is_file()


def test_build_rejects_bad_arguments(tiny_teacher, tmp_path):
    with pytest.raises(LibraryError, match="explore"):
        build_library(
            tiny_teacher, tmp_path / "x", cases=["case14"], loads=[1.0], episodes=1, explore=2.0
        )


@pytest.mark.slow
def test_process_pool_gives_same_rows(tiny_teacher, tmp_path, small_pool_graph_file):
    kw = _kw(small_pool_graph_file)
    build_library(tiny_teacher, tmp_path / "serial", **kw)
    with LocalExecutor(2) as ex:
        build_library(tiny_teacher, tmp_path / "pool", executor=ex, **kw)
    _assert_same(
        LibraryReader(tmp_path / "serial").read_all(), LibraryReader(tmp_path / "pool").read_all()
    )


def test_library_folder_reads_as_a_parquet_dataset_and_parts_are_verified(
    tiny_teacher, tmp_path, small_pool_graph_file
):
    import pandas as pd

    out = tmp_path / "lib"
    res = build_library(tiny_teacher, out, **_kw(small_pool_graph_file))
    df = pd.read_parquet(out)  # the manifest does not get in the way
    assert len(df) == res.rows and "action" in df.columns
    manifest = json.loads((out / "_manifest.json").read_text())
    part = out / manifest["files"][0]
    assert manifest["parts"][part.name]["rows"] == res.rows
    # flip one byte in the middle of the part: the reader names it instead of reading it
    raw = bytearray(part.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    part.write_bytes(bytes(raw))
    with pytest.raises(LibraryError, match=rf"part .*{part.name}.* is corrupted"):
        LibraryReader(out)
    # a part that is not a Parquet file at all (and no manifest) is a LibraryError too
    (out / "_manifest.json").unlink()
    part.write_bytes(b"not parquet")
    with pytest.raises(LibraryError, match="not a readable Parquet file"):
        LibraryReader(out)
