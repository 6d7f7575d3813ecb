"""Streamed, episode-split training rows for distillation, read from a trajectory library.

Rows are split by ``episode_id`` into train, validation and test (whole episodes are held
out, so both measure generalisation to unseen request sequences); the split is a seeded
permutation of the sorted episode ids: the first ``val_fraction`` of it validates (early
stopping and best-epoch selection read it), the next ``test_fraction`` is the test split that
model selection never sees (fidelity is reported on it), the rest trains.
Training batches come from a bounded shuffle buffer over streamed Parquet chunks,
or from memory when the library is small enough (``DistillConfig.cache_rows``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from pcnalloc.distill.config import DistillConfig
from pcnalloc.library import LibraryError, LibraryReader

log = logging.getLogger(__name__)

TRAIN = "train"
VAL = "val"
TEST = "test"
_LABELS = ("q_values", "action_mask", "hard", "soft", "action", "reward")


@dataclass
class Rows:
    """Prepared rows: input x (B, D) float32, teacher Q (B, A), mask (B, A) int8, hard (B, A)
    float32, soft magnitude c (B, A) float32 (sum over the soft-cost kinds), logged action (B,)
    int64 and its reward (B,) float32 (the task term's inputs)."""

    x: np.ndarray
    q: np.ndarray
    mask: np.ndarray
    hard: np.ndarray
    soft: np.ndarray
    action: np.ndarray
    reward: np.ndarray

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def take(self, idx: np.ndarray | slice) -> Rows:
        return Rows(*(getattr(self, f)[idx] for f in Rows.__annotations__))

    def task_tensors(self) -> tuple[Tensor, Tensor]:
        """(action, reward) as torch tensors."""
        return (
            torch.from_numpy(np.ascontiguousarray(self.action)),
            torch.from_numpy(np.ascontiguousarray(self.reward)),
        )

    def tensors(self) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """(x, q, mask, hard, soft) as torch tensors (zero-copy where possible)."""
        return (
            torch.from_numpy(np.ascontiguousarray(self.x)),
            torch.from_numpy(np.ascontiguousarray(self.q)),
            torch.from_numpy(np.ascontiguousarray(self.mask)),
            torch.from_numpy(np.ascontiguousarray(self.hard)),
            torch.from_numpy(np.ascontiguousarray(self.soft)),
        )

    @staticmethod
    def concat(parts: list[Rows]) -> Rows:
        return Rows(*(np.concatenate([getattr(p, f) for p in parts]) for f in Rows.__annotations__))


def metadata_sha256(reader: LibraryReader) -> str:
    """sha256 of the canonical JSON of every library file's metadata (identifies the library)."""
    blob = json.dumps(reader.file_metadata, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()


class LibraryData:
    """Episode-split access to one library for a student reading column ``input_key``.

    Args:
        path: library folder or file.
        input_key: ``compact`` (edge student), ``state`` (latent MLP) or ``state+compact``
            (shared-head latent student: both columns, concatenated in that order).
        cfg: distillation config (seed, split share, chunking, cache size).

    Attributes:
        reader: the underlying :class:`LibraryReader`.
        train_episodes, val_episodes, test_episodes: sorted episode ids of each split
            (``test_episodes`` is empty when ``cfg.test_fraction`` is 0).
        metadata_sha256: identity of the library (see :func:`metadata_sha256`).
    """

    def __init__(self, path: str | Path, *, input_key: str, cfg: DistillConfig) -> None:
        if input_key not in ("compact", "state", "state+compact"):
            raise LibraryError(
                f"unknown student input {input_key!r}; accepted: compact, state, state+compact"
            )
        self.reader = LibraryReader(path)
        self.spec = self.reader.spec
        self.input_key = input_key
        self.cfg = cfg
        self.metadata_sha256 = metadata_sha256(self.reader)
        ids = [b["episode_id"] for b in self.reader.iter_batches(1 << 18, ["episode_id"])]
        episodes = np.unique(np.concatenate(ids)) if ids else np.zeros(0, np.int64)
        if episodes.size < 2:
            raise LibraryError(
                f"library {path} holds {episodes.size} episode(s); a train/validation split by "
                "episode needs at least 2"
            )
        with_test = cfg.test_fraction > 0 and episodes.size >= 3
        if cfg.test_fraction > 0 and not with_test:
            log.warning(
                "library %s holds %d episodes: too few for a test split (needs ≥ 3); fidelity "
                "is reported on the validation split",
                path,
                episodes.size,
            )
        rng = np.random.default_rng(cfg.seed)
        perm = rng.permutation(episodes)
        n_val = min(max(1, round(cfg.val_fraction * episodes.size)), episodes.size - 1 - with_test)
        n_test = 0
        if with_test:
            n_test = round(cfg.test_fraction * episodes.size)
            n_test = min(max(1, n_test), episodes.size - n_val - 1)
        self.val_episodes = np.sort(perm[:n_val])
        self.test_episodes = np.sort(perm[n_val : n_val + n_test])
        self.train_episodes = np.sort(perm[n_val + n_test :])
        self.num_rows = self.reader.num_rows
        self._cache: dict[str, Rows] | None = None
        self._cacheable = self.num_rows <= cfg.cache_rows

    @property
    def fidelity_split(self) -> str:
        """Split fidelity is reported on: ``test``, or ``val`` when there is no test split."""
        return TEST if self.test_episodes.size else VAL

    def _prepare(self, batch: dict) -> tuple[Rows, np.ndarray]:
        rows = Rows(
            x=np.concatenate(
                [np.asarray(batch[k], dtype=np.float32) for k in self.input_key.split("+")], axis=1
            ),
            q=np.asarray(batch["q_values"], dtype=np.float32),
            mask=np.asarray(batch["action_mask"], dtype=np.int8),
            hard=np.asarray(batch["hard"], dtype=np.float32),
            soft=np.asarray(batch["soft"], dtype=np.float32).sum(axis=-1),
            action=np.asarray(batch["action"], dtype=np.int64),
            reward=np.asarray(batch["reward"], dtype=np.float32),
        )
        ep = batch["episode_id"]
        split = np.zeros(ep.shape[0], np.int8)  # 0 train, 1 val, 2 test
        split[np.isin(ep, self.val_episodes)] = 1
        split[np.isin(ep, self.test_episodes)] = 2
        return rows, split

    def _stream(self) -> Iterator[dict[str, Rows]]:
        """{train, val, test} parts of each streamed chunk, in file order."""
        cols = [*self.input_key.split("+"), *_LABELS, "episode_id"]
        for batch in self.reader.iter_batches(self.cfg.read_batch_rows, cols):
            rows, split = self._prepare(batch)
            yield {name: rows.take(split == i) for i, name in enumerate((TRAIN, VAL, TEST))}

    def _fill_cache(self) -> dict[str, Rows]:
        if self._cache is None:
            parts: dict[str, list[Rows]] = {TRAIN: [], VAL: [], TEST: []}
            for chunk in self._stream():
                for k, v in chunk.items():
                    parts[k].append(v)
            self._cache = {k: Rows.concat(v) for k, v in parts.items()}
        return self._cache

    def chunks(self, split: str) -> Iterator[Rows]:
        """Rows of ``split`` (``train`` | ``val`` | ``test``) in file order, chunk by chunk."""
        if split not in (TRAIN, VAL, TEST):
            raise LibraryError(f"unknown split {split!r}; accepted: train, val, test")
        if self._cacheable:
            yield self._fill_cache()[split]
            return
        for chunk in self._stream():
            part = chunk[split]
            if len(part):
                yield part

    def input_stats(self) -> tuple[np.ndarray, np.ndarray, int]:
        """Mean (D,), standard deviation (D,) of the training inputs and their row count."""
        s = s2 = None
        n = 0
        for rows in self.chunks(TRAIN):
            x = rows.x.astype(np.float64)
            s = x.sum(0) if s is None else s + x.sum(0)
            s2 = (x * x).sum(0) if s2 is None else s2 + (x * x).sum(0)
            n += len(rows)
        if n == 0 or s is None or s2 is None:
            raise LibraryError("the training split holds no rows")
        mean = s / n
        var = np.maximum(s2 / n - mean * mean, 0.0)
        return mean.astype(np.float32), np.sqrt(var).astype(np.float32), n

    def train_batches(self, rng: np.random.Generator) -> Iterator[Rows]:
        """Shuffled training minibatches of ``cfg.batch_size`` rows (the last may be smaller).

        In-memory libraries are permuted whole; streamed ones through a shuffle buffer of
        ``cfg.shuffle_chunks`` chunks whose leftover rows carry into the next buffer.
        """
        bs = self.cfg.batch_size
        buf: list[Rows] = []
        carry: Rows | None = None
        buffered = 0

        def drain(parts: list[Rows], final: bool) -> Iterator[Rows]:
            nonlocal carry
            pool = Rows.concat(parts)
            pool = pool.take(rng.permutation(len(pool)))
            full = (len(pool) // bs) * bs
            for i in range(0, full, bs):
                yield pool.take(slice(i, i + bs))
            rest = pool.take(slice(full, len(pool)))
            if final:
                if len(rest):
                    yield rest
                carry = None
            else:
                carry = rest

        for rows in self.chunks(TRAIN):
            buf.append(rows)
            buffered += len(rows)
            if buffered >= self.cfg.shuffle_chunks * self.cfg.read_batch_rows:
                yield from drain(([carry] if carry is not None else []) + buf, final=False)
                buf, buffered = [], 0
        parts = ([carry] if carry is not None else []) + buf
        if parts:
            yield from drain(parts, final=True)

    def val_batches(self, batch_rows: int = 8192, split: str = VAL) -> Iterator[Rows]:
        """Validation (or ``split``) rows in file order, in batches of at most ``batch_rows``."""
        for rows in self.chunks(split):
            for i in range(0, len(rows), batch_rows):
                yield rows.take(slice(i, i + batch_rows))

    def test_batches(self, batch_rows: int = 8192) -> Iterator[Rows]:
        """Rows of :attr:`fidelity_split` (the test split when there is one)."""
        return self.val_batches(batch_rows, self.fidelity_split)


__all__ = ["TEST", "TRAIN", "VAL", "LibraryData", "Rows", "metadata_sha256"]
