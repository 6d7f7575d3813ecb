"""merkle.Tree (kept nodes) gives the same roots and proofs as the from-leaves functions."""

from __future__ import annotations

import hashlib

import pytest

from pcnalloc.edge import merkle


def _leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(hashlib.sha256(str(i).encode()).digest()) for i in range(n)]


def test_tree_equals_the_reference_functions_on_every_size_and_pair() -> None:
    leaves = _leaves(40)
    tree = merkle.Tree()
    assert tree.root() == merkle.EMPTY_ROOT
    for n in range(1, 41):
        tree.append(leaves[n - 1])
        assert tree.root() == merkle.root(leaves[:n]), n
    for n in range(1, 41):
        assert tree.root(n) == merkle.root(leaves[:n])
        for i in range(n):
            assert tree.inclusion_proof(i, n) == merkle.inclusion_proof(leaves, i, n), (i, n)
        for m in range(n + 1):
            p = tree.consistency_proof(m, n)
            assert p == merkle.consistency_proof(leaves, m, n), (m, n)
            merkle.verify_consistency(m, n, p, merkle.root(leaves[:m]), tree.root(n))


def test_tree_refuses_out_of_range_sizes() -> None:
    tree = merkle.Tree(_leaves(5))
    with pytest.raises(merkle.ProofError, match="out of range"):
        tree.root(6)
    with pytest.raises(merkle.ProofError, match="out of range"):
        tree.inclusion_proof(5, 5)
    with pytest.raises(merkle.ProofError, match="out of range"):
        tree.consistency_proof(4, 3)
    with pytest.raises(merkle.ProofError):
        tree.consistency_proof(-1)
