"""Verify a transparency log against pinned keys: chain, Merkle heads, cadence, published head.

The verifier trusts only what the operator hands it: a public key (or a trusted-keys file)
and optionally a tree head published earlier. Nothing beside the log is read. The format
is described in :mod:`pcnalloc.edge.audit`; the security model in ``docs/audit.md``.

Pinned keys and the trusted-keys file format: :mod:`pcnalloc.edge.trusted_keys`.
"""

from __future__ import annotations

import base64
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pcnalloc.edge import keys, merkle
from pcnalloc.edge.audit import (
    FORMAT,
    GENESIS,
    HEAD_FIELDS,
    HEAD_TYPE,
    RECORD_KEYS,
    AuditError,
    record_hash,
    tree_head_message,
)
from pcnalloc.edge.trusted_keys import TrustedKeys, load_trusted_keys, pinned_keys

__all__ = [
    "TrustedKeys",
    "VerifyResult",
    "check_tree_head",
    "load_tree_head",
    "load_trusted_keys",
    "pinned_keys",
    "verify",
]

_HEX64 = re.compile(r"[0-9a-f]{64}")


# ---------------------------------------------------------------------------- tree heads
def check_tree_head(sth: object, trusted: TrustedKeys, where: str = "tree head") -> dict[str, Any]:
    """A tree head body whose fields are well-formed and whose signature a pinned key makes.

    Raises:
        AuditError: malformed fields, a key that is not pinned, or a bad signature.
    """
    if not isinstance(sth, dict) or any(k not in sth for k in HEAD_FIELDS):
        raise AuditError(
            f"{where} is not a tree head; accepted: JSON with {', '.join(HEAD_FIELDS)}"
        )
    size, root, ts, kid, sig = (sth[k] for k in HEAD_FIELDS)
    if (
        not isinstance(size, int)
        or isinstance(size, bool)
        or size < 0
        or not isinstance(root, str)
        or not _HEX64.fullmatch(root)
        or not isinstance(ts, int)
        or not isinstance(kid, str)
        or not isinstance(sig, str)
    ):
        raise AuditError(
            f"{where} has malformed fields (tree_size {size!r}, root {str(root)[:20]!r}…); "
            "accepted: integer size ≥ 0, 64 hex digits, integer timestamp_ms, key id, base64 sig"
        )
    if sth.get("format", FORMAT) != FORMAT:
        raise AuditError(f"{where} has format {sth.get('format')!r}; accepted: {FORMAT!r}")
    pub = trusted.get(kid)
    if pub is None:
        raise AuditError(
            f"{where} is signed by key {kid}, which is not pinned (pinned: {trusted.describe()})"
        )
    try:
        raw = base64.b64decode(sig, validate=True)
    except ValueError:
        raw = b""
    if not keys.verify_signature(pub, tree_head_message(size, root, ts, kid), raw):
        raise AuditError(
            f"{where}: signature does not verify with pinned key {kid} (forged or edited)"
        )
    return {k: sth[k] for k in HEAD_FIELDS}


def load_tree_head(src: str | Path | dict[str, Any], trusted: TrustedKeys) -> dict[str, Any]:
    """Read and check a published tree head (a file from ``pcnalloc audit head`` or a dict)."""
    if isinstance(src, dict):
        return check_tree_head(src, trusted)
    p = Path(src)
    if not p.is_file():
        raise AuditError(f"published tree head {str(p)!r} does not exist")
    try:
        data = json.loads(p.read_text())
    except (ValueError, UnicodeDecodeError):
        raise AuditError(
            f"published tree head {str(p)!r} is not JSON; accepted: the file "
            "`pcnalloc audit head LOG --out FILE` writes"
        ) from None
    return check_tree_head(data, trusted, f"published tree head {str(p)!r}")


# ---------------------------------------------------------------------------- verify
@dataclass(frozen=True)
class VerifyResult:
    """Outcome of :func:`verify`.

    Attributes:
        ok: no problem found.
        records: complete records read (the tree size of the whole file).
        checkpoints: signed tree heads that verified.
        signed_upto: last seq covered by a verified tree head (-1 if none).
        unsigned_tail: records after the last verified tree head.
        problem: ``malformed``, ``format``, ``foreign_key``, ``unsigned_header``, ``edited``,
            ``dropped``, ``inserted``, ``reordered``, ``bad_head``, ``root_mismatch``,
            ``forged_head``, ``gap``, ``torn_tail``, ``truncated``, ``inconsistent`` or
            ``unsigned_tail``; None when ok.
        seq: sequence number of the first bad record (None when ok).
        line: 1-based line of the first bad record (None when ok).
        message: one line for people.
        key_id: the log's signer named in its header (None if unknown).
        root: hex root of the last verified tree head ("" if none).
        published_size: size of the published head checked (None if none given).
    """

    ok: bool
    records: int
    checkpoints: int
    signed_upto: int
    unsigned_tail: int
    problem: str | None = None
    seq: int | None = None
    line: int | None = None
    message: str = "OK"
    key_id: str | None = None
    root: str = ""
    published_size: int | None = None

    @property
    def tree_heads(self) -> int:
        """Signed tree heads that verified (alias of ``checkpoints``)."""
        return self.checkpoints

    def __str__(self) -> str:
        if self.ok:
            pub = (
                f", consistent with the published head of size {self.published_size}"
                if self.published_size is not None
                else ""
            )
            return (
                f"OK: {self.records} records, {self.checkpoints} signed tree heads by key "
                f"{self.key_id} (last: size {self.signed_upto + 1}, root {self.root[:16]}…), "
                f"{self.unsigned_tail} records after the last head{pub}"
            )
        return f"FAIL ({self.problem}) at line {self.line}, record {self.seq}: {self.message}"


