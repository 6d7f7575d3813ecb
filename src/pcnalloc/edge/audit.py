"""Tamper-evident audit log: SHA-256 hash chain in JSON lines, Ed25519-signed checkpoints.

Each line is one record, canonical JSON (sorted keys, no spaces)::

    {"body": {...}, "hash": H_n, "prev": H_{n-1}, "seq": n, "ts": unix_s, "type": "decision"}

with ``H_n = SHA-256(canonical JSON of the record without "hash")`` and ``H_{-1}`` = 64 zeros.
Record 0 is a header (format, key id, checkpoint interval, caller metadata). Every
``checkpoint_every`` records the writer appends a ``checkpoint`` record whose body holds the
head hash it covers and an Ed25519 signature over it, and mirrors that record atomically into
``LOG.head`` beside the log, so a clean cut of signed records is detected too. Records after
the last checkpoint are chained but not yet signed (:attr:`VerifyResult.unsigned_tail`).

Writes are single ``write`` calls on an ``O_APPEND`` descriptor followed by ``fsync`` (every
``sync_every`` records), so a crash can only leave a torn last line. Opening such a log
raises :class:`AuditError`; ``repair=True`` cuts the torn bytes and records their length and
hash in a ``recovery`` record, so the repair itself stays on the chain.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from pcnalloc.edge import keys
from pcnalloc.errors import PcnallocError

FORMAT = "pcnalloc-audit/1"
GENESIS = "0" * 64
HEAD_SUFFIX = ".head"
PUB_SUFFIX = ".pub"
_KEYS = {"body", "hash", "prev", "seq", "ts", "type"}


class AuditError(PcnallocError):
    """An audit log that cannot be opened or appended to safely."""


def canonical(obj: Any) -> bytes:
    """Canonical JSON bytes (sorted keys, compact, ASCII, no NaN)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def record_hash(rec: dict[str, Any]) -> str:
    """SHA-256 hex of a record without its ``hash`` field."""
    return hashlib.sha256(canonical({k: v for k, v in rec.items() if k != "hash"})).hexdigest()


def checkpoint_message(upto: int, head: str, key_id: str) -> bytes:
    """The bytes a checkpoint signs."""
    return f"{FORMAT}\ncheckpoint\n{upto}\n{head}\n{key_id}".encode()


