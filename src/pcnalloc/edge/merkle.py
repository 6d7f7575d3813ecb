"""Merkle tree hashing, inclusion and consistency proofs after RFC 9162 §2.1 (CT v2).

Written here because no maintained Python library for RFC 9162/6962 Merkle proofs is among
the project's dependencies (``cryptography`` has no Merkle trees); the module is small, pure
``hashlib`` and tested against the reference vectors of the Certificate Transparency code
(the 8-leaf tree of ``transparency-dev/merkle``, formerly ``google/certificate-transparency``).

Definitions (RFC 9162 §2.1.1), with ``D[n]`` the list of ``n`` leaf inputs and ``k`` the
largest power of two smaller than ``n``::

    MTH({})        = SHA-256()
    MTH({d(0)})    = SHA-256(0x00 || d(0))                      # leaf hash
    MTH(D[n])      = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n])) # node hash

The functions below work on *leaf hashes* (``leaf_hash(d)``), so a caller hashes each leaf
once and keeps the 32-byte digests. Proof checks raise :class:`ProofError` naming what did
not match; a proof for another tree (wrong size or root) fails the same way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from pcnalloc.errors import PcnallocError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(PcnallocError):
    """An inclusion or consistency proof that does not verify, or impossible proof arguments."""


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 leaf hash ``SHA-256(0x00 || data)``."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly smaller than ``n`` (``n ≥ 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaves: Sequence[bytes]) -> bytes:
    """Merkle tree head ``MTH(D[n])`` of a list of leaf hashes."""
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[0]
    k = _split(n)
    return node_hash(root(leaves[:k]), root(leaves[k:]))


class Frontier:
    """Incremental Merkle tree head of an append-only list (a compact range from 0).

    Keeps one hash per set bit of the size (the perfect subtrees, largest on the left), so
    appending is O(log n) and the head of the current size is a right fold of them.
    """

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[bytes] = []

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash."""
        h, n = leaf, self.size
        while n & 1:  # merge completed perfect subtrees, as a binary counter carries
            h = node_hash(self._stack.pop(), h)
            n >>= 1
        self._stack.append(h)
        self.size += 1

    def root(self) -> bytes:
        """``MTH`` of the leaves appended so far."""
        if not self._stack:
            return EMPTY_ROOT
        h = self._stack[-1]
        for left in reversed(self._stack[:-1]):
            h = node_hash(left, h)
        return h


