"""Repair a torn audit log: keep its verified prefix, say what was dropped, keep a backup.

A writer killed in the middle of a ``write`` leaves a torn last line; nothing else is a
crash. :func:`repair` therefore accepts exactly that: the log must verify with the pinned
key(s) up to the torn bytes (an unsigned tail after the last head is kept — those are
decisions the service acknowledged). Any other failure is tampering or damage and is
refused, with the log untouched. The repaired log is written to a temporary file, checked
again, and renamed over the log; the original stays as a backup (a hard link, or a copy).
With the log's signing key, a ``recovery`` record (dropped bytes, their SHA-256, the backup's
name) is appended and signed, so the repair itself stays in the tree.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pcnalloc.edge import keys
from pcnalloc.edge.audit import AuditError, AuditLog, _lock
from pcnalloc.edge.audit_verify import verify
from pcnalloc.edge.trusted_keys import TrustedKeys


class NotTornError(AuditError):
    """A log that fails verification for another reason than a torn tail (not repairable)."""


@dataclass(frozen=True)
class RepairResult:
    """What :func:`repair` did.

    Attributes:
        repaired: False when the log was intact (nothing written).
        kept_records: complete records kept.
        dropped_bytes: bytes cut from the end.
        dropped_sha256: SHA-256 (hex) of those bytes ("" when none).
        backup: the original log's backup (None when nothing was written).
        recovery_seq: seq of the signed ``recovery`` record (None without a key).
    """

    repaired: bool
    kept_records: int
    dropped_bytes: int = 0
    dropped_sha256: str = ""
    backup: Path | None = None
    recovery_seq: int | None = None

    def __str__(self) -> str:
        if not self.repaired:
            return f"intact: {self.kept_records} records, nothing to repair"
        rec = (
            f"; recovery record {self.recovery_seq} signed"
            if self.recovery_seq is not None
            else "; no recovery record (no --key): the cut is recorded here only"
        )
        return (
            f"repaired: kept {self.kept_records} records, dropped {self.dropped_bytes} torn "
            f"bytes (sha256 {self.dropped_sha256[:16]}…); original kept as {self.backup}{rec}"
        )


def repair(
    path: str | Path,
    trusted: TrustedKeys,
    *,
    private_key: Ed25519PrivateKey | str | Path | None = None,
    backup: str | Path | None = None,
    overwrite: bool = False,
) -> RepairResult:
    """Cut a torn tail from a log that otherwise verifies.

    Args:
        path: the log.
        trusted: pinned key(s) the log must verify with.
        private_key: the log's signing key, to append a signed ``recovery`` record.
        backup: where the original goes (default ``LOG.bak``).
        overwrite: replace an existing backup file.

    Raises:
        AuditError: a missing log, one open in a writer, or an existing backup without
            ``overwrite``.
        NotTornError: the log fails for another reason than a torn tail.
    """
    p = Path(path)
    res = verify(p, trusted, allow_unsigned_tail=True)
    if res.ok:
        return RepairResult(False, res.records)
    if res.problem in ("foreign_key", "format"):
        raise AuditError(f"{p} is not a log of the pinned key(s): {res}")
    if res.problem != "torn_tail":
        raise NotTornError(
            f"{p} is not a torn log: {res}; that is tampering or damage, not a crash — "
            "nothing changed (keep it as evidence)"
        )
    bak = Path(backup) if backup is not None else p.with_name(p.name + ".bak")
    if bak.exists() and not overwrite:
        raise AuditError(f"backup {str(bak)!r} exists; pass --overwrite or --backup PATH")
    if isinstance(private_key, (str, Path)):
        private_key = keys.load_private_key(private_key)
    fd = os.open(p, os.O_RDONLY)
    try:
        _lock(fd, p)  # refuse while a service still writes the log
        data = p.read_bytes()
    finally:
        os.close(fd)
    cut = data.rfind(b"\n") + 1
    torn = data[cut:]
    tmp = p.with_name(p.name + ".repair.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data[:cut])
            fh.flush()
            os.fsync(fh.fileno())
        seq = None
        if private_key is not None:
            with AuditLog(tmp, private_key=private_key) as w:
                w.append(
                    "recovery",
                    {
                        "dropped_bytes": len(torn),
                        "dropped_sha256": hashlib.sha256(torn).hexdigest(),
                        "kept_records": res.records,
                        "backup": bak.name,
                    },
                )
                seq = w.seq
        again = verify(tmp, trusted, allow_unsigned_tail=private_key is None)
        if not again.ok:  # pragma: no cover - a bug, never a user's input
            raise AuditError(f"the repaired log does not verify ({again}); nothing changed")
        if bak.exists():
            bak.unlink()
        try:
            os.link(p, bak)
        except OSError:
            shutil.copy2(p, bak)
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)
    return RepairResult(True, res.records, len(torn), hashlib.sha256(torn).hexdigest(), bak, seq)


__all__ = ["NotTornError", "RepairResult", "repair"]
