"""Library write → read round trip, metadata, and the mismatched-config guard."""

from __future__ import annotations

import numpy as np
import pytest

from pcnalloc.config import env_config
from pcnalloc.library import (
    COLUMNS,
    LibraryError,
    LibraryReader,
    LibrarySpec,
    LibraryWriter,
    column_shapes,
    encode_metadata,
)


def _block(spec: LibrarySpec, n: int, rng: np.random.Generator, case: str = "case14") -> dict:
    A = spec.n_actions
    return {
        "compact": rng.normal(size=(n, spec.compact_dim)).astype(np.float32),
        "state": rng.normal(size=(n, spec.state_dim)).astype(np.float32),
        "q_values": rng.normal(size=(n, A)).astype(np.float32),
        "action_mask": rng.integers(0, 2, size=(n, A)).astype(np.int8),
        "hard": rng.integers(0, 2, size=(n, A)).astype(np.int8),
        "soft": rng.random(size=(n, A, spec.n_soft)).astype(np.float32),
        "action": rng.integers(0, A, size=n),
        "greedy": rng.integers(0, 2, size=n),
        "reward": rng.normal(size=n).astype(np.float32),
        "episode_id": np.full(n, 7),
        "case": case,
        "load": np.full(n, 1.5, dtype=np.float32),
        "seed": np.full(n, 123),
        "step": np.arange(n),
    }


def test_roundtrip_rows_and_metadata(tmp_path):
    cfg = env_config(network={"case": "case14"})
    spec = LibrarySpec.from_env_config(cfg)
    assert spec.n_actions == 13 and spec.compact_dim == 183
    rng = np.random.default_rng(0)
    blocks = [_block(spec, 50, rng), _block(spec, 70, rng, case="case30")]
    meta = encode_metadata(
        spec, env_config=cfg, teacher_sha256="ab" * 32, seeds=[1, 2], cases=["case14"], loads=[1.5]
    )
    with LibraryWriter(
        tmp_path / "part-00000.parquet", spec=spec, metadata=meta, row_group_rows=32
    ) as w:
        for b in blocks:
            w.write(b)
    reader = LibraryReader(tmp_path, expect=cfg)
    assert reader.num_rows == 120
    assert reader.metadata["teacher_sha256"] == "ab" * 32
    assert reader.metadata["seeds"] == [1, 2]
    assert reader.metadata["env_config"]["k_paths"] == 4
    got = reader.read_all()
    assert set(got) == set(COLUMNS)
    shapes = column_shapes(spec)
    for c in COLUMNS:
        if c == "case":
            assert got[c] == ["case14"] * 50 + ["case30"] * 70
            continue
        if c == "source":  # blocks without a source tag read as the DQN teacher's
            assert got[c] == ["dqn"] * 120
            continue
        want = np.concatenate([np.asarray(b[c]) for b in blocks])
        assert got[c].shape == (120, *shapes[c])
        np.testing.assert_array_equal(got[c], want.astype(got[c].dtype))
    # Streaming in small batches yields the same rows in order.
    steps = np.concatenate([b["step"] for b in reader.iter_batches(16, columns=["step"])])
    np.testing.assert_array_equal(steps, got["step"])


def test_mismatched_config_is_refused(tmp_path):
    cfg = env_config(network={"case": "case14"})
    spec = LibrarySpec.from_env_config(cfg)
    meta = encode_metadata(spec, env_config=cfg, teacher_sha256="0", seeds=[0], cases=[], loads=[])
    with LibraryWriter(tmp_path / "a.parquet", spec=spec, metadata=meta) as w:
        w.write(_block(spec, 5, np.random.default_rng(1)))
    with pytest.raises(LibraryError, match="k_paths"):
        LibraryReader(tmp_path, expect=env_config(k_paths=8))
    with pytest.raises(LibraryError, match="shape"):
        bad = _block(spec, 5, np.random.default_rng(1))
        bad["q_values"] = bad["q_values"][:, :5]
        LibraryWriter(tmp_path / "b.parquet", spec=spec, metadata=meta).write(bad)


def test_missing_library_is_typed_error(tmp_path):
    with pytest.raises(LibraryError, match="does not exist"):
        LibraryReader(tmp_path / "nope")
