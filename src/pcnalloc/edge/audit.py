"""Transparency log of decisions: JSON lines as RFC 9162 Merkle leaves, signed tree heads.

The model is Certificate Transparency (RFC 9162). Each line is one record, canonical JSON
with the record hash appended::

    {"body": {...}, "prev": H_{n-1}, "seq": n, "ts": unix_s, "type": "decision", "hash": H_n}

with ``H_n = SHA-256(canonical JSON of the record without "hash")`` and ``H_{-1}`` = 64 zeros
(a hash chain, which tells *which* record was edited, dropped or moved). Every line — its
bytes without the newline — is also leaf ``seq`` of a Merkle tree (:mod:`pcnalloc.edge.merkle`,
leaf hash ``SHA-256(0x00 || line)``). A ``tree_head`` record at position ``k`` is a signed
tree head over the ``k`` records before it::

    body = {"tree_size": k, "root": MTH(lines[0:k]), "timestamp_ms": t, "key_id": id,
            "sig": Ed25519(canonical({"format", "type": "tree_head", "tree_size", "root",
                                      "timestamp_ms", "key_id"}))}

Cadence, written in the header (record 0) and enforced by :func:`verify`: record 1 is a head
that signs the header (so the header's key id and cadence are authenticated); after that a
head follows every ``checkpoint_every`` records, and before any record written
``checkpoint_interval_s`` seconds or more after the oldest record not yet signed; ``close``
signs the tail. A verifier takes the public key from the operator (pinned), never from beside
the log, and can check a tree head published elsewhere (``pcnalloc audit head``) against the
log by consistency, which exposes truncation and any rewrite before it. The security model,
tamper by tamper, is in ``docs/audit.md``.

Writes are single ``write`` calls on an ``O_APPEND`` descriptor followed by ``fsync`` (every
``sync_every`` records, and after every head), so a crash can only leave a torn last line.
Opening such a log raises :class:`AuditError`; ``repair=True`` cuts the torn bytes and
records their length and hash in a ``recovery`` record, so the repair stays in the tree.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import sys
import time
from json.encoder import encode_basestring_ascii as _jstr
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from pcnalloc.edge import keys, merkle
from pcnalloc.errors import PcnallocError

FORMAT = "pcnalloc-audit/2"
GENESIS = "0" * 64
HEAD_TYPE = "tree_head"
RECORD_KEYS = frozenset({"body", "hash", "prev", "seq", "ts", "type"})
HEAD_FIELDS = ("tree_size", "root", "timestamp_ms", "key_id", "sig")


class AuditError(PcnallocError):
    """An audit log, key set, tree head or proof that cannot be used as given."""


def canonical(obj: Any) -> bytes:
    """Canonical JSON bytes (sorted keys, compact, ASCII, no NaN)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def record_hash(rec: dict[str, Any]) -> str:
    """SHA-256 hex of a record without its ``hash`` field."""
    return hashlib.sha256(canonical({k: v for k, v in rec.items() if k != "hash"})).hexdigest()


def encode_record(rec: dict[str, Any]) -> tuple[bytes, str]:
    """The line (without newline) of a record without ``hash``, and that hash."""
    content = canonical(rec)
    h = hashlib.sha256(content).hexdigest()
    # One encode: the hash goes last (verify re-canonicalises without it).
    return content[:-1] + b',"hash":"' + h.encode() + b'"}', h


class _NotFixedLayout(Exception):
    """A decision record the fixed-layout encoder does not cover (the generic one is used)."""


_INF = math.inf
_LEAF_BATCH = 1024
"""Records whose Merkle leaves may wait for the next tree head (see ``AuditLog._emit``)."""
_JSTR_CACHE: dict[str, str] = {}


def _jstr_c(s: str) -> str:
    """:func:`_jstr` remembered for the few strings every record repeats (hashes, class
    names, notes); bounded, so other strings are encoded each time."""
    v = _JSTR_CACHE.get(s)
    if v is None:
        v = _jstr(s)
        if len(_JSTR_CACHE) < 4096:
            _JSTR_CACHE[s] = v
    return v


