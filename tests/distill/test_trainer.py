"""Trainer on a tiny synthetic library: determinism, agreement, outputs, episode split."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from pcnalloc.distill import DistillConfig, LibraryData, load_student, train_student

FAST = {"epochs": 6, "batch_size": 128, "patience": 3, "lr": 1e-3}


@pytest.fixture(scope="module")
def trained(synthetic_library: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("edge")
    res = train_student(
        synthetic_library, kind="edge", arch="mlp", cfg=DistillConfig(**FAST), out_dir=out
    )
    return res, out


def test_same_seed_same_weights(synthetic_library: Path, trained) -> None:
    first, _ = trained
    again = train_student(synthetic_library, kind="edge", arch="mlp", cfg=DistillConfig(**FAST))
    for k, v in first.model.state_dict().items():
        assert torch.equal(v, again.model.state_dict()[k]), k
    other = train_student(
        synthetic_library,
        kind="edge",
        arch="mlp",
        cfg=DistillConfig(**{**FAST, "seed": 1, "epochs": 1}),
    )
    assert not torch.equal(other.model.net[0].weight, first.model.net[0].weight)


def test_student_learns_easy_teacher(trained) -> None:
    res, _ = trained
    assert res.best["val_top1_agreement"] >= 0.95
    assert res.best["val_hard_proposal_rate"] <= 0.02
    assert res.history[-1]["val_kl"] < res.history[0]["val_kl"] or res.best_epoch == 1


def test_outputs_written_and_loadable(trained) -> None:
    res, out = trained
    assert {p.name for p in out.iterdir()} >= {"student.pt", "history.csv", "curves.png"}
    model, ck = load_student(out)
    assert ck["distill_config"]["tau"] == DistillConfig().tau
    assert len(ck["library_metadata_sha256"]) == 64
    assert ck["best_epoch"] == res.best_epoch
    x = torch.randn(4, 183, generator=torch.Generator().manual_seed(0))
    assert torch.equal(model(x), res.model(x))
    with open(out / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(res.history)
    assert {"train_kl", "val_hard", "val_top1_agreement"} <= set(rows[0])
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_split_holds_out_whole_episodes(synthetic_library: Path) -> None:
    cfg = DistillConfig(val_fraction=0.25, seed=5)
    data = LibraryData(synthetic_library, input_key="compact", cfg=cfg)
    assert len(data.val_episodes) == 5 and len(data.test_episodes) == 2
    assert len(data.train_episodes) == 13
    assert not set(data.val_episodes) & set(data.train_episodes)
    again = LibraryData(synthetic_library, input_key="compact", cfg=cfg)
    assert np.array_equal(again.val_episodes, data.val_episodes)
    n_val = sum(len(r) for r in data.val_batches())
    assert n_val == 5 * 300


def test_streamed_batches_cover_every_training_row(synthetic_library: Path) -> None:
    cfg = DistillConfig(cache_rows=0, read_batch_rows=500, shuffle_chunks=2, batch_size=256)
    data = LibraryData(synthetic_library, input_key="state", cfg=cfg)
    rng = np.random.default_rng(0)
    sizes = [len(b) for b in data.train_batches(rng)]
    assert sum(sizes) == len(data.train_episodes) * 300
    assert all(s == 256 for s in sizes[:-1])
    xs = np.concatenate([b.x[:, 0] for b in data.train_batches(np.random.default_rng(0))])
    ordered = np.concatenate([c.x[:, 0] for c in data.chunks("train")])
    assert not np.array_equal(xs, ordered)  # shuffled
    assert np.allclose(np.sort(xs), np.sort(ordered))  # same rows