class AuditLog:
    """Append-only writer of a hash-chained audit log.

    Args:
        path: the JSON-lines file (created if missing, resumed if present).
        private_key: Ed25519 key (or a PEM file path) that signs checkpoints; None = no
            checkpoints (the chain alone detects edits but not a rewritten chain).
        checkpoint_every: records between signed checkpoints.
        sync_every: fsync after this many records (1 = every record, crash-safe per record).
        meta: extra header fields for a new log (e.g. rule-set hash, env config).
        repair: cut a torn last line (recording it) instead of refusing to open.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        private_key: Ed25519PrivateKey | str | Path | None = None,
        checkpoint_every: int = 1000,
        sync_every: int = 1,
        meta: dict[str, Any] | None = None,
        repair: bool = False,
    ) -> None:
        if checkpoint_every < 1 or sync_every < 1:
            raise AuditError("checkpoint_every and sync_every must be ≥ 1")
        self.path = Path(path)
        if isinstance(private_key, (str, Path)):
            private_key = keys.load_private_key(private_key)
        self._key = private_key
        self._key_id = keys.key_id(private_key.public_key()) if private_key else None
        self.checkpoint_every = checkpoint_every
        self.sync_every = sync_every
        self.path.parent.mkdir(parents=True, exist_ok=True)
        exists = self.path.exists() and self.path.stat().st_size > 0
        self._seq, self._head, torn = _tail_state(self.path) if exists else (-1, GENESIS, b"")
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._since_ckpt = 0
        self._unsynced = 0
        try:
            _lock(self._fd, self.path)
            if torn:
                if not repair:
                    raise AuditError(
                        f"audit log {str(self.path)!r} ends in a torn record ({len(torn)} bytes "
                        f"after record {self._seq}); run `pcnalloc audit verify` and reopen "
                        "with repair=True to cut it (the cut is recorded in the chain)"
                    )
                os.ftruncate(self._fd, self.path.stat().st_size - len(torn))
                self.append(
                    "recovery",
                    {
                        "torn_bytes": len(torn),
                        "torn_sha256": hashlib.sha256(torn).hexdigest(),
                    },
                )
                self.sync()
            if self._key is not None:
                pub = self.path.with_name(self.path.name + PUB_SUFFIX)
                if not pub.exists():
                    pub.write_bytes(keys.public_pem(self._key.public_key()))
            if not exists:
                self.append(
                    "header",
                    {
                        "format": FORMAT,
                        "key_id": self._key_id,
                        "checkpoint_every": checkpoint_every,
                        **(meta or {}),
                    },
                )
                self.sync()
        except BaseException:
            os.close(self._fd)
            raise

    @property
    def seq(self) -> int:
        """Sequence number of the last record written (-1 for none)."""
        return self._seq

    @property
    def head(self) -> str:
        """Hash of the last record written."""
        return self._head

    def append(self, type_: str, body: dict[str, Any]) -> str:
        """Append one record; returns its hash. Checkpoints itself every N records."""
        rec = {
            "seq": self._seq + 1,
            "type": type_,
            "prev": self._head,
            "ts": round(time.time(), 6),
            "body": body,
        }
        content = canonical(rec)
        h = hashlib.sha256(content).hexdigest()
        # One encode: the hash goes last (verify re-canonicalises without it).
        line = content[:-1] + b',"hash":"' + h.encode() + b'"}\n'
        n = os.write(self._fd, line)
        if n != len(line):  # a short write on a regular file means the disk is full
            raise AuditError(f"short write to {str(self.path)!r} ({n} of {len(line)} bytes)")
        self._seq, self._head = rec["seq"], h
        self._unsynced += 1
        if self._unsynced >= self.sync_every:
            self.sync()
        if type_ != "checkpoint" and self._key is not None:
            self._since_ckpt += 1
            if self._since_ckpt >= self.checkpoint_every:
                self.checkpoint()
        return h

    def append_decision(
        self,
        *,
        request: dict[str, Any],
        decision: Any,
        ruleset_sha256: str,
        model_sha256: str = "",
        preempted: list[int] | None = None,
    ) -> str:
        """Record one guarded decision (a :class:`~pcnalloc.edge.guard.Decision`)."""
        body = {
            "request": request,
            **decision.to_record(),
            "ruleset": ruleset_sha256,
            "model": model_sha256,
        }
        if preempted is not None:
            body["preempted"] = list(preempted)
        return self.append("decision", body)

    def checkpoint(self) -> str | None:
        """Sign the current head now (no-op without a private key)."""
        if self._key is None:
            return None
        upto, head = self._seq, self._head
        sig = self._key.sign(checkpoint_message(upto, head, self._key_id or ""))
        h = self.append(
            "checkpoint",
            {
                "upto": upto,
                "head": head,
                "key_id": self._key_id,
                "sig": base64.b64encode(sig).decode(),
            },
        )
        self._since_ckpt = 0
        self.sync()
        side = self.path.with_name(self.path.name + HEAD_SUFFIX)
        tmp = side.with_name(side.name + ".tmp")
        tmp.write_text(json.dumps({"seq": self._seq, "hash": h}) + "\n")
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, side)
        return h

    def sync(self) -> None:
        os.fsync(self._fd)
        self._unsynced = 0

    def close(self, *, checkpoint: bool = True) -> None:
        """Sign the tail (if keyed and anything is unsigned), fsync and close."""
        if self._fd < 0:
            return
        if checkpoint and self._key is not None and self._since_ckpt:
            self.checkpoint()
        self.sync()
        os.close(self._fd)
        self._fd = -1

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _lock(fd: int, path: Path) -> None:
    try:
        import fcntl
    except ImportError:  # not POSIX: no advisory lock
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise AuditError(f"audit log {str(path)!r} is open in another writer") from None


def _tail_state(path: Path) -> tuple[int, str, bytes]:
    """(last seq, last hash, torn trailing bytes) from the end of an existing log."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        chunk = 1 << 16
        while True:
            start = max(0, size - chunk)
            fh.seek(start)
            data = fh.read(size - start)
            lines = data.split(b"\n")
            if start == 0 or len(lines) >= 3:
                break
            chunk *= 4
    torn = lines[-1]  # bytes after the last newline ("" if the file ends cleanly)
    body = [ln for ln in lines[:-1] if ln]
    if not body:
        return -1, GENESIS, torn
    try:
        rec = json.loads(body[-1])
        return int(rec["seq"]), str(rec["hash"]), torn
    except (ValueError, KeyError, TypeError):
        raise AuditError(
            f"audit log {str(path)!r}: the last complete line is not a record; "
            "run `pcnalloc audit verify`"
        ) from None