def _jlist(items: Any) -> str:
    """Canonical JSON of a sequence of strings (``json.dumps`` of the list, ASCII)."""
    for x in items:
        if type(x) is not str:
            raise _NotFixedLayout
    return "[" + ",".join(map(_jstr, items)) + "]" if items else "[]"


def encode_decision(
    seq: int,
    prev: str,
    ts: float,
    request: dict[str, Any],
    decision: Any,
    ruleset_sha256: str,
    model_sha256: str,
    preempted: list[int] | None = None,
) -> bytes:
    """Canonical JSON of a decision record (without ``hash``), without generic dumping.

    The record :meth:`AuditLog.append_decision` writes has a fixed layout, so its canonical
    bytes (:func:`canonical`: sorted keys, compact separators, ASCII escapes, ``repr`` of
    floats) are one format string with the keys already in sorted order and each value
    rendered by the rule ``json.dumps`` applies to its type. This is hand-written because the
    fast JSON libraries (orjson, ujson) do not produce these bytes: they write non-ASCII
    characters raw and floats in another notation, and the hashed bytes must stay the ones
    every existing log was written with. It equals ``canonical(record)`` for every record it
    accepts (tested on random records against :func:`canonical`); a value of any other type
    (a numpy integer, NaN, a request with other keys …) raises ``_NotFixedLayout`` and the
    caller encodes the record with :func:`canonical`, which keeps its errors too.
    """
    r = request
    if len(r) != 8:
        raise _NotFixedLayout
    req = request_text(
        r["id"], r["time_s"], r["cls"], r["src"], r["dst"], r["kind"], r["region"], r["emergency"]
    )
    return _encode_decision(seq, prev, ts, req, decision, ruleset_sha256, model_sha256, preempted)


def request_text(
    rid: int, time_s: float, cls: str, src: int, dst: int, kind: int, region: int, emergency: bool
) -> str:
    """The members of a decision record's ``"request"`` object, canonical and in key order
    (the text between its braces), from plain values; anything else raises
    ``_NotFixedLayout`` (strings: :func:`_jstr` raises TypeError)."""
    # One test of every non-string type.
    if not (
        type(time_s) is float
        and -_INF < time_s < _INF
        and type(emergency) is bool
        and type(rid) is int
        and type(src) is int
        and type(dst) is int
        and type(kind) is int
        and type(region) is int
    ):
        raise _NotFixedLayout
    return (
        f'"cls":{_jstr_c(cls)},"dst":{dst},"emergency":{"true" if emergency else "false"},'
        f'"id":{rid},"kind":{kind},"region":{region},"src":{src},"time_s":{time_s!r}'
    )


def _encode_decision(
    seq: int,
    prev: str,
    ts: float,
    request: str,
    decision: Any,
    ruleset_sha256: str,
    model_sha256: str,
    preempted: list[int] | None,
) -> bytes:
    """:func:`encode_decision` given the request's :func:`request_text`."""
    head, mid, tail = _decision_parts(decision, model_sha256, ruleset_sha256)
    if not (type(seq) is int and type(ts) is float and -_INF < ts < _INF):
        raise _NotFixedLayout
    if preempted is None:
        pe = ""
    else:
        for x in preempted:
            if type(x) is not int:
                raise _NotFixedLayout
        pe = ',"preempted":[' + ",".join(map(str, preempted)) + "]"
    return (
        f'{head}{pe}{mid}{request}{tail}{_jstr(prev)},"seq":{seq},"ts":{ts!r},"type":"decision"}}'
    ).encode()


_PARTS_CACHE: dict[int, tuple[Any, str, str, tuple[str, str, str]]] = {}


