"""Inclusion and consistency proofs from a transparency log, and their offline check.

A proof is a JSON object a third party can check with only the pinned public key:

* ``inclusion``: ``leaf_index``, ``tree_size``, ``root``, ``leaf`` (the record line),
  ``leaf_hash``, ``audit_path`` and ``tree_head`` (the signed head of that size, when the log
  holds one);
* ``consistency``: ``old_size``, ``tree_size``, ``old_root``, ``root``, ``proof`` and the
  signed heads of both sizes when the log holds them.

:func:`check_proof` recomputes the root(s) from the proof (RFC 9162 §2.1.3.2, §2.1.4.2) and
requires each root to be vouched for by a tree head signed with a pinned key — embedded, or
given by the checker (e.g. a head published earlier). A proof for a different tree (other
size or root than the head) is a :class:`~pcnalloc.edge.merkle.ProofError`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pcnalloc.edge import merkle
from pcnalloc.edge.audit import FORMAT, HEAD_TYPE, AuditError
from pcnalloc.edge.audit_verify import (
    TrustedKeys,
    check_tree_head,
    load_tree_head,
    pinned_keys,
    verify,
)
from pcnalloc.edge.merkle import ProofError


@dataclass(frozen=True)
class LogLeaves:
    """The lines of a log as Merkle leaves, and the tree heads it holds by size."""

    lines: list[bytes]
    leaves: list[bytes]
    heads: dict[int, dict[str, Any]]

    @property
    def latest_size(self) -> int:
        """Size of the largest tree head in the log (all records if it holds none)."""
        return max(self.heads, default=len(self.leaves))


def read_leaves(path: str | Path) -> LogLeaves:
    """Read a log's complete lines (a torn last line is ignored) as leaves.

    Raises:
        AuditError: a missing file or a line that is not a record.
    """
    p = Path(path)
    if not p.is_file():
        raise AuditError(f"audit log {str(p)!r} does not exist")
    lines = p.read_bytes().split(b"\n")
    lines.pop()
    heads: dict[int, dict[str, Any]] = {}
    for i, ln in enumerate(lines):
        try:
            rec = json.loads(ln)
            t, body = rec["type"], rec["body"]
        except (ValueError, KeyError, TypeError):
            raise AuditError(
                f"audit log {str(p)!r}: line {i + 1} is not a record; run `pcnalloc audit verify`"
            ) from None
        if t == HEAD_TYPE and isinstance(body, dict) and isinstance(body.get("tree_size"), int):
            heads[body["tree_size"]] = body
    return LogLeaves(lines, [merkle.leaf_hash(x) for x in lines], heads)


def _size(log: LogLeaves, size: int | None) -> int:
    n = log.latest_size if size is None else size
    if not 0 < n <= len(log.leaves):
        raise AuditError(f"tree size {n} is out of range; accepted: 1..{len(log.leaves)}")
    return n


def prove_inclusion(path: str | Path, index: int, size: int | None = None) -> dict[str, Any]:
    """Inclusion proof of record ``index`` in the tree of ``size`` (default: latest head)."""
    log = read_leaves(path)
    n = _size(log, size)
    if not 0 <= index < n:
        raise AuditError(
            f"record {index} is not in the tree of size {n}; accepted: 0..{n - 1}"
            + (" (pass --size for a larger, not yet signed tree)" if size is None else "")
        )
    return {
        "format": FORMAT,
        "type": "inclusion",
        "leaf_index": index,
        "tree_size": n,
        "root": merkle.root(log.leaves[:n]).hex(),
        "leaf": log.lines[index].decode(),
        "leaf_hash": log.leaves[index].hex(),
        "audit_path": [h.hex() for h in merkle.inclusion_proof(log.leaves, index, n)],
        "tree_head": log.heads.get(n),
    }


def prove_consistency(path: str | Path, old_size: int, size: int | None = None) -> dict[str, Any]:
    """Consistency proof from the tree of ``old_size`` to that of ``size`` (default: latest)."""
    log = read_leaves(path)
    n = _size(log, size)
    if not 0 < old_size <= n:
        raise AuditError(f"old size {old_size} is out of range; accepted: 1..{n}")
    return {
        "format": FORMAT,
        "type": "consistency",
        "old_size": old_size,
        "tree_size": n,
        "old_root": merkle.root(log.leaves[:old_size]).hex(),
        "root": merkle.root(log.leaves[:n]).hex(),
        "proof": [h.hex() for h in merkle.consistency_proof(log.leaves, old_size, n)],
        "old_tree_head": log.heads.get(old_size),
        "tree_head": log.heads.get(n),
    }


def latest_tree_head(path: str | Path, public_key: object) -> dict[str, Any]:
    """The latest signed tree head of a log that verifies with the pinned key.

    Raises:
        AuditError: the log does not verify (the head of a tampered log is never exported).
    """
    trusted = pinned_keys(public_key)
    res = verify(path, trusted, allow_unsigned_tail=True)
    if not res.ok:
        raise AuditError(f"audit log {str(path)!r} does not verify, no head exported: {res}")
    log = read_leaves(path)
    return check_tree_head(log.heads[res.signed_upto + 1], trusted)


def _hashes(obj: dict, key: str) -> list[bytes]:
    val = obj.get(key)
    if not isinstance(val, list) or not all(isinstance(h, str) for h in val):
        raise ProofError(f"proof field {key!r} must be a list of hex hashes")
    try:
        return [bytes.fromhex(h) for h in val]
    except ValueError:
        raise ProofError(f"proof field {key!r} holds a value that is not hex") from None


def _hex(obj: dict, key: str) -> bytes:
    val = obj.get(key)
    try:
        out = bytes.fromhex(val) if isinstance(val, str) else b""
    except ValueError:
        out = b""
    if len(out) != merkle.HASH_SIZE:
        raise ProofError(f"proof field {key!r} must be {merkle.HASH_SIZE} bytes of hex")
    return out


def _int(obj: dict, key: str) -> int:
    val = obj.get(key)
    if type(val) is not int or val < 0:
        raise ProofError(f"proof field {key!r} must be an integer ≥ 0, got {val!r}")
    return val


def check_proof(
    proof: dict[str, Any] | str | Path,
    public_key: object,
    heads: list[str | Path | dict[str, Any]] | tuple = (),
) -> str:
    """Check a proof from :func:`prove_inclusion` or :func:`prove_consistency`.

    Args:
        proof: the proof object or its JSON file.
        public_key: pinned key(s), as for :func:`~pcnalloc.edge.audit_verify.verify`.
        heads: tree heads the checker trusts (e.g. published ones); each must be signed by a
            pinned key and be for one of the proof's sizes with the proof's root.

    Returns:
        One line describing what was proven.

    Raises:
        ProofError: malformed proof, a proof that does not verify, a head for another tree,
            or a root that no signed head vouches for.
        AuditError: a head that is not signed by a pinned key.
    """
    trusted: TrustedKeys = pinned_keys(public_key)
    if not isinstance(proof, dict):
        try:
            proof = json.loads(Path(proof).read_text())
        except (OSError, ValueError, UnicodeDecodeError) as err:
            raise ProofError(f"cannot read proof {str(proof)!r}: {err}") from None
        if not isinstance(proof, dict):
            raise ProofError("a proof must be a JSON object")
    kind = proof.get("type")
    if kind == "inclusion":
        index, n = _int(proof, "leaf_index"), _int(proof, "tree_size")
        root = _hex(proof, "root")
        leaf = proof.get("leaf")
        if not isinstance(leaf, str):
            raise ProofError("proof field 'leaf' must be the record line")
        lh = merkle.leaf_hash(leaf.encode())
        if proof.get("leaf_hash") not in (None, lh.hex()):
            raise ProofError("proof field 'leaf_hash' is not the hash of its 'leaf'")
        merkle.verify_inclusion(lh, index, n, _hashes(proof, "audit_path"), root)
        roots = {n: root}
        embedded = [proof.get("tree_head")]
        what = f"record {index} is in the tree of size {n}"
    elif kind == "consistency":
        m, n = _int(proof, "old_size"), _int(proof, "tree_size")
        old_root, root = _hex(proof, "old_root"), _hex(proof, "root")
        merkle.verify_consistency(m, n, _hashes(proof, "proof"), old_root, root)
        roots = {m: old_root, n: root}
        embedded = [proof.get("old_tree_head"), proof.get("tree_head")]
        what = f"the tree of size {m} is a prefix of the tree of size {n}"
    else:
        raise ProofError(f"proof type {kind!r}; accepted: 'inclusion', 'consistency'")
    signed: set[int] = set()
    given = [load_tree_head(h, trusted) for h in heads]
    checked = [check_tree_head(h, trusted, "embedded tree head") for h in embedded if h] + given
    for h in checked:
        size = h["tree_size"]
        if size not in roots:
            raise ProofError(
                f"tree head of size {size} is for a different tree than the proof (sizes "
                f"{', '.join(map(str, sorted(roots)))})"
            )
        if bytes.fromhex(h["root"]) != roots[size]:
            raise ProofError(
                f"the proof's root of size {size} ({roots[size].hex()[:16]}…) is not the signed "
                f"head's ({h['root'][:16]}…): a proof for a different tree"
            )
        signed.add(size)
    missing = sorted(set(roots) - signed)
    if missing:
        raise ProofError(
            f"no tree head signed by a pinned key vouches for the root of size "
            f"{', '.join(map(str, missing))}; pass the head (--head FILE)"
        )
    return f"OK: {what} (roots signed by {trusted.describe()})"
