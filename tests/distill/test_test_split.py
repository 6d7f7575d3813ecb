"""The test split: held-out episodes that neither training nor model selection ever read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pcnalloc.distill import DistillConfig
from pcnalloc.distill.data import LibraryData
from pcnalloc.distill.fidelity import held_out_fidelity
from pcnalloc.distill.trainer import train_student
from pcnalloc.library import LibraryError


def _disjoint(data: LibraryData) -> bool:
    tr, va, te = (
        set(map(int, e)) for e in (data.train_episodes, data.val_episodes, data.test_episodes)
    )
    return not (tr & va or tr & te or va & te)


def test_test_split_is_disjoint_from_validation_and_training(synthetic_library: Path) -> None:
    for seed in range(5):
        data = LibraryData(
            synthetic_library, input_key="compact", cfg=DistillConfig(seed=seed, test_fraction=0.2)
        )
        assert len(data.test_episodes) == 4 and len(data.val_episodes) == 2
        assert _disjoint(data)
        assert len(data.train_episodes) + 6 == 20
        # the rows served per split carry only that split's episodes (streamed or cached)
        n_test = sum(len(r) for r in data.test_batches())
        assert n_test == 4 * 300 and data.fidelity_split == "test"
    # planted fault: a split that reuses a validation episode for testing is caught
    data.test_episodes = np.sort(np.r_[data.test_episodes[1:], data.val_episodes[:1]])
    assert not _disjoint(data)


def test_fidelity_is_reported_on_the_test_split(synthetic_library: Path) -> None:
    cfg = DistillConfig(epochs=2, test_fraction=0.2, seed=1)
    data = LibraryData(synthetic_library, input_key="compact", cfg=cfg)
    res = train_student(data, kind="edge", cfg=cfg)
    fid = held_out_fidelity(res.model, data, cfg)
    assert fid["split"] == "test" and fid["rows"] == 4 * 300 and fid["held_out_episodes"] == 4
    off = DistillConfig(epochs=2, test_fraction=0.0, seed=1)
    d0 = LibraryData(synthetic_library, input_key="compact", cfg=off)
    assert d0.test_episodes.size == 0 and d0.fidelity_split == "val"
    assert held_out_fidelity(res.model, d0, off)["split"] == "val"


def test_too_few_episodes_for_a_test_split(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "_distill_lib", Path(__file__).with_name("conftest.py")
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    write_synthetic_library = mod.write_synthetic_library
    lib = write_synthetic_library(tmp_path, episodes=2, rows=10, files=1)
    data = LibraryData(lib, input_key="compact", cfg=DistillConfig())
    assert data.test_episodes.size == 0 and data.fidelity_split == "val"
    assert data.val_episodes.size == 1 and data.train_episodes.size == 1
    one = write_synthetic_library(tmp_path / "one", episodes=1, rows=10, files=1)
    with pytest.raises(LibraryError, match="needs at least 2"):
        LibraryData(one, input_key="compact", cfg=DistillConfig())