def _decision_parts(d: Any, model: str, ruleset: str) -> tuple[str, str, str]:
    """The body text around ``"preempted"`` and the request, for a decision and the model
    and rule-set hashes: ``head`` (up to ``"preempt"``'s value), ``mid`` (``"priority"`` to
    the opening of ``"request"``), ``tail`` (its close to ``"prev":``).

    A :class:`Decision` is immutable and the allowed ones are shared
    (:func:`~pcnalloc.rules.guard.allowed_decision`), so the parts are kept per decision
    object (the entry holds the object, so its id is not reused while cached; bounded).
    """
    got = _PARTS_CACHE.get(id(d))
    if got is not None and got[0] is d and got[1] is model and got[2] is ruleset:
        return got[3]
    act, prop, prio, icp, pre = d.action, d.proposal, d.priority, d.intercepted, d.preempt
    if not (
        type(act) is int
        and type(prop) is int
        and type(prio) is int
        and type(icp) is bool
        and type(pre) is bool
    ):
        raise _NotFixedLayout
    rs, ss, why = d.rule_ids, d.soft_ids, d.reasons
    parts = (
        f'{{"body":{{"action":{act},"intercepted":{"true" if icp else "false"},'
        f'"model":{_jstr_c(model)},"note":{_jstr_c(d.note)},'
        f'"preempt":{"true" if pre else "false"}',
        f',"priority":{prio},"proposal":{prop},'
        f'"reasons":{"[" + ",".join([_jlist(p) for p in why]) + "]" if why else "[]"},'
        f'"request":{{',
        f'}},"rules":{_jlist(rs) if rs else "[]"},"ruleset":{_jstr_c(ruleset)},'
        f'"soft":{_jlist(ss) if ss else "[]"}}},"prev":',
    )
    if len(_PARTS_CACHE) >= 4096:
        _PARTS_CACHE.clear()
    _PARTS_CACHE[id(d)] = (d, model, ruleset, parts)
    return parts


def _is_decision(d: Any) -> bool:
    """``d`` is a guard :class:`~pcnalloc.rules.guard.Decision` (its module is looked up in
    the loaded modules: importing it here would load numpy and numba into every audit
    command, and a Decision exists only once that module is loaded)."""
    guard = sys.modules.get("pcnalloc.rules.guard")
    return guard is not None and type(d) is guard.Decision


def tree_head_message(tree_size: int, root_hex: str, timestamp_ms: int, key_id: str) -> bytes:
    """The bytes a tree head signature covers (domain-separated by format and type)."""
    return canonical(
        {
            "format": FORMAT,
            "type": HEAD_TYPE,
            "tree_size": tree_size,
            "root": root_hex,
            "timestamp_ms": timestamp_ms,
            "key_id": key_id,
        }
    )


def sign_tree_head(
    key: Ed25519PrivateKey, tree_size: int, root: bytes, timestamp_ms: int
) -> dict[str, Any]:
    """A signed tree head body: ``tree_size``, ``root`` (hex), ``timestamp_ms``, ``key_id``,
    ``sig``."""
    kid = keys.key_id(key.public_key())
    sig = key.sign(tree_head_message(tree_size, root.hex(), timestamp_ms, kid))
    return {
        "tree_size": tree_size,
        "root": root.hex(),
        "timestamp_ms": timestamp_ms,
        "key_id": kid,
        "sig": base64.b64encode(sig).decode(),
    }