# ---------------------------------------------------------------------------- verify
@dataclass(frozen=True)
class VerifyResult:
    """Outcome of :func:`verify`.

    Attributes:
        ok: no problem found.
        records: lines read (complete records).
        checkpoints: checkpoints whose signature verified.
        signed_upto: last seq covered by a verified checkpoint (-1 if none).
        unsigned_tail: records after the last verified checkpoint (chained, not signed).
        problem: ``edited``, ``dropped``, ``inserted``, ``reordered``, ``torn_tail``,
            ``truncated``, ``malformed``, ``forged_checkpoint``, ``bad_checkpoint`` or
            ``no_key``; None when ok.
        seq: sequence number of the first bad record (None when ok).
        line: 1-based line of the first bad record (None when ok).
        message: one line for people.
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

    def __str__(self) -> str:
        if self.ok:
            return (
                f"OK: {self.records} records, {self.checkpoints} signed checkpoints, "
                f"{self.unsigned_tail} records after the last checkpoint"
            )
        return f"FAIL ({self.problem}) at line {self.line}, record {self.seq}: {self.message}"


def verify(
    path: str | Path, public_key: Ed25519PublicKey | str | Path | None = None
) -> VerifyResult:
    """Check the chain, the checkpoints and the tail of an audit log.

    Args:
        path: the log.
        public_key: the signer's key (object or PEM path); None = ``LOG.pub`` beside the log
            (a key given by the verifier is stronger: a forger can replace the side file).

    Returns:
        The first problem found in file order, or OK.
    """
    p = Path(path)
    if not p.is_file():
        raise AuditError(f"audit log {str(p)!r} does not exist")
    if public_key is None:
        side = p.with_name(p.name + PUB_SUFFIX)
        public_key = keys.load_public_key(side) if side.is_file() else None
    elif not isinstance(public_key, Ed25519PublicKey):
        public_key = keys.load_public_key(public_key)
    kid = keys.key_id(public_key) if public_key is not None else None
    raw = p.read_bytes().split(b"\n")
    torn = raw.pop()  # after the final newline: b"" for a clean file
    recs: list[dict] = []
    st = {"ckpt": 0, "signed": -1}

    def fail(problem: str, i: int, seq: Any, msg: str) -> VerifyResult:
        return VerifyResult(
            False,
            len(recs),
            st["ckpt"],
            st["signed"],
            max(0, len(recs) - 1 - st["signed"]),
            problem,
            seq if isinstance(seq, int) else None,
            i + 1,
            msg,
        )

    for i, ln in enumerate(raw):
        try:
            rec = json.loads(ln)
            if not isinstance(rec, dict) or set(rec) != _KEYS or not isinstance(rec["seq"], int):
                raise ValueError
        except ValueError:
            return fail("malformed", i, None, "not a well-formed audit record")
        recs.append(rec)
    where = {}
    for i, r in enumerate(recs):
        where.setdefault(r["seq"], i)
    expected, prev, hashes = 0, GENESIS, {}
    for i, r in enumerate(recs):
        s = r["seq"]
        if record_hash(r) != r["hash"]:
            return fail("edited", i, s, "content does not match its hash (record edited)")
        if s > expected:
            if where.get(expected, -1) > i:
                return fail("reordered", i, s, f"record {s} comes before record {expected}")
            return fail("dropped", i, s, f"records {expected}..{s - 1} are missing")
        if s < expected:
            return fail("inserted", i, s, f"a second record {s} (after record {expected - 1})")
        if r["prev"] != prev:
            return fail(
                "edited",
                max(i - 1, 0),
                max(s - 1, 0),
                f"record {s - 1} was rewritten or replaced (record {s} no longer links to it)",
            )
        if r["type"] == "checkpoint":
            b = r["body"]
            if public_key is None:
                return fail(
                    "no_key",
                    i,
                    s,
                    "cannot verify signed checkpoints without the public "
                    "key: pass --public-key or keep LOG.pub beside the log",
                )
            if b.get("upto") != s - 1 or b.get("head") != prev:
                return fail(
                    "bad_checkpoint", i, s, "checkpoint does not cover the record before it"
                )
            try:
                sig = base64.b64decode(b.get("sig", ""), validate=True)
            except ValueError:
                sig = b""
            if b.get("key_id") != kid or not keys.verify_signature(
                public_key, checkpoint_message(b["upto"], b["head"], b["key_id"]), sig
            ):
                return fail(
                    "forged_checkpoint",
                    i,
                    s,
                    f"signature does not verify with key {kid} (forged or foreign key)",
                )
            st["ckpt"] += 1
            st["signed"] = s
        hashes[s] = r["hash"]
        prev, expected = r["hash"], s + 1
    if torn:
        return fail(
            "torn_tail",
            len(recs),
            expected,
            f"{len(torn)} bytes after the last complete record (torn write or cut)",
        )
    head = p.with_name(p.name + HEAD_SUFFIX)
    if head.is_file():
        with contextlib.suppress(ValueError, KeyError, TypeError):
            h = json.loads(head.read_text())
            if hashes.get(h["seq"]) != h["hash"]:
                return fail(
                    "truncated",
                    len(recs),
                    h["seq"],
                    f"the signed head names record {h['seq']}, which the log lacks "
                    "(records cut from the end)",
                )
    return VerifyResult(
        True, len(recs), st["ckpt"], st["signed"], max(0, len(recs) - 1 - st["signed"])
    )