class _Fail(Exception):
    def __init__(self, problem: str, i: int, seq: object, msg: str) -> None:
        super().__init__(msg)
        self.problem, self.i, self.seq, self.msg = problem, i, seq, msg


def verify(
    path: str | Path,
    public_key: Ed25519PublicKey | str | Path | TrustedKeys | None = None,
    *,
    published_head: str | Path | dict[str, Any] | None = None,
    allow_unsigned_tail: bool = False,
) -> VerifyResult:
    """Check chain, Merkle tree heads, their signatures and cadence, tail and published head.

    Args:
        path: the log.
        public_key: the pinned signer key(s): an Ed25519 key, a PEM path or
            :class:`TrustedKeys`. Required; nothing beside the log is read.
        published_head: a tree head saved earlier (file or dict); the log must hold at least
            its size and the same tree up to it (consistency), so truncation and rewrites
            before it fail.
        allow_unsigned_tail: accept records after the last head (a live log, or one whose
            writer crashed); by default a cleanly closed log ends in a head, so an unsigned
            tail is a failure.

    Returns:
        The first problem found in file order (tail and published-head checks last), or OK.

    Raises:
        AuditError: no pinned key, a missing log, or a published head that is malformed or
            not signed by a pinned key.
    """
    trusted = pinned_keys(public_key)
    p = Path(path)
    if not p.is_file():
        raise AuditError(f"audit log {str(p)!r} does not exist")
    pub = load_tree_head(published_head, trusted) if published_head is not None else None
    raw = p.read_bytes().split(b"\n")
    torn = raw.pop()  # after the final newline: b"" for a clean file
    v = _Verifier(trusted, pub, allow_unsigned_tail)
    try:
        v.run(raw, torn)
    except _Fail as f:
        return VerifyResult(
            False,
            v.n_records,
            v.heads,
            v.signed_upto,
            v.unsigned,
            f.problem,
            f.seq if isinstance(f.seq, int) and not isinstance(f.seq, bool) else None,
            f.i + 1,
            f.msg,
            v.kid,
            v.root,
        )
    return VerifyResult(
        True,
        v.n_records,
        v.heads,
        v.signed_upto,
        v.unsigned,
        key_id=v.kid,
        root=v.root,
        published_size=pub["tree_size"] if pub else None,
    )