class AuditLog:
    """Append-only writer of the transparency log.

    Args:
        path: the JSON-lines file (created if missing, resumed if present).
        private_key: Ed25519 key (or a PEM file path) that signs tree heads; None = no heads
            (integrity only: the chain and tree detect edits but nothing proves origin, and
            :func:`verify` with a pinned key rejects such a log).
        checkpoint_every: records between signed tree heads (N).
        checkpoint_interval_s: a head is written before any record that comes this many
            seconds or more after the oldest unsigned record (T); None = no time rule.
        sync_every: fsync after this many records (1 = every record, crash-safe per record).
        meta: extra header fields for a new log (e.g. rule-set hash, env config).
        repair: cut a torn last line (recording it) instead of refusing to open.
        head_path: also write every signed tree head to this file (atomically) — point it at
            storage the log's writer cannot rewrite later to publish heads.

    A resumed log keeps the key and cadence of its header (a different key is refused).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        private_key: Ed25519PrivateKey | str | Path | None = None,
        checkpoint_every: int = 1000,
        checkpoint_interval_s: float | None = 60.0,
        sync_every: int = 1,
        meta: dict[str, Any] | None = None,
        repair: bool = False,
        head_path: str | Path | None = None,
    ) -> None:
        if not isinstance(checkpoint_every, int) or checkpoint_every < 1 or sync_every < 1:
            raise AuditError(
                f"checkpoint_every={checkpoint_every!r} and sync_every={sync_every!r} "
                "must be integers ≥ 1"
            )
        if checkpoint_interval_s is not None and not (
            math.isfinite(checkpoint_interval_s) and checkpoint_interval_s > 0
        ):
            raise AuditError(
                f"checkpoint_interval_s={checkpoint_interval_s!r}; accepted: seconds > 0 or None"
            )
        self.path = Path(path)
        if isinstance(private_key, (str, Path)):
            private_key = keys.load_private_key(private_key)
        self._key = private_key
        self._key_id = keys.key_id(private_key.public_key()) if private_key else None
        self.checkpoint_every = checkpoint_every
        self.checkpoint_interval_s = checkpoint_interval_s
        self.sync_every = sync_every
        self.head_path = Path(head_path) if head_path is not None else None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        exists = self.path.exists() and self.path.stat().st_size > 0
        self._tree = merkle.Frontier()
        self._leaves_due: list[bytes] = []  # lines (with newline) not yet leaves of _tree
        self._seq, self._head = -1, GENESIS
        self._unsigned, self._first_unsigned_ts = 0, 0.0
        self._unsynced = 0
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            _lock(self._fd, self.path)
            torn = self._resume() if exists else b""
            if torn:
                if not repair:
                    raise AuditError(
                        f"audit log {str(self.path)!r} ends in a torn record ({len(torn)} bytes "
                        f"after record {self._seq}); `pcnalloc audit repair {self.path}` keeps "
                        "the verified prefix (or reopen with repair=True)"
                    )
                os.ftruncate(self._fd, self.path.stat().st_size - len(torn))
                self.append(
                    "recovery",
                    {"torn_bytes": len(torn), "torn_sha256": hashlib.sha256(torn).hexdigest()},
                )
                self.sync()
            if not exists:
                self.append(
                    "header",
                    {
                        **(meta or {}),
                        "format": FORMAT,
                        "key_id": self._key_id,
                        "checkpoint_every": checkpoint_every,
                        "checkpoint_interval_s": checkpoint_interval_s,
                        "leaf_hash": "rfc9162-sha256",
                    },
                )
                if self._unsigned:  # record 1 signs the header, its key id and cadence
                    self.checkpoint()
                self.sync()
        except BaseException:
            os.close(self._fd)
            raise

    def _resume(self) -> bytes:
        """Rebuild tree, chain head and cadence state from an existing log; the torn bytes."""
        data = self.path.read_bytes()
        lines = data.split(b"\n")
        torn = lines.pop()
        for i, ln in enumerate(lines):
            try:
                rec = json.loads(ln)
                ok = isinstance(rec, dict) and set(rec) == RECORD_KEYS and rec["seq"] == i
            except ValueError:
                ok = False
            if not ok:
                raise AuditError(
                    f"audit log {str(self.path)!r}: line {i + 1} is not record {i} of a "
                    "pcnalloc audit log; run `pcnalloc audit verify` before appending"
                )
            if i == 0:
                self._adopt_header(rec)
            self._tree.append(merkle.leaf_hash(ln))
            self._seq, self._head = i, rec["hash"]
            self._count(rec["type"], rec["ts"])
        return torn

    def _adopt_header(self, rec: dict[str, Any]) -> None:
        b = rec["body"] if isinstance(rec.get("body"), dict) else {}
        if rec["type"] != "header" or b.get("format") != FORMAT:
            raise AuditError(
                f"audit log {str(self.path)!r} has format {b.get('format')!r}; accepted: "
                f"{FORMAT!r} (start a new log file)"
            )
        if b.get("key_id") != self._key_id:
            raise AuditError(
                f"audit log {str(self.path)!r} is signed by key {b.get('key_id')}; reopen it "
                f"with that key (given: {self._key_id})"
            )
        self.checkpoint_every = int(b["checkpoint_every"])
        self.checkpoint_interval_s = b.get("checkpoint_interval_s")

    def _count(self, type_: str, ts: float) -> None:
        if type_ == HEAD_TYPE:
            self._unsigned = 0
            return
        if self._unsigned == 0:
            self._first_unsigned_ts = ts
        self._unsigned += 1

    @property
    def public_key(self) -> Ed25519PublicKey | None:
        """The public half of the signing key (None for an integrity-only log)."""
        return self._key.public_key() if self._key is not None else None

    @property
    def seq(self) -> int:
        """Sequence number of the last record written (-1 for none)."""
        return self._seq

    @property
    def head(self) -> str:
        """Chain hash of the last record written."""
        return self._head

    @property
    def tree_size(self) -> int:
        """Records (Merkle leaves) written so far."""
        return self._tree.size + len(self._leaves_due)

    def _add_leaves(self) -> None:
        """Hash the lines written since the last call into the tree (RFC 9162 leaves)."""
        append, leaf = self._tree.append, merkle.leaf_hash
        for data in self._leaves_due:
            append(leaf(data[:-1]))  # the leaf is the line without its newline
        self._leaves_due.clear()

    @property
    def unsigned(self) -> int:
        """Records after the last signed tree head."""
        return self._unsigned

    def append(self, type_: str, body: dict[str, Any]) -> str:
        """Append one record; returns its chain hash. Signs tree heads at the cadence."""
        if type_ == HEAD_TYPE:
            raise AuditError(f"record type {HEAD_TYPE!r} is written by checkpoint() only")
        ts = round(time.time(), 6)
        if self._key is not None and self._due_by_time(ts):
            self._write_head(ts)
        h = self._write(type_, body, ts)
        if self._key is not None and self._unsigned >= self.checkpoint_every:
            self._write_head(ts)
        return h

    def _due_by_time(self, ts: float) -> bool:
        t = self.checkpoint_interval_s
        return bool(self._unsigned) and t is not None and ts - self._first_unsigned_ts >= t

    def tick(self) -> str | None:
        """Sign the tail now if the time cadence says so (call it from an idle loop)."""
        ts = round(time.time(), 6)
        if self._key is not None and self._due_by_time(ts):
            return self._write_head(ts)
        return None

    def _write(self, type_: str, body: dict[str, Any], ts: float) -> str:
        seq = self._seq + 1
        rec = {"seq": seq, "type": type_, "prev": self._head, "ts": ts, "body": body}
        return self._emit(canonical(rec), type_, ts)

    def _emit(self, content: bytes, type_: str, ts: float) -> str:
        """Write one record given its canonical bytes without ``hash`` (the next ``seq``)."""
        h = hashlib.sha256(content).hexdigest()
        # One encode: the hash goes last (verify re-canonicalises without it).
        data = b"".join((content[:-1], b',"hash":"', h.encode(), b'"}\n'))
        n = os.write(self._fd, data)
        if n != len(data):  # a short write on a regular file means the disk is full
            raise AuditError(f"short write to {str(self.path)!r} ({n} of {len(data)} bytes)")
        # The tree is read only to sign a head: leaves are hashed there (or every
        # _LEAF_BATCH records), so a decision pays for its chain hash and write only.
        due = self._leaves_due
        due.append(data)
        if len(due) >= _LEAF_BATCH:
            self._add_leaves()
        self._seq += 1
        self._head = h
        self._count(type_, ts)
        self._unsynced += 1
        if self._unsynced >= self.sync_every:
            self.sync()
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
        """Record one guarded decision (a :class:`~pcnalloc.edge.guard.Decision`).

        The record is the one :meth:`append` would write for ``"decision"`` and the body
        ``{"request", **decision.to_record(), "ruleset", "model"[, "preempted"]}``, byte for
        byte; a :class:`Decision` with plain values is encoded by :func:`encode_decision`
        (no generic JSON dumping on the hot path), anything else by :func:`canonical`.
        """
        if preempted is not None:
            preempted = list(preempted)
        ts = round(time.time(), 6)
        if self._key is not None and self._due_by_time(ts):
            self._write_head(ts)
        try:
            if not _is_decision(decision):
                raise _NotFixedLayout
            content = encode_decision(
                self._seq + 1,
                self._head,
                ts,
                request,
                decision,
                ruleset_sha256,
                model_sha256,
                preempted,
            )
        except (_NotFixedLayout, KeyError, TypeError):
            content = self._generic_decision(
                ts, request, decision, ruleset_sha256, model_sha256, preempted
            )
        return self._emit_decision(content, ts)

    def append_request_decision(
        self,
        rid: int,
        time_s: float,
        cls: str,
        src: int,
        dst: int,
        kind: int,
        region: int,
        emergency: bool,
        decision: Any,
        ruleset_sha256: str,
        model_sha256: str,
    ) -> str:
        """:meth:`append_decision` with the request given as its fields instead of a record
        dict (``request={"id": rid, "time_s": time_s, "cls": cls, …, "emergency":
        emergency}``): the same bytes, without building the dict (the edge agent's hot
        path)."""
        ts = round(time.time(), 6)
        if self._key is not None and self._due_by_time(ts):
            self._write_head(ts)
        try:
            if not _is_decision(decision):
                raise _NotFixedLayout
            req = request_text(rid, time_s, cls, src, dst, kind, region, emergency)
            content = _encode_decision(
                self._seq + 1, self._head, ts, req, decision, ruleset_sha256, model_sha256, None
            )
        except (_NotFixedLayout, TypeError):
            request = {
                "id": rid,
                "time_s": time_s,
                "cls": cls,
                "src": src,
                "dst": dst,
                "kind": kind,
                "region": region,
                "emergency": emergency,
            }
            content = self._generic_decision(
                ts, request, decision, ruleset_sha256, model_sha256, None
            )
        return self._emit_decision(content, ts)

    def _generic_decision(
        self,
        ts: float,
        request: dict[str, Any],
        decision: Any,
        ruleset_sha256: str,
        model_sha256: str,
        preempted: list[int] | None,
    ) -> bytes:
        body = {
            "request": request,
            **decision.to_record(),
            "ruleset": ruleset_sha256,
            "model": model_sha256,
        }
        if preempted is not None:
            body["preempted"] = preempted
        rec = {"seq": self._seq + 1, "type": "decision", "prev": self._head, "ts": ts}
        rec["body"] = body
        return canonical(rec)

    def _emit_decision(self, content: bytes, ts: float) -> str:
        h = self._emit(content, "decision", ts)
        if self._key is not None and self._unsigned >= self.checkpoint_every:
            self._write_head(ts)
        return h

    def checkpoint(self) -> str | None:
        """Sign a tree head over every record so far now (no-op without a private key)."""
        if self._key is None:
            return None
        return self._write_head(round(time.time(), 6))

    def _write_head(self, ts: float) -> str:
        assert self._key is not None
        self._add_leaves()
        sth = sign_tree_head(self._key, self._tree.size, self._tree.root(), int(ts * 1000))
        h = self._write(HEAD_TYPE, sth, ts)
        self.sync()
        if self.head_path is not None:
            write_tree_head(self.head_path, sth)
        return h

    def sync(self) -> None:
        os.fsync(self._fd)
        self._unsynced = 0

    def close(self, *, checkpoint: bool = True) -> None:
        """Sign the tail (if keyed and anything is unsigned), fsync and close."""
        if self._fd < 0:
            return
        if checkpoint and self._key is not None and self._unsigned:
            self.checkpoint()
        self.sync()
        os.close(self._fd)
        self._fd = -1

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_tree_head(path: str | Path, sth: dict[str, Any]) -> Path:
    """Write a signed tree head as a published-head JSON file (atomic replace)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    body = {"format": FORMAT, "type": HEAD_TYPE, **{k: sth[k] for k in HEAD_FIELDS}}
    with open(tmp, "w") as fh:
        fh.write(json.dumps(body, indent=1, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, p)
    return p


def _lock(fd: int, path: Path) -> None:
    try:
        import fcntl
    except ImportError:  # not POSIX: no advisory lock
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise AuditError(f"audit log {str(path)!r} is open in another writer") from None


_VERIFY_NAMES = frozenset({"TrustedKeys", "VerifyResult", "load_trusted_keys", "verify"})


def __getattr__(name: str) -> Any:
    """The verifier lives in its own module (one job per file); its names stay importable here."""
    if name in _VERIFY_NAMES:
        from pcnalloc.edge import audit_verify

        return getattr(audit_verify, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "FORMAT",
    "AuditError",
    "AuditLog",
    "canonical",
    "record_hash",
    "sign_tree_head",
    "write_tree_head",
]