class Tree:
    """An append-only Merkle tree that keeps every perfect subtree's root, for cheap proofs.

    The functions above recompute subtree roots from the leaf hashes, O(n) per proof; a log
    writer that serves consistency proofs at every tree head (committee cosigning) keeps
    this instead: O(n) hashes of memory (about 2 × 32 bytes per leaf), amortised O(1) node
    hashes per append and O(log² n) per root or proof of any size. The results equal
    :func:`root`, :func:`inclusion_proof` and :func:`consistency_proof` (tested on every
    size and pair up to 40 leaves).
    """

    def __init__(self, leaves: Sequence[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = [[]]  # level h: roots of aligned 2**h blocks
        for leaf in leaves:
            self.append(leaf)

    @property
    def size(self) -> int:
        return len(self._levels[0])

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash."""
        self._levels[0].append(leaf)
        h, i = 0, len(self._levels[0]) - 1
        while i & 1:  # a right child completes its parent block
            if h + 1 == len(self._levels):
                self._levels.append([])
            lv = self._levels[h]
            self._levels[h + 1].append(node_hash(lv[i - 1], lv[i]))
            h, i = h + 1, i >> 1

    def _range(self, start: int, end: int) -> bytes:
        """``MTH(D[start:end])`` for a range of the RFC 9162 recursion (start aligned)."""
        n = end - start
        if n & (n - 1) == 0:  # a perfect block, aligned by construction of the recursion
            return self._levels[n.bit_length() - 1][start >> (n.bit_length() - 1)]
        k = _split(n)
        return node_hash(self._range(start, start + k), self._range(start + k, end))

    def _size(self, size: int | None) -> int:
        n = self.size if size is None else size
        if not isinstance(n, int) or not 0 <= n <= self.size:
            raise ProofError(f"tree size {n!r} is out of range; accepted: 0..{self.size}")
        return n

    def root(self, size: int | None = None) -> bytes:
        """``MTH`` of the first ``size`` leaves (default: all)."""
        n = self._size(size)
        return EMPTY_ROOT if n == 0 else self._range(0, n)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Audit path ``PATH(index, D[size])`` (RFC 9162 §2.1.3.1)."""
        n = self._size(size)
        _check_sizes(index, n, "leaf index and tree size")
        if not index < n:
            raise ProofError(
                f"leaf index {index} with tree size {n} is out of range; accepted: "
                f"0 ≤ index < size ≤ {self.size}"
            )
        out: list[bytes] = []
        start, end, m = 0, n, index
        while end - start > 1:  # top-down; the path lists siblings bottom-up
            k = _split(end - start)
            if m < k:
                out.append(self._range(start + k, end))
                end = start + k
            else:
                out.append(self._range(start, start + k))
                start, m = start + k, m - k
        return out[::-1]

    def consistency_proof(self, old_size: int, size: int | None = None) -> list[bytes]:
        """Consistency proof ``PROOF(old_size, D[size])`` (RFC 9162 §2.1.4.1)."""
        n = self._size(size)
        _check_sizes(old_size, n, "tree sizes")
        if not old_size <= n:
            raise ProofError(
                f"consistency from size {old_size} to {n} is out of range; accepted: "
                f"0 ≤ old size ≤ size ≤ {self.size}"
            )
        if old_size == 0 or old_size == n:
            return []
        out: list[bytes] = []
        start, end, m, complete = 0, n, old_size, True
        while m != end - start:
            k = _split(end - start)
            if m <= k:
                out.append(self._range(start + k, end))
                end = start + k
            else:
                out.append(self._range(start, start + k))
                start, m, complete = start + k, m - k, False
        if not complete:
            out.append(self._range(start, end))
        return out[::-1]


def _check_sizes(index_or_old: int, size: int, what: str) -> None:
    if not isinstance(size, int) or not isinstance(index_or_old, int) or index_or_old < 0:
        raise ProofError(f"{what} must be non-negative integers; got {index_or_old!r}, {size!r}")


def inclusion_proof(leaves: Sequence[bytes], index: int, size: int | None = None) -> list[bytes]:
    """Audit path ``PATH(index, D[size])`` (RFC 9162 §2.1.3.1).

    Args:
        leaves: leaf hashes, at least ``size`` of them.
        index: 0-based leaf index, ``0 ≤ index < size``.
        size: tree size the proof is for (default: all leaves).

    Raises:
        ProofError: the index or size is out of range.
    """
    n = len(leaves) if size is None else size
    _check_sizes(index, n, "leaf index and tree size")
    if not index < n <= len(leaves):
        raise ProofError(
            f"leaf index {index} with tree size {n} is out of range; accepted: "
            f"0 ≤ index < size ≤ {len(leaves)}"
        )
    return _path(index, leaves[:n])


def _path(m: int, d: Sequence[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*_path(m, d[:k]), root(d[k:])]
    return [*_path(m - k, d[k:]), root(d[:k])]


def consistency_proof(
    leaves: Sequence[bytes], old_size: int, size: int | None = None
) -> list[bytes]:
    """Consistency proof ``PROOF(old_size, D[size])`` (RFC 9162 §2.1.4.1).

    Args:
        leaves: leaf hashes, at least ``size`` of them.
        old_size: size of the earlier tree, ``0 ≤ old_size ≤ size``.
        size: size of the later tree (default: all leaves).

    Raises:
        ProofError: the sizes are out of range.
    """
    n = len(leaves) if size is None else size
    _check_sizes(old_size, n, "tree sizes")
    if not old_size <= n <= len(leaves):
        raise ProofError(
            f"consistency from size {old_size} to {n} is out of range; accepted: "
            f"0 ≤ old size ≤ size ≤ {len(leaves)}"
        )
    if old_size == 0 or old_size == n:
        return []
    return _subproof(old_size, leaves[:n], True)


def _subproof(m: int, d: Sequence[bytes], complete: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if complete else [root(d)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, d[:k], complete), root(d[k:])]
    return [*_subproof(m - k, d[k:], False), root(d[:k])]


def _is_hashes(proof: Sequence[bytes]) -> bool:
    return all(isinstance(p, bytes) and len(p) == HASH_SIZE for p in proof)


def root_from_inclusion_proof(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root an audit path implies for ``leaf`` at ``index`` of a tree of ``size``.

    RFC 9162 §2.1.3.2, steps 1–4 without the final comparison.

    Raises:
        ProofError: the index is not below the size, or the path has the wrong length.
    """
    _check_sizes(index, size, "leaf index and tree size")
    if index >= size:
        raise ProofError(f"leaf index {index} is not below tree size {size}")
    if len(leaf) != HASH_SIZE or not _is_hashes(proof):
        raise ProofError(f"leaf and proof entries must be {HASH_SIZE}-byte hashes")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError(f"inclusion proof is too long for index {index} in size {size}")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError(f"inclusion proof is too short for index {index} in size {size}")
    return r


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], expected_root: bytes
) -> None:
    """Check that ``leaf`` is at ``index`` of the tree of ``size`` whose head is ``expected_root``.

    Raises:
        ProofError: the proof does not verify (wrong leaf, index, size, path or root).
    """
    got = root_from_inclusion_proof(leaf, index, size, proof)
    if got != expected_root:
        raise ProofError(
            f"inclusion proof of leaf {index} gives root {got.hex()[:16]}…, not the expected "
            f"{expected_root.hex()[:16]}… of tree size {size} (a proof for a different tree?)"
        )


def verify_consistency(  # noqa: C901 - RFC 9162 §2.1.4.2 step by step, to read against it
    old_size: int,
    size: int,
    proof: Sequence[bytes],
    old_root: bytes,
    new_root: bytes,
) -> None:
    """Check that the tree of ``old_size`` and head ``old_root`` is a prefix of the later one.

    RFC 9162 §2.1.4.2; ``old_size == size`` needs an empty proof and equal roots, and an
    empty old tree is consistent with any tree.

    Raises:
        ProofError: the proof does not verify (different trees, a rewrite, wrong sizes).
    """
    _check_sizes(old_size, size, "tree sizes")
    if old_size > size:
        raise ProofError(f"old tree size {old_size} is larger than the new size {size}")
    if not _is_hashes(proof):
        raise ProofError(f"consistency proof entries must be {HASH_SIZE}-byte hashes")
    if old_size == size:
        if proof or old_root != new_root:
            raise ProofError(
                f"trees of the same size {size} must have the same root and an empty proof"
            )
        return
    if old_size == 0:
        if proof:
            raise ProofError("a consistency proof from the empty tree must be empty")
        return
    if not proof:
        raise ProofError(f"empty consistency proof from size {old_size} to {size}")
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # an exact power of two: the old root is a node
        path.insert(0, old_root)
    fn, sn = old_size - 1, size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError(f"consistency proof from size {old_size} to {size} is too long")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError(f"consistency proof from size {old_size} to {size} is too short")
    if fr != old_root or sr != new_root:
        which = "old" if fr != old_root else "new"
        raise ProofError(
            f"consistency proof from size {old_size} to {size} does not reproduce the {which} "
            "root (the trees differ: a rewrite, or a proof for a different tree)"
        )