class _Verifier:
    """One pass over the lines; raises :class:`_Fail` at the first problem."""

    def __init__(self, trusted: TrustedKeys, pub: dict | None, allow_tail: bool) -> None:
        self.trusted, self.pub, self.allow_tail = trusted, pub, allow_tail
        self.n_records, self.heads, self.signed_upto, self.unsigned = 0, 0, -1, 0
        self.kid: str | None = None
        self.root = ""
        self.tree = merkle.Frontier()
        self.leaves: list[bytes] = []
        self.last_head_size = 0

    def run(self, raw: list[bytes], torn: bytes) -> None:  # noqa: C901 - one pass, one branch per check
        recs = []
        for i, ln in enumerate(raw):
            try:
                rec = json.loads(ln)
                ok = (
                    isinstance(rec, dict)
                    and set(rec) == RECORD_KEYS
                    and type(rec["seq"]) is int
                    and type(rec["ts"]) in (int, float)
                    and isinstance(rec["type"], str)
                    and isinstance(rec["body"], dict)
                )
            except ValueError:
                ok = False
            if not ok:
                raise _Fail("malformed", i, None, "not a well-formed audit record")
            recs.append(rec)
            self.n_records = len(recs)
        if not recs:
            raise _Fail("malformed", 0, None, "the log holds no complete record")
        n_every, t_every = self._header(recs[0])
        where: dict[int, int] = {}
        for i, r in enumerate(recs):
            where.setdefault(r["seq"], i)
        prev, unsigned, first_ts = GENESIS, 0, 0.0
        for i, r in enumerate(recs):
            s = r["seq"]
            self._chain(i, r, prev, where)
            if r["type"] == HEAD_TYPE:
                self._head(i, r)
                unsigned = self.unsigned = 0
            else:
                if s == 1:
                    raise _Fail(
                        "unsigned_header",
                        i,
                        s,
                        "record 1 is not the tree head that signs the header (the header's key "
                        "id and cadence are unauthenticated: a rewritten log)",
                    )
                if unsigned >= n_every:
                    raise _Fail(
                        "gap",
                        i,
                        s,
                        f"{unsigned} records without a tree head; the header promises one "
                        f"every {n_every} records (a head was removed)",
                    )
                if unsigned and t_every is not None and r["ts"] - first_ts >= t_every:
                    raise _Fail(
                        "gap",
                        i,
                        s,
                        f"record written {r['ts'] - first_ts:.1f} s after the oldest unsigned "
                        f"one with no tree head between; the header promises one every "
                        f"{t_every:g} s (a head was removed)",
                    )
                if unsigned == 0:
                    first_ts = r["ts"]
                unsigned += 1
                self.unsigned = unsigned
            self.leaves.append(merkle.leaf_hash(raw[i]))
            self.tree.append(self.leaves[-1])
            prev = r["hash"]
        end = len(recs)
        if torn:
            raise _Fail(
                "torn_tail",
                end,
                end,
                f"{len(torn)} bytes after the last complete record (torn write or cut)",
            )
        if self.heads == 0:
            raise _Fail("unsigned_header", end, end, "no tree head signs the header")
        if self.pub is not None:
            self._published(end)
        if unsigned and not self.allow_tail:
            raise _Fail(
                "unsigned_tail",
                end,
                end - unsigned,
                f"the last {unsigned} records follow the last tree head; a clean close signs "
                "the tail, so the closing head was removed, records were appended, or the "
                "writer crashed (pass --allow-unsigned-tail for a live log)",
            )

    def _header(self, h: dict[str, Any]) -> tuple[int, float | None]:
        b = h["body"]
        if h["type"] != "header" or h["seq"] != 0 or b.get("format") != FORMAT:
            raise _Fail(
                "format",
                0,
                h["seq"],
                f"record 0 is not a {FORMAT!r} header (format {b.get('format')!r})",
            )
        self.kid = b.get("key_id")
        if self.trusted.get(self.kid) is None:
            raise _Fail(
                "foreign_key",
                0,
                0,
                f"the log names signer key {self.kid}, which is not pinned "
                f"(pinned: {self.trusted.describe()}): a log from another key",
            )
        n, t = b.get("checkpoint_every"), b.get("checkpoint_interval_s")
        if (
            type(n) is not int
            or n < 1
            or not (t is None or (type(t) in (int, float) and math.isfinite(t) and t > 0))
        ):
            raise _Fail("malformed", 0, 0, f"header cadence checkpoint_every={n!r}, interval={t!r}")
        return n, t

    def _chain(self, i: int, r: dict, prev: str, where: dict[int, int]) -> None:
        s, expected = r["seq"], i
        if record_hash(r) != r["hash"]:
            raise _Fail("edited", i, s, "content does not match its hash (record edited)")
        if s > expected:
            if where.get(expected, -1) > i:
                raise _Fail("reordered", i, s, f"record {s} comes before record {expected}")
            raise _Fail("dropped", i, s, f"records {expected}..{s - 1} are missing")
        if s < expected:
            raise _Fail("inserted", i, s, f"a second record {s} (after record {expected - 1})")
        if r["prev"] != prev:
            raise _Fail(
                "edited",
                max(i - 1, 0),
                max(s - 1, 0),
                f"record {s - 1} was rewritten or replaced (record {s} no longer links to it)",
            )

    def _head(self, i: int, r: dict) -> None:
        s, b = r["seq"], r["body"]
        if set(b) != set(HEAD_FIELDS) or b.get("tree_size") != s:
            raise _Fail("bad_head", i, s, f"tree head does not cover the {s} records before it")
        if not isinstance(b["root"], str) or b["root"] != self.tree.root().hex():
            raise _Fail(
                "root_mismatch",
                i,
                s,
                f"the records before this tree head are not the {s} records it signed "
                "(rewritten, re-chained, inserted or removed)",
            )
        if b.get("key_id") != self.kid:
            raise _Fail(
                "forged_head", i, s, f"tree head names key {b.get('key_id')}, the log {self.kid}"
            )
        try:
            check_tree_head(b, self.trusted)
        except AuditError:
            raise _Fail(
                "forged_head",
                i,
                s,
                f"tree head signature does not verify with pinned key {self.kid} (forged)",
            ) from None
        self.heads += 1
        self.signed_upto = s - 1
        self.root = b["root"]
        self.last_head_size = s

    def _published(self, end: int) -> None:
        pub = self.pub
        assert pub is not None
        m = pub["tree_size"]
        if m > self.tree.size:
            raise _Fail(
                "truncated",
                end,
                end,
                f"the published tree head has {m} records, the log only {self.tree.size} "
                "(records cut from the end)",
            )
        old_root = bytes.fromhex(pub["root"])
        # The CT check: a consistency proof from the published head to the latest head.
        n = max(self.last_head_size, m)
        new_root = (
            merkle.root(self.leaves[:n]) if n != self.last_head_size else bytes.fromhex(self.root)
        )
        proof = merkle.consistency_proof(self.leaves, m, n)
        try:
            merkle.verify_consistency(m, n, proof, old_root, new_root)
        except merkle.ProofError:
            raise _Fail(
                "inconsistent",
                min(m, end),
                m,
                f"the first {m} records are not the tree the published head signed "
                "(records before it were rewritten)",
            ) from None
