"""RFC 9162 / 6962 Merkle trees: roots, inclusion and consistency proofs on the reference vectors.

The vectors are the 8-leaf tree of the Certificate Transparency reference code
(``transparency-dev/merkle``, ``proof/verify_test.go``; the same tree as the C++
``merkle_tree_test.cc`` of ``google/certificate-transparency``).
"""

from __future__ import annotations

import itertools

import pytest

from pcnalloc.edge import merkle
from pcnalloc.edge.merkle import ProofError

LEAF_INPUTS = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
LEAVES = [merkle.leaf_hash(d) for d in LEAF_INPUTS]
EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
ROOTS = {  # tree size -> MTH
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}
# (0-based leaf index, tree size, audit path)
INCLUSION = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
# (old size, new size, consistency proof)
CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def r(n: int) -> bytes:
    return bytes.fromhex(ROOTS[n]) if n else bytes.fromhex(EMPTY)


def hexes(proof: list[bytes]) -> list[str]:
    return [p.hex() for p in proof]


@pytest.mark.parametrize("n", range(9))
def test_roots_match_reference(n: int) -> None:
    assert merkle.root(LEAVES[:n]) == r(n)
    fr = merkle.Frontier()
    for leaf in LEAVES[:n]:
        fr.append(leaf)
    assert fr.size == n and fr.root() == r(n)


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_inclusion_proof_vectors(index: int, size: int, path: list[str]) -> None:
    proof = merkle.inclusion_proof(LEAVES, index, size)
    assert hexes(proof) == path
    merkle.verify_inclusion(LEAVES[index], index, size, proof, r(size))


def _inclusion_corruptions(index: int, size: int, proof: list[bytes]):
    """The probe set of the reference verifier tests: every one must fail."""
    root = r(size)
    leaf = LEAVES[index]
    yield index - 1, size, leaf, proof, root
    yield index + 1, size, leaf, proof, root
    yield index ^ 2, size, leaf, proof, root
    yield index, size * 2, leaf, proof, root
    yield index, size // 2, leaf, proof, root
    yield index, size, merkle.leaf_hash(b"WrongLeaf"), proof, root
    yield index, size, leaf, proof, bytes.fromhex(EMPTY)
    yield index, size, leaf, proof, SOME_HASH
    yield index, size, leaf, [*proof, root], root
    yield index, size, leaf, [root, *proof], root
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = bytes([bad[i][0] ^ 8]) + bad[i][1:]
        yield index, size, leaf, bad, root
    if proof:
        yield index, size, leaf, proof[:-1], root
    if len(proof) > 1:
        yield index, size, leaf, [proof[0], SOME_HASH, *proof[1:]], root


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION[1:])
def test_corrupted_inclusion_proofs_fail(index: int, size: int, path: list[str]) -> None:
    proof = [bytes.fromhex(h) for h in path]
    probes = list(_inclusion_corruptions(index, size, proof))
    assert len(probes) >= 12
    for i, s, leaf, p, root in probes:
        if i < 0:
            continue
        with pytest.raises(ProofError):
            merkle.verify_inclusion(leaf, i, s, p, root)


@pytest.mark.parametrize(("old", "new", "path"), CONSISTENCY)
def test_consistency_proof_vectors(old: int, new: int, path: list[str]) -> None:
    proof = merkle.consistency_proof(LEAVES, old, new)
    assert hexes(proof) == path
    merkle.verify_consistency(old, new, proof, r(old), r(new))


@pytest.mark.parametrize(("old", "new", "path"), [c for c in CONSISTENCY if c[2]])
def test_corrupted_consistency_proofs_fail(old: int, new: int, path: list[str]) -> None:
    proof = [bytes.fromhex(h) for h in path]
    r1, r2 = r(old), r(new)
    probes = [
        (old - 1, new, r1, r2, proof),
        (old + 1, new, r1, r2, proof),
        (old ^ 2, new, r1, r2, proof),
        (old, new * 2, r1, r2, proof),
        (old, new // 2, r1, r2, proof),
        (old, new, SOME_HASH, r2, proof),
        (old, new, r1, SOME_HASH, proof),
        (old, new, r2, r1, proof),
        (old, new, r1, r2, []),
        (old, new, r1, r2, [*proof, r1]),
        (old, new, r1, r2, [*proof, r2]),
        (old, new, r1, r2, [r1, *proof]),
        (old, new, r1, r2, [r2, *proof]),
        (old, new, r1, r2, [proof[0], *proof]),
        (old, new, r1, r2, proof[:-1]),
    ]
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = bytes([bad[i][0] ^ 16]) + bad[i][1:]
        probes.append((old, new, r1, r2, bad))
    for o, n, a, b, p in probes:
        if o < 0:
            continue
        with pytest.raises(ProofError):
            merkle.verify_consistency(o, n, p, a, b)


def test_trivial_consistency_cases() -> None:
    merkle.verify_consistency(0, 0, [], r(0), r(0))
    merkle.verify_consistency(0, 5, [], r(0), r(5))
    merkle.verify_consistency(3, 3, [], r(3), r(3))
    for args in [(1, 1, [], r(1), r(2)), (2, 1, [], r(2), r(1)), (1, 2, [], r(1), r(2))]:
        with pytest.raises(ProofError):
            merkle.verify_consistency(*args)
    with pytest.raises(ProofError):
        merkle.verify_consistency(0, 1, [bytes.fromhex(EMPTY)], r(0), r(1))


def test_every_pair_roundtrips_on_a_larger_tree() -> None:
    """Generated proofs verify for every (index, size) and (old, new) up to 33 leaves."""
    leaves = [merkle.leaf_hash(bytes([i])) for i in range(33)]
    roots = [merkle.root(leaves[:n]) for n in range(34)]
    for size in range(1, 34):
        for index in range(size):
            p = merkle.inclusion_proof(leaves, index, size)
            merkle.verify_inclusion(leaves[index], index, size, p, roots[size])
    for old, new in itertools.combinations_with_replacement(range(34), 2):
        p = merkle.consistency_proof(leaves, old, new)
        merkle.verify_consistency(old, new, p, roots[old], roots[new])
        if 0 < old < new:  # and a proof between other trees does not
            with pytest.raises(ProofError):
                merkle.verify_consistency(old, new, p, roots[old], merkle.leaf_hash(b"x"))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: merkle.inclusion_proof(LEAVES, 8, 8), "out of range"),
        (lambda: merkle.inclusion_proof(LEAVES, 0, 9), "out of range"),
        (lambda: merkle.inclusion_proof(LEAVES, -1, 4), "non-negative"),
        (lambda: merkle.consistency_proof(LEAVES, 5, 4), "out of range"),
        (lambda: merkle.verify_inclusion(b"short", 0, 1, [], r(1)), "32-byte"),
        (lambda: merkle.verify_consistency(5, 4, [], r(5), r(4)), "larger"),
    ],
)
def test_bad_proof_arguments_are_typed_errors(call, match: str) -> None:
    with pytest.raises(ProofError, match=match):
        call()
