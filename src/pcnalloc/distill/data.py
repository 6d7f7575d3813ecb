"""Streamed, episode-split training rows for distillation, read from a trajectory library.

Rows are split by ``episode_id`` (whole episodes are held out, so validation measures
generalisation to unseen request sequences); the split is a seeded permutation of the sorted
episode ids. Training batches come from a bounded shuffle buffer over streamed Parquet chunks,
or from memory when the library is small enough (``DistillConfig.cache_rows``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from pcnalloc.distill.config import DistillConfig
from pcnalloc.library import LibraryError, LibraryReader

TRAIN = "train"
VAL = "val"
_LABELS = ("q_values", "action_mask", "hard", "soft")


@dataclass
class Rows:
    """Prepared rows: input x (B, D) float32, teacher Q (B, A), mask (B, A) int8, hard (B, A)
    float32 and soft magnitude c (B, A) float32 (sum over the soft-cost kinds)."""

    x: np.ndarray
    q: np.ndarray
    mask: np.ndarray
    hard: np.ndarray
    soft: np.ndarray

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def take(self, idx: np.ndarray | slice) -> Rows:
        return Rows(self.x[idx], self.q[idx], self.mask[idx], self.hard[idx], self.soft[idx])

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
        train_episodes, val_episodes: sorted episode ids of each split.
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
        rng = np.random.default_rng(cfg.seed)
        perm = rng.permutation(episodes)
        n_val = min(max(1, round(cfg.val_fraction * episodes.size)), episodes.size - 1)
        self.val_episodes = np.sort(perm[:n_val])
        self.train_episodes = np.sort(perm[n_val:])
        self.num_rows = self.reader.num_rows
        self._cache: dict[str, Rows] | None = None
        self._cacheable = self.num_rows <= cfg.cache_rows

    def _prepare(self, batch: dict) -> tuple[Rows, np.ndarray]:
        rows = Rows(
            x=np.concatenate(
                [np.asarray(batch[k], dtype=np.float32) for k in self.input_key.split("+")], axis=1
            ),
            q=np.asarray(batch["q_values"], dtype=np.float32),
            mask=np.asarray(batch["action_mask"], dtype=np.int8),
            hard=np.asarray(batch["hard"], dtype=np.float32),
            soft=np.asarray(batch["soft"], dtype=np.float32).sum(axis=-1),
        )
        return rows, np.isin(batch["episode_id"], self.val_episodes)

    def _stream(self) -> Iterator[tuple[Rows, Rows]]:
        """(train part, val part) of each streamed chunk, in file order."""
        cols = [*self.input_key.split("+"), *_LABELS, "episode_id"]
        for batch in self.reader.iter_batches(self.cfg.read_batch_rows, cols):
            rows, is_val = self._prepare(batch)
            yield rows.take(~is_val), rows.take(is_val)

    def _fill_cache(self) -> dict[str, Rows]:
        if self._cache is None:
            tr, va = [], []
            for a, b in self._stream():
                tr.append(a)
                va.append(b)
            self._cache = {TRAIN: Rows.concat(tr), VAL: Rows.concat(va)}
        return self._cache

    def chunks(self, split: str) -> Iterator[Rows]:
        """Rows of ``split`` (``train`` | ``val``) in file order, chunk by chunk."""
        if self._cacheable:
            yield self._fill_cache()[split]
            return
        for tr, va in self._stream():
            part = tr if split == TRAIN else va
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

    def val_batches(self, batch_rows: int = 8192) -> Iterator[Rows]:
        """Validation rows in file order, in batches of at most ``batch_rows``."""
        for rows in self.chunks(VAL):
            for i in range(0, len(rows), batch_rows):
                yield rows.take(slice(i, i + batch_rows))


__all__ = ["TRAIN", "VAL", "LibraryData", "Rows", "metadata_sha256"]
